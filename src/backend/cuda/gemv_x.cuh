// The decode products' parameters and their int8 activations for quantized weights (gemv.cu): x staged
// in shared memory as int8 blocks, and the integer dot product of a 16-byte weight chunk with it.
#pragma once
#include "backend/cuda/common.cuh"

namespace elm::cuda {

constexpr int kThreads = 256, kWarps = kThreads / 32;

// Values in one 16-byte chunk of a weight row.
template <DType WT>
__host__ __device__ constexpr int chunk_values() {
  return WT == DType::F32 ? 4 : (WT == DType::F16 || WT == DType::BF16) ? 8 : WT == DType::Q8 ? 16 : 32;
}

struct GemvParams {
  const float* x;
  int T, K;
  const float* norm_w;
  float eps;
  bool norm, norm_add_one;
  int n;                  // weights (non-gated)
  int64_t offs[4];        // output row ranges of the weights in the unit index space
  DeviceWeight w[3];
  float* y[3];
  const float* bias[3];
  const float* residual[3];
  GateAct gate;
  int64_t units;          // output rows over all weights
};

// Bytes of one weight row of K values.
template <DType WT>
__device__ __forceinline__ int64_t row_bytes(int K) {
  return WT == DType::F32 ? 4 * int64_t(K) : (WT == DType::F16 || WT == DType::BF16) ? 2 * int64_t(K)
         : WT == DType::Q8 ? int64_t(K) : int64_t(K) / 2;
}

// ---- int8 activations for quantized weights ----
//
// x rows quantized once per launch like the CPU's kernels (cpu/qgemm: 32-value blocks, d = amax / 127,
// q = round-to-nearest-even(x * 127 / amax)), so a chunk of weights costs a few integer dot products
// (DP4A) instead of a float conversion and FMA per value. Shared memory per token and 32-value block b:
// lo[b] (int4: values 0-15), hi[b] (values 16-31, in a region 64 bytes off the 128-byte bank cycle so
// that Q8's lanes reading lo and hi alternately do not collide), ds[b] = {d, d * sum(q)}.
struct XQ {
  const int4* lo;
  const int4* hi;
  const float2* ds;
  int nb;  // blocks per token
};

// Shared memory of x staged as XQ for NT tokens of K values: 32 bytes of quants and a float2 per
// 32-value block and token, and the 64 bytes of bank offset.
__host__ __device__ constexpr size_t xq_bytes(int NT, int K) { return size_t(NT) * size_t(K / 32) * 40 + 64; }

// acc[t] += dot(chunk c of the row, x[t]) with int8 x; d, m: the chunk's scale and min.
template <DType WT, int NT>
__device__ __forceinline__ void chunk_dot_i8(uint4 w, float d, float m, const XQ& x, int c, float (&acc)[NT]) {
  if constexpr (WT == DType::Q4 || WT == DType::Q4M) {  // a chunk is one block: byte j = values j, j + 16
    const int l0 = int(w.x & 0x0F0F0F0Fu), l1 = int(w.y & 0x0F0F0F0Fu), l2 = int(w.z & 0x0F0F0F0Fu), l3 = int(w.w & 0x0F0F0F0Fu);
    const int h0 = int((w.x >> 4) & 0x0F0F0F0Fu), h1 = int((w.y >> 4) & 0x0F0F0F0Fu);
    const int h2 = int((w.z >> 4) & 0x0F0F0F0Fu), h3 = int((w.w >> 4) & 0x0F0F0F0Fu);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const int4 a = x.lo[t * x.nb + c], b = x.hi[t * x.nb + c];
      int s = __dp4a(l0, a.x, 0);
      s = __dp4a(l1, a.y, s), s = __dp4a(l2, a.z, s), s = __dp4a(l3, a.w, s);
      s = __dp4a(h0, b.x, s), s = __dp4a(h1, b.y, s), s = __dp4a(h2, b.z, s), s = __dp4a(h3, b.w, s);
      const float2 ds = x.ds[t * x.nb + c];
      if constexpr (WT == DType::Q4) acc[t] += d * (ds.x * float(s) - 8.f * ds.y);  // q - 8
      else acc[t] += d * ds.x * float(s) + m * ds.y;
    }
  } else {  // Q8: a chunk is half a block
    const int b = c >> 1;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const int4 a = (c & 1) ? x.hi[t * x.nb + b] : x.lo[t * x.nb + b];
      int s = __dp4a(int(w.x), a.x, 0);
      s = __dp4a(int(w.y), a.y, s), s = __dp4a(int(w.z), a.z, s), s = __dp4a(int(w.w), a.w, s);
      acc[t] += d * x.ds[t * x.nb + b].x * float(s);
    }
  }
}

