// Prefill attention on the tensor cores: one sequence's step over an f16 KV cache, with 16-bit
// activations (float32 activations keep the exact float32 tiled kernel of attention.cu).
//
// A block takes 64 queries of one head; each of its 4 warps owns 16 query rows. Per tile of 64 keys
// (K and V rows copied to shared memory by cp.async, the next tile's copy in flight while this one is
// used), a warp scores its rows against the tile with mma.sync m16n8k16 (f16 in, float32 accumulate),
// applies the softcap and the cache's position mask, updates each row's running max and sum (online
// softmax, float32), then multiplies the probabilities, rounded to f16, by the tile's values with the
// same instruction. The score accumulators of two adjacent 8-key tiles are laid out exactly as the A
// operand of the second product wants them, so probabilities never go through shared memory.
//
// Fragment layouts of mma m16n8k16 (g = lane / 4, c = lane % 4): A (16 x 16, row-major) registers hold
// (row g, cols 2c..2c+1), (row g+8, cols 2c..), (row g, cols 2c+8..), (row g+8, cols 2c+8..); B (16 x 8)
// (k 2c..2c+1, col g), (k 2c+8.., col g); C (16 x 8) (row g, cols 2c, 2c+1), (row g+8, cols 2c, 2c+1).
#include <cuda_fp16.h>

#include "backend/cuda/attention_mask.cuh"
#include "backend/cuda/attention_mma.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/device.h"
#include "backend/cuda/rope.cuh"

