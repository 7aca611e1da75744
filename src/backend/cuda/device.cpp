#include "backend/cuda/device.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <mutex>

namespace elm::cuda {

void fail_cuda(cudaError_t e, const char* what, const char* file, int line) {
  fail("CUDA error: ", cudaGetErrorString(e), " (", what, " at ", file, ":", line, ")");
}

template <Memory M>
Buffer<M>::Buffer(size_t bytes) : n_(bytes) {
  if (!bytes) return;
  const cudaError_t e = M == Memory::Device ? cudaMalloc(&p_, bytes) : cudaMallocHost(&p_, bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky allocation error
    p_ = nullptr;
    fail("CUDA: cannot allocate ", bytes, M == Memory::Device ? " bytes of device memory (" : " bytes of pinned memory (",
         cudaGetErrorString(e), ")");
  }
}

template <Memory M>
void Buffer<M>::release() {
  if (!p_) return;
  if (M == Memory::Device) cudaFree(p_);
  else cudaFreeHost(p_);
  p_ = nullptr;
}

template class Buffer<Memory::Device>;
template class Buffer<Memory::Pinned>;

Stream::Stream() { ELM_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}
void Stream::sync() const { ELM_CUDA_CHECK(cudaStreamSynchronize(s_)); }

GraphExec::GraphExec(cudaGraph_t g) { ELM_CUDA_CHECK(cudaGraphInstantiate(&e_, g, 0)); }
GraphExec::~GraphExec() {
  if (e_) cudaGraphExecDestroy(e_);
}
GraphExec& GraphExec::operator=(GraphExec&& o) noexcept {
  if (this != &o) {
    if (e_) cudaGraphExecDestroy(e_);
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}
void GraphExec::launch(cudaStream_t s) const { ELM_CUDA_CHECK(cudaGraphLaunch(e_, s)); }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

size_t device_memory_in_use() {
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
  return total - free;
}

void allow_dynamic_smem(const void* kernel, size_t bytes) {
  static std::mutex m;
  static std::map<const void*, size_t> done;
  std::lock_guard<std::mutex> lock(m);
  size_t& have = done[kernel];
  if (bytes <= have || bytes <= 48 * 1024) return;
  ELM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  have = bytes;
}

int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    ELM_CUDA_CHECK(cudaGetDevice(&dev));
    ELM_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}

int blocks_per_sm(const void* kernel, int threads, size_t smem) {
  static std::mutex m;
  static std::map<std::pair<const void*, size_t>, int> cache;
  std::lock_guard<std::mutex> lock(m);
  auto [it, fresh] = cache.emplace(std::make_pair(kernel, smem), 0);
  if (fresh) {
    int n = 0;
    ELM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, smem));
    it->second = std::max(n, 1);
  }
  return it->second;
}

namespace {
thread_local bool pdl_on = false;
bool pdl_allowed() {
  static const bool on = [] {
    const char* v = std::getenv("ELM_CUDA_PDL");
    return !(v && std::string(v) == "0");
  }();
  return on;
}
}  // namespace

bool pdl_enabled() { return pdl_on; }
PdlScope::PdlScope(bool on) : saved_(pdl_on) { pdl_on = on && pdl_allowed(); }
PdlScope::~PdlScope() { pdl_on = saved_; }

void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail("CUDA kernel launch failed: ", what, ": ", cudaGetErrorString(e));
}

}  // namespace elm::cuda
