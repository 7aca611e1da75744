#include "backend/cuda/cuda_backend.h"

#include "backend/cuda/context.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/segment.h"

namespace elm {

namespace {

// The device is opened at the first prepare(): partitioning and `elm compile` (supports, compile) need
// no GPU, so a model can be compiled for CUDA on a machine without one.
class CudaBackend : public Backend {
 public:
  explicit CudaBackend(const RuntimeConfig& c) : config_(c) {}
  std::string name() const override { return "cuda"; }

  bool supports(const Graph& g, const WeightStore& w, int32_t id) const override {
    const Node& n = g.nodes[size_t(id)];
    switch (n.op) {
      case Op::MatMul: {
        const TensorView& t = w.get(g.nodes[size_t(n.inputs[1])].name);
        return cuda::weight_supported(t.dtype, t.cols());
      }
      case Op::Embed: {
        const TensorView& t = w.get(g.nodes[size_t(n.inputs[0])].name);
        return cuda::weight_supported(t.dtype, 32);  // any width: the lookup decodes value by value
      }
      case Op::Attention:
        return cuda::attention_supported(int(n.attrs.i("heads")), int(n.attrs.i("kv_heads")),
                                         int(n.attrs.i("head_dim")), int(n.attrs.i("v_head_dim", n.attrs.i("head_dim"))));
      case Op::RmsNorm:
      case Op::Add:
      case Op::Mul:
      case Op::Scale:
      case Op::Silu:
      case Op::Gelu:
      case Op::GeluTanh:
      case Op::Sigmoid:
      case Op::Softplus:
      case Op::Tanh:
      case Op::SoftCap:
      case Op::Slice:
      case Op::Concat:
      case Op::OutputRows:
      case Op::Rope: return true;
      default: return false;  // sources, and ops without CUDA kernels (they run on the CPU)
    }
  }

  std::unique_ptr<Segment> prepare(const SegmentSpec& spec) override {
    if (!ctx_) {
      int n = 0;
      const cudaError_t e = cudaGetDeviceCount(&n);
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        fail("the CUDA backend cannot run here: ", cudaGetErrorString(e));
      }
      ELM_CHECK(n > 0, "the CUDA backend cannot run here: no CUDA device");
      ELM_CUDA_CHECK(cudaSetDevice(0));
      ctx_ = std::make_shared<cuda::Context>(config_);
    }
    return std::make_unique<cuda::CudaSegment>(spec, ctx_, cuda::segment_options_from_env());
  }

 private:
  RuntimeConfig config_;
  std::shared_ptr<cuda::Context> ctx_;
};

}  // namespace

int cuda_device_count() { return cuda::device_count(); }
size_t cuda_memory_in_use() { return cuda::device_memory_in_use(); }

std::unique_ptr<Backend> make_cuda_backend(const RuntimeConfig& config) { return std::make_unique<CudaBackend>(config); }

}  // namespace elm