namespace elm::cuda {

namespace {

constexpr int kRows = 64, kKeys = 64, kThreadsMma = 128;

__device__ __forceinline__ uint32_t pack_f16(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ uint32_t pack_halves(__half lo, __half hi) {
  const __half2 h = __halves2half2(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ uint32_t word_at(const __half* p) { return *reinterpret_cast<const uint32_t*>(p); }

// c += a b (m16n8k16, f16 operands, float32 accumulators).
__device__ __forceinline__ void mma_f16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// D: head dim (of keys and values). Shared memory: Q [64][LD], then K and V tiles [2][64][LD] each, rows
// LD = D + 8 halves apart (16-byte aligned, and the 8 rows read by one fragment load fall in distinct banks).
template <int D>
__global__ void __launch_bounds__(kThreadsMma) attn_prefill_mma_kernel(AttnArgs a, KvView kv, const int32_t* positions,
                                                                        const int32_t* seqs) {
  pdl_launch_dependents();
  pdl_wait();
  constexpr int LD = D + 8, NK = D / 16, ND = D / 8, CH = D / 8;
  extern __shared__ uint4 smem_raw[];
  __half* Qs = reinterpret_cast<__half*>(smem_raw);
  __half* Ks = Qs + kRows * LD;
  __half* Vs = Ks + 2 * kKeys * LD;
  __shared__ int32_t qpos[kRows], kpos[2][kKeys], range[2];

  const int KVH = kv.kv_heads, H = a.heads, G = H / KVH;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int q0 = blockIdx.x * kRows, h = blockIdx.y, kvh = h / G;
  const int seq = seqs[0];

  query_positions<kRows>(positions, q0, a.T, qpos, range);
  // Queries: rotated, scaled, rounded to f16.
  for (int i = tid; i < kRows * D; i += kThreadsMma) {
    const int r = i / D, d = i % D;
    const float v = q0 + r < a.T ? rope_value(a.q + (int64_t(q0 + r) * H + h) * D, d, qpos[r], a.rope_q) * a.scale : 0.f;
    Qs[r * LD + d] = __float2half_rn(v);
  }
  __syncthreads();
  int lo, hi;
  key_range(kv, range[0], range[1], a.window, lo, hi);

  const __half* kbase = static_cast<const __half*>(kv.k) + (int64_t(seq) * kv.cap * KVH + kvh) * D;
  const __half* vbase = static_cast<const __half*>(kv.v) + (int64_t(seq) * kv.cap * KVH + kvh) * D;
  const int32_t* pbase = kv.pos + int64_t(seq) * kv.cap;
  // Slots [k0, k0 + 64) into buffer `buf` (slots past hi zero-filled, their positions -1: masked).
  auto load_tile = [&](int buf, int k0) {
    for (int i = tid; i < kKeys * CH; i += kThreadsMma) {
      const int j = i / CH, ch = i % CH;
      const bool ok = k0 + j < hi;
      const int64_t off = (ok ? int64_t(k0 + j) * KVH * D : 0) + ch * 8;
      cp_async16(Ks + (buf * kKeys + j) * LD + ch * 8, kbase + off, ok);
      cp_async16(Vs + (buf * kKeys + j) * LD + ch * 8, vbase + off, ok);
    }
    if (tid < kKeys) kpos[buf][tid] = k0 + tid < hi ? pbase[k0 + tid] : -1;
    cp_async_commit();
  };

  // This warp's rows r0 = 16 warp + g and r1 = r0 + 8: query fragments, running max / sum, outputs.
  const int r0 = 16 * warp + g, r1 = r0 + 8;
  uint32_t qf[NK][4];
#pragma unroll
  for (int kk = 0; kk < NK; ++kk) {
    qf[kk][0] = word_at(Qs + r0 * LD + 16 * kk + 2 * c);
    qf[kk][1] = word_at(Qs + r1 * LD + 16 * kk + 2 * c);
    qf[kk][2] = word_at(Qs + r0 * LD + 16 * kk + 8 + 2 * c);
    qf[kk][3] = word_at(Qs + r1 * LD + 16 * kk + 8 + 2 * c);
  }
  const int32_t pq[2] = {qpos[r0], qpos[r1]};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[ND][4];
#pragma unroll
  for (int n = 0; n < ND; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

  if (lo < hi) load_tile(0, lo);
  int buf = 0;
  for (int k0 = lo; k0 < hi; k0 += kKeys, buf ^= 1) {
    const bool next = k0 + kKeys < hi;
    if (next) load_tile(buf ^ 1, k0 + kKeys);
    if (next) cp_async_wait<1>();
    else cp_async_wait<0>();
    __syncthreads();
    const __half* Kt = Ks + buf * kKeys * LD;
    const __half* Vt = Vs + buf * kKeys * LD;

    // Scores: 8 tiles of 8 keys; s[j][e]: row e < 2 ? r0 : r1, key 8 j + 2 c + (e & 1).
    float s[8][4];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < NK; ++kk) {
        const __half* kr = Kt + (8 * j + g) * LD + 16 * kk + 2 * c;
        mma_f16(s[j], qf[kk], word_at(kr), word_at(kr + 8));
      }
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = s[j][e];
        if (a.softcap > 0) v = a.softcap * tanhf(v / a.softcap);
        const int32_t q = pq[e >> 1];
        v = q >= 0 && key_visible(kpos[buf][8 * j + 2 * c + (e & 1)], q, a.window) ? v : -INFINITY;
        s[j][e] = v;
        mx[e >> 1] = fmaxf(mx[e >> 1], v);
      }
    float al[2], sum[2] = {0.f, 0.f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // the 4 lanes of a row
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      al[r] = m_new == -INFINITY ? 1.f : expf(m[r] - m_new);
      m[r] = m_new;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float mr = m[e >> 1];
        const float p = mr == -INFINITY ? 0.f : expf(s[j][e] - mr);
        s[j][e] = p;
        sum[e >> 1] += p;
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
      sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
      l[r] = l[r] * al[r] + sum[r];
    }
#pragma unroll
    for (int n = 0; n < ND; ++n) o[n][0] *= al[0], o[n][1] *= al[0], o[n][2] *= al[1], o[n][3] *= al[1];

    // Outputs += P V: keys in 4 steps of 16 (score tiles 2 kk and 2 kk + 1 form the A operand).
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const uint32_t pa[4] = {pack_f16(s[2 * kk][0], s[2 * kk][1]), pack_f16(s[2 * kk][2], s[2 * kk][3]),
                              pack_f16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_f16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int n = 0; n < ND; ++n) {
        const __half* vp = Vt + (16 * kk + 2 * c) * LD + 8 * n + g;
        mma_f16(o[n], pa, pack_halves(vp[0], vp[LD]), pack_halves(vp[8 * LD], vp[9 * LD]));
      }
    }
    __syncthreads();  // the next iteration's copy refills this buffer
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = r == 0 ? r0 : r1;
    if (q0 + row >= a.T) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
    float* out = a.out + (int64_t(q0 + row) * H + h) * D;
#pragma unroll
    for (int n = 0; n < ND; ++n) {
      out[8 * n + 2 * c] = o[n][2 * r] * inv;
      out[8 * n + 2 * c + 1] = o[n][2 * r + 1] * inv;
    }
  }
}

template <int D>
void launch_mma(const AttnArgs& a, const KvView& kv, const int32_t* positions, const int32_t* seqs, cudaStream_t s) {
  const size_t smem = size_t(5) * kRows * (D + 8) * sizeof(__half);
  auto* k = attn_prefill_mma_kernel<D>;
  allow_dynamic_smem(reinterpret_cast<const void*>(k), smem);
  launch(k, dim3(unsigned((a.T + kRows - 1) / kRows), unsigned(a.heads)), kThreadsMma, smem, s,
         "attention prefill (tensor cores)", a, kv, positions, seqs);
}

}  // namespace

bool attention_prefill_mma(const AttnArgs& a, const KvView& kv, const int32_t* positions, const int32_t* seqs,
                           cudaStream_t s) {
  if (!a.tensor_cores || !kv.half || kv.head_dim != kv.v_head_dim) return false;
  if (kv.head_dim == 64) return launch_mma<64>(a, kv, positions, seqs, s), true;
  if (kv.head_dim == 128) return launch_mma<128>(a, kv, positions, seqs, s), true;
  return false;
}

}  // namespace elm::cuda