// Stages x [NT, K] (rows past T zero) as XQ in `smem`, with the fused RMSNorm applied first. Every
// thread of the block calls it. `red`: NT * kWarps floats, `inv`: NT floats of shared scratch.
//
// This runs after the wait for the previous kernel, so its length is on the critical path of every
// decode product: its global loads are issued in batches (a loop that loaded, shuffled and stored one
// float4 at a time was a chain of dependent L2 round trips, K / 1024 of them per token, and one chain
// per token in verification steps), and the tokens are staged side by side rather than one after another.
__device__ __forceinline__ XQ stage_xq(const GemvParams& p, int NT, uint8_t* smem, float* red, float* inv) {
  const int K = p.K, K4 = K / 4, nb = K / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  XQ q;
  q.nb = nb;
  int4* lo = reinterpret_cast<int4*>(smem);
  int4* hi = reinterpret_cast<int4*>(smem + size_t(NT) * nb * 16 + 64);
  float2* ds = reinterpret_cast<float2*>(smem + size_t(NT) * nb * 32 + 64);
  q.lo = lo, q.hi = hi, q.ds = ds;
  const bool norm_w = p.norm && p.norm_w;
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  // Few registers here: they count against the whole kernel (the weight chunks requested before the
  // wait are live), and more of them would cost blocks per SM, so loads in flight.
  constexpr int B = 2;  // float4 loads of x in flight per thread
  if (p.norm) {
    // 1 / rms per token from kWarps partial sums: part v of token t sums float4s v * 32 + lane + 256 k.
    // Warp w computes the parts (t, v) with t * kWarps + v = w (mod kWarps), so all warps share the
    // loads whatever NT is, and every part is summed in the same order for any NT: a token's result
    // does not depend on how many tokens its step has (speculative verification relies on it).
    for (int tv = warp; tv < NT * kWarps; tv += kWarps) {
      const int t = tv / kWarps, v = tv % kWarps;
      float ss = 0.f;
      if (t < p.T) {
        const float4* x = reinterpret_cast<const float4*>(p.x + int64_t(t) * K);
        for (int g0 = v * 32 + lane; g0 < K4; g0 += kThreads * B) {
          float4 xv[B];
#pragma unroll
          for (int u = 0; u < B; ++u) xv[u] = g0 + kThreads * u < K4 ? x[g0 + kThreads * u] : zero;
#pragma unroll
          for (int u = 0; u < B; ++u) ss += xv[u].x * xv[u].x + xv[u].y * xv[u].y + xv[u].z * xv[u].z + xv[u].w * xv[u].w;
        }
      }
      ss = warp_sum(ss);
      if (lane == 0) red[tv] = ss;
    }
    __syncthreads();
    if (threadIdx.x < NT) {
      float sum = 0.f;
      for (int v = 0; v < kWarps; ++v) sum += red[threadIdx.x * kWarps + v];
      inv[threadIdx.x] = 1.0f / sqrtf(sum / float(K) + p.eps);
    }
    __syncthreads();
  }
  // Item i = t * K4w + g: float4 g of token t. Eight consecutive lanes quantize one 32-value block; K4w
  // is a multiple of 32, so a warp's items are four whole blocks of one token and the shuffles below
  // always have all 32 lanes (a warp past the end skips as a whole).
  const int K4w = (K4 + 31) / 32 * 32, items = NT * K4w;
  for (int i0 = threadIdx.x; i0 < items; i0 += kThreads * B) {
    float4 v[B];
#pragma unroll
    for (int u = 0; u < B; ++u) {
      const int i = i0 + kThreads * u, t = i / K4w, g = i - t * K4w;
      v[u] = i < items && g < K4 && t < p.T ? reinterpret_cast<const float4*>(p.x + int64_t(t) * K)[g] : zero;
    }
#pragma unroll
    for (int u = 0; u < B; ++u) {
      const int i = i0 + kThreads * u;
      if (i >= items) break;  // uniform per warp
      const int t = i / K4w, g = i - t * K4w;
      const bool in = g < K4;
      float4 x = v[u];
      if (norm_w && in) {  // the norm weight was prefetched into L2 before the wait
        float4 nw = reinterpret_cast<const float4*>(p.norm_w)[g];
        if (p.norm_add_one) nw.x += 1.f, nw.y += 1.f, nw.z += 1.f, nw.w += 1.f;
        x.x *= nw.x, x.y *= nw.y, x.z *= nw.z, x.w *= nw.w;
      }
      if (p.norm) {
        const float r = t < p.T ? inv[t] : 1.f;
        x.x *= r, x.y *= r, x.z *= r, x.w *= r;
      }
      float amax = fmaxf(fmaxf(fabsf(x.x), fabsf(x.y)), fmaxf(fabsf(x.z), fabsf(x.w)));
#pragma unroll
      for (int o = 1; o < 8; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
      const float id = amax > 0.f ? 127.f / amax : 0.f;
      auto quant = [id](float e) { return __float2int_rn(fminf(127.f, fmaxf(-127.f, e * id))); };
      const int q0 = quant(x.x), q1 = quant(x.y), q2 = quant(x.z), q3 = quant(x.w);
      int sum = q0 + q1 + q2 + q3;
#pragma unroll
      for (int o = 1; o < 8; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (in) {
        const int packed = (q0 & 0xFF) | (q1 & 0xFF) << 8 | (q2 & 0xFF) << 16 | int(uint32_t(q3 & 0xFF) << 24);
        const int b = g >> 3, j = g & 7;
        int* words = reinterpret_cast<int*>(j < 4 ? lo : hi) + (int64_t(t) * nb + b) * 4;
        words[j & 3] = packed;
        if (j == 0) {
          const float d = amax / 127.f;
          ds[t * nb + b] = make_float2(d, d * float(sum));
        }
      }
    }
  }
  __syncthreads();
  return q;
}

// Sum over the L lanes of a row (aligned groups of L lanes of the warp); every lane gets it.
template <int L>
__device__ __forceinline__ float lanes_sum(float v) {
#pragma unroll
  for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace elm::cuda
