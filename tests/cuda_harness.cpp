#include "cuda_harness.h"

#include "backend/backend.h"
#ifdef ELM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "core/error.h"
#include "op_harness.h"
#include "util.h"

namespace elm::test {

bool cuda_available() {
#ifdef ELM_HAVE_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

NodeId CudaCase::weight(const std::string& name, int64_t rows, int64_t cols, QuantSpec type, float scale) {
  const std::vector<float> v = random_vector(size_t((rows ? rows : 1) * cols), seed++, scale);
  TensorView view;
  std::vector<uint8_t> bytes = quantize_matrix(v.data(), rows ? rows : 1, cols, type, &view);
  view.shape = rows ? Shape{rows, cols} : Shape{cols};
  model->weights.add_owned_bytes(name, view, std::move(bytes));
  return b.weight(name, view.shape);
}

NodeId CudaCase::input(const std::string& name, int64_t T, int64_t cols, float scale) {
  return b.embed(weight(name, T, cols, {DType::F32, 0, DType::F16}, scale), b.token_ids());
}

void CudaCase::finish(NodeId out) {
  model->graph = b.finish(b.output_rows(out));
  model->info.vocab_size = 1 << 20;  // token ids index the input tables
}

CudaPair::CudaPair(std::shared_ptr<const Model> model, RuntimeConfig cfg, bool cpu_kernels) {
  cfg.threads = 2;
  gpu = std::make_unique<Executor>(model, cfg, std::vector<std::string>{"cuda"});
  // The reference: float activations times the (de)quantized weights, nothing rounded between ops
  // (the CUDA side rounds only what its tensor-core products read; tolerances say how much).
  cfg.exact_matmul = !cpu_kernels;
  cfg.act_dtype = DType::F32;
  cpu = std::make_unique<Executor>(model, cfg, std::vector<std::string>{"cpu"});
}

void CudaPair::expect_all_on_cuda() const {
  const PartitionPlan& p = gpu->plan();
  ASSERT_EQ(gpu->backend_names().front(), "cuda");
  for (size_t i = 0; i < p.node_backend.size(); ++i)
    if (p.node_backend[i] >= 0) {
      EXPECT_EQ(p.node_backend[i], 0) << "node " << i << " fell back to the CPU";
    }
}

double CudaPair::step(const Batch& b) {
  const HostTensor& g = gpu->step(b);
  const HostTensor& c = cpu->step(b);
  EXPECT_EQ(g.rows, c.rows);
  EXPECT_EQ(g.cols, c.cols);
  if (g.data.size() != c.data.size()) return 1e30;
  for (float v : g.data)
    if (!std::isfinite(v)) return 1e30;
  return rel_max_err(g.data.data(), c.data.data(), c.data.size());
}

Batch make_batch(int64_t T, int32_t pos0, int32_t seq, int32_t id0) {
  Batch b;
  for (int64_t t = 0; t < T; ++t) b.add(id0 + int32_t(t), pos0 + int32_t(t), seq, true);
  return b;
}

}  // namespace elm::test
