// Host-side CUDA plumbing for the CUDA backend: error checks that become elm::Error, and owning
// handles for device memory, pinned host memory, streams and graphs.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "core/error.h"

namespace elm::cuda {

[[noreturn]] void fail_cuda(cudaError_t e, const char* what, const char* file, int line);

}  // namespace elm::cuda

// ELM_CUDA_CHECK(call): throws elm::Error naming the call and CUDA's reason when it fails.
#define ELM_CUDA_CHECK(call)                                                      \
  do {                                                                            \
    cudaError_t elm_cuda_err_ = (call);                                           \
    if (elm_cuda_err_ != cudaSuccess) ::elm::cuda::fail_cuda(elm_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

namespace elm::cuda {

// Where a Buffer's memory lives.
enum class Memory { Device, Pinned };

// `bytes` bytes of device memory (cudaMalloc) or page-locked host memory (cudaMallocHost: the source
// or target of copies that a captured CUDA graph replays), freed on destruction.
template <Memory M>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t bytes);
  ~Buffer() { release(); }
  Buffer(Buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* get() const { return p_; }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  size_t size() const { return n_; }

 private:
  void release();
  void* p_ = nullptr;
  size_t n_ = 0;
};
using DeviceBuffer = Buffer<Memory::Device>;
using PinnedBuffer = Buffer<Memory::Pinned>;

class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const;

 private:
  cudaStream_t s_ = nullptr;
};

// An instantiated CUDA graph (a captured step).
class GraphExec {
 public:
  GraphExec() = default;
  explicit GraphExec(cudaGraph_t g);
  ~GraphExec();
  GraphExec(GraphExec&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  GraphExec& operator=(GraphExec&& o) noexcept;
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  void launch(cudaStream_t s) const;

 private:
  cudaGraphExec_t e_ = nullptr;
};

// Number of CUDA devices usable here; 0 when the driver is missing or reports none (no throw).
int device_count();

// Device memory in use on the current device (total - free), for benchmarks and reports.
size_t device_memory_in_use();

// Raises a kernel's dynamic shared memory limit (needed above 48 KiB); cached per function.
void allow_dynamic_smem(const void* kernel, size_t bytes);

// Multiprocessors of the current device, and how many blocks of `kernel` fit on one (cached).
int sm_count();
int blocks_per_sm(const void* kernel, int threads, size_t smem);

// Programmatic dependent launch for the kernels this thread launches: on for small (decode) steps,
// where it hides each launch behind the previous kernel; off for prefill, where early-resident blocks
// of the next kernel only take room from the current one. ELM_CUDA_PDL=0 turns it off everywhere.
bool pdl_enabled();
class PdlScope {
 public:
  explicit PdlScope(bool on);
  ~PdlScope();

 private:
  bool saved_;
};

// Checks the last launch (cudaGetLastError), throwing elm::Error with `what`.
void check_launch(const char* what);

}  // namespace elm::cuda
