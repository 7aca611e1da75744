// Device helpers shared by the kernels: reductions, half conversions, and reading one value of a
// weight in any of elm's layouts (the slow, general path; the matrix kernels decode whole chunks).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <utility>

#include "backend/cuda/device.h"
#include "backend/cuda/kernels.h"

namespace elm::cuda {

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block; every thread gets the result. `red` holds 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = lane < nw ? red[lane] : 0.f;
  return warp_sum(t);
}

// Asynchronous 16-byte copies global -> shared (zero-filled when !valid), in commit groups.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned s = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// The activations of gated MLPs, formula for formula the CPU's (cpu/elementwise.cpp).
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float gate_act(GateAct a, float g) {
  switch (a) {
    case GateAct::Silu: return silu(g);
    case GateAct::Gelu: return gelu(g);
    case GateAct::GeluTanh: return gelu_tanh(g);
    default: return g;
  }
}

__device__ __forceinline__ float f16_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

__device__ __forceinline__ float load_scale(const uint8_t* plane, int64_t i, bool f32) {
  return f32 ? reinterpret_cast<const float*>(plane)[i] : f16_bits_to_float(reinterpret_cast<const uint16_t*>(plane)[i]);
}

// Value (r, c) of a weight in elm's layout.
__device__ __forceinline__ float weight_value(const DeviceWeight& w, int64_t r, int64_t c) {
  const int64_t K = w.cols;
  switch (w.dtype) {
    case DType::F32: return reinterpret_cast<const float*>(w.data)[r * K + c];
    case DType::F16: return f16_bits_to_float(reinterpret_cast<const uint16_t*>(w.data)[r * K + c]);
    case DType::BF16: return bf16_bits_to_float(reinterpret_cast<const uint16_t*>(w.data)[r * K + c]);
    case DType::Q8: {
      const float d = load_scale(w.data + w.scales_offset, r * (K / w.group) + c / w.group, w.scale_f32);
      return d * float(reinterpret_cast<const int8_t*>(w.data)[r * K + c]);
    }
    case DType::Q4:
    case DType::Q4M: {
      const int64_t gi = r * (K / w.group) + c / w.group;
      const float d = load_scale(w.data + w.scales_offset, gi, w.scale_f32);
      // Within each 32 values, byte j holds value j (low nibble) and j + 16 (high nibble).
      const int64_t base = r * K + (c & ~int64_t(31));
      const int j = int(c & 31);
      const uint8_t byte = w.data[(base >> 1) + (j & 15)];
      const float q = float(j < 16 ? (byte & 15) : (byte >> 4));
      if (w.dtype == DType::Q4) return d * (q - 8.f);
      return d * q + load_scale(w.data + w.mins_offset, gi, w.scale_f32);
    }
    default: return 0.f;
  }
}

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

// Programmatic dependent launch (Hopper). Every kernel is launched allowed to start while its
// predecessor in the stream drains: pdl_launch_dependents() lets the next kernel launch once all blocks
// of this one have started; pdl_wait() returns when the predecessor has finished and its writes are
// visible. A kernel may read weights (never written) before pdl_wait(), nothing else, and must not
// write memory before it. Both are no-ops for a kernel launched without the attribute.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Launches kernel<<<grid, block, smem, s>>>(args...) with programmatic dependent launch allowed, and
// checks the launch.
template <class... KArgs, class... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, const char* what,
            Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr, cfg.numAttrs = pdl_enabled() ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
  if (e != cudaSuccess) fail("CUDA kernel launch failed: ", what, ": ", cudaGetErrorString(e));
}

}  // namespace elm::cuda
