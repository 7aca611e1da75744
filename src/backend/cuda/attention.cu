// Attention over the device KV cache (ops.def Attention; the CPU reference is cpu/attention.cpp).
//
// - kv_write stores the step's k (rotated: RoPE is fused here) and v rows at slot_of(pos).
// - Decode (any batch): flash-decoding. One block per (token, kv head, key split): the block scores its
//   keys for all query heads of the group (GQA: K and V are read once per group), keeps a running
//   max / sum / weighted V per head, and the last block of a (token, kv head) to finish combines the
//   splits (a ticket counter, so one launch suffices and the captured graph stays one node per op).
// - Prefill (one sequence, many tokens): 64 queries x 64 keys tiles in shared memory, float32
//   arithmetic, online softmax per query row.
// Masks follow the cache's pos[] (which position each slot holds): a key is visible when
// 0 <= p_k <= p_q and (window == 0 or p_q - p_k < window), exactly the CPU's rule.
#include <algorithm>
#include <cfloat>
#include <cstdlib>

#include "backend/cuda/attention_mask.cuh"
#include "backend/cuda/attention_mma.h"
#include "backend/cuda/common.cuh"
#include "backend/cuda/rope.cuh"

namespace elm::cuda {

namespace {

template <class KT>
__device__ __forceinline__ float kv_load(const KT* p) {
  if constexpr (std::is_same_v<KT, float>) return *p;
  else return __half2float(*p);
}
template <class KT>
__device__ __forceinline__ KT kv_cast(float v) {
  if constexpr (std::is_same_v<KT, float>) return v;
  else return __float2half_rn(v);
}

// A value as the cache holds it. The fused single-token write scores its own key and value from
// registers: rounded like this they equal what a step that wrote them first would read back, so a
// row's result does not depend on how many tokens its step has (speculative verification).
template <class KT>
__device__ __forceinline__ float kv_round(float v) {
  if constexpr (std::is_same_v<KT, float>) return v;
  else return __half2float(__float2half_rn(v));
}

template <class KT>
__global__ void kv_write_kernel(KvView kv, const float* k, const float* v, const int32_t* positions, const int32_t* seqs,
                                RopeArgs rk) {
  pdl_launch_dependents();
  pdl_wait();
  const int t = blockIdx.x;
  const int32_t pos = positions[t];
  const int seq = seqs[t];
  const int64_t slot = kv.ring ? pos % kv.cap : pos;
  const int64_t row = int64_t(seq) * kv.cap + slot;
  const int D = kv.head_dim, Dv = kv.v_head_dim, H = kv.kv_heads;
  KT* kc = static_cast<KT*>(kv.k) + row * H * D;
  KT* vc = static_cast<KT*>(kv.v) + row * H * Dv;
  const float* kt = k + int64_t(t) * H * D;
  const float* vt = v + int64_t(t) * H * Dv;
  for (int i = threadIdx.x; i < H * D; i += blockDim.x) kc[i] = kv_cast<KT>(rope_value(kt + (i / D) * D, i % D, pos, rk));
  for (int i = threadIdx.x; i < H * Dv; i += blockDim.x) vc[i] = kv_cast<KT>(vt[i]);
  if (threadIdx.x == 0) kv.pos[row] = pos;
}

__global__ void kv_truncate_kernel(int32_t* pos, int cap, int32_t n_past) {
  pdl_launch_dependents();
  pdl_wait();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < cap && pos[i] >= n_past) pos[i] = -1;
}

// ---- decode ----

constexpr int kDecThreads = 256, kMaxChunk = 256, kMaxAcc = 8, kMaxGroup = 32;
constexpr int kDecodeMaxT = 16;  // larger mixed batches run one split per (token, kv head)
constexpr int kMaxSplits = 32;
constexpr int kTileBytes = 64 * 1024;  // shared memory for one chunk's key and value rows

// Fewest keys worth a split of their own. Decode at short contexts is a chain of latencies (load the
// keys, score, softmax, weight the values, combine), so a split of few keys on more SMs finishes
// sooner; the combine costs one more round trip. ELM_CUDA_ATTN_SPLIT_KEYS overrides it (experiments).
int split_keys() {
  static const int keys = [] {
    const char* e = std::getenv("ELM_CUDA_ATTN_SPLIT_KEYS");
    const int n = e ? std::atoi(e) : 0;
    return n > 0 ? n : 64;
  }();
  return keys;
}

int decode_splits(int T, int cap) {
  if (T > kDecodeMaxT) return 1;
  return std::max(1, std::min(kMaxSplits, (cap + split_keys() - 1) / split_keys()));
}

// Bytes of one key / value row in the shared tiles: 16-byte multiples, keys padded by 16 bytes so that
// threads reading consecutive rows hit different banks.
__host__ __device__ inline int key_row_bytes(int D, int s) { return (D * s + 15) / 16 * 16 + 16; }
__host__ __device__ inline int value_row_bytes(int Dv, int s) { return (Dv * s + 15) / 16 * 16; }

// Keys per chunk: the most (a power of two, up to one per thread) whose rows fit the tile.
int decode_chunk(int D, int Dv, int s) {
  int c = kMaxChunk;
  while (c > 8 && c * (key_row_bytes(D, s) + value_row_bytes(Dv, s)) > kTileBytes) c /= 2;
  return c;
}

struct DecodeShape {
  int chunk;       // keys per chunk (decode_chunk)
  int split_keys;  // fewest keys per split (split_keys)
};

// Eight consecutive cache values (16- or 32-byte aligned when D is a multiple of 8).
template <class KT>
__device__ __forceinline__ void kv_load8(const KT* p, float (&v)[8]) {
  if constexpr (std::is_same_v<KT, float>) {
    const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(h[i]);
      v[2 * i] = f.x, v[2 * i + 1] = f.y;
    }
  }
}

// out4[i] = dot(q of head g0 + i, key) for the (up to) 4 heads g0.. of the group; qs is [G][D].
template <class KT>
__device__ __forceinline__ void dot_heads(const float* qs, int D, int G, const KT* key, float (&out4)[4], int g0) {
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  const int ng = min(4, G - g0);
  if (D % 8 == 0) {
#pragma unroll 4
    for (int d = 0; d < D; d += 8) {
      float kd[8];
      kv_load8(key + d, kd);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (i >= ng) break;
        const float* q = qs + (g0 + i) * D + d;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[i] += q[e] * kd[e];
      }
    }
  } else {
    for (int d = 0; d < D; ++d) {
      const float kd = kv_load(key + d);
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (i < ng) acc[i] += qs[(g0 + i) * D + d] * kd;
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) out4[i] = acc[i];
}

// The step's position and sequence of token t and the slots [s_lo, s_hi) of split `split`. The grid has
// room for nsplit splits (fixed when a decode step is captured); short contexts use fewer (`used`), at
// least split_keys keys each, and the blocks beyond them leave at once.
struct DecodeRange {
  int seq, pq, used, s_lo, s_hi;
  const int32_t* pbase;  // the sequence's slot positions
};
__device__ __forceinline__ DecodeRange decode_range(const AttnArgs& a, const KvView& kv, const int32_t* positions,
                                                    const int32_t* seqs, int t, int split, int nsplit, int split_keys) {
  DecodeRange r;
  r.seq = seqs[t], r.pq = positions[t];
  r.pbase = kv.pos + int64_t(r.seq) * kv.cap;
  int lo, hi;
  key_range(kv, r.pq, r.pq, a.window, lo, hi);
  const int n = max(0, hi - lo);
  r.used = max(1, min(nsplit, (n + split_keys - 1) / split_keys));
  const int per = (n + r.used - 1) / r.used;
  r.s_lo = lo + split * per, r.s_hi = min(hi, r.s_lo + per);
  return r;
}

// The end of a decode block (kDecThreads threads): acc[i] holds output idx = tid + i * kDecThreads of
// the block's heads (head idx / Dv, relative to the running max), m_run / l_run (shared) the running
// max and sum per head. One split: normalize and write. Several: publish the partial; the last block of
// the (token, kv head) to finish combines them (a ticket counter, reset for the next launch).
__device__ __forceinline__ void decode_finish(const AttnArgs& a, int t, int kvh, int G, int Dv, int split, int nsplit,
                                              int used, const float (&acc)[kMaxAcc], const float* m_run,
                                              const float* l_run) {
  __shared__ bool last_block;
  const int tid = threadIdx.x, H = a.heads;
  float* out = a.out + int64_t(t) * H * Dv + int64_t(kvh) * G * Dv;  // heads kvh*G .. of token t
  if (used == 1) {
#pragma unroll
    for (int i = 0; i < kMaxAcc; ++i) {
      const int idx = tid + i * kDecThreads;
      if (idx >= G * Dv) break;
      const float l = l_run[idx / Dv];
      out[idx] = l > 0.f ? acc[i] / l : 0.f;
    }
    return;
  }
  const int64_t stride = Dv + 2;  // per (token, head, split): acc[Dv], m, l
  float* work = a.work + ((int64_t(t) * H + kvh * G) * nsplit) * stride;
#pragma unroll
  for (int i = 0; i < kMaxAcc; ++i) {
    const int idx = tid + i * kDecThreads;
    if (idx >= G * Dv) break;
    const int g = idx / Dv, dv = idx % Dv;
    work[(int64_t(g) * nsplit + split) * stride + dv] = acc[i];
  }
  if (tid < G) {
    work[(int64_t(tid) * nsplit + split) * stride + Dv] = m_run[tid];
    work[(int64_t(tid) * nsplit + split) * stride + Dv + 1] = l_run[tid];
  }
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    int* counter = a.counters + blockIdx.x;
    last_block = atomicAdd(counter, 1) == used - 1;
    if (last_block) *counter = 0;  // ready for the next launch
  }
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  for (int idx = tid; idx < G * Dv; idx += kDecThreads) {
    const int g = idx / Dv, dv = idx % Dv;
    const float* wg = work + int64_t(g) * nsplit * stride;
    float M = -INFINITY;
    for (int s = 0; s < used; ++s) M = fmaxf(M, __ldcg(wg + s * stride + Dv));
    float num = 0.f, den = 0.f;
    if (M != -INFINITY) {
      for (int s = 0; s < used; ++s) {
        const float ms = __ldcg(wg + s * stride + Dv);
        if (ms == -INFINITY) continue;
        const float e = expf(ms - M);
        num += e * __ldcg(wg + s * stride + dv);
        den += e * __ldcg(wg + s * stride + Dv + 1);
      }
    }
    out[idx] = den > 0.f ? num / den : 0.f;
  }
}

// Shared memory of the decode kernel: float regions (offsets in floats, 16-byte aligned), then the
// key and value tiles of one chunk (offsets in bytes).
struct DecodeSmem {
  int qs, sc, kn, vn, red, floats;
  int krow, vrow, ks, vs, bytes;
  __host__ __device__ DecodeSmem(int G, int D, int Dv, int s, int chunk) {
    auto up4 = [](int n) { return (n + 3) / 4 * 4; };
    qs = 0, sc = up4(G * D), kn = sc + up4(G * chunk), vn = kn + up4(D), red = vn + up4(Dv);
    floats = red + kDecThreads * 8;
    krow = key_row_bytes(D, s), vrow = value_row_bytes(Dv, s);
    ks = floats * 4, vs = ks + chunk * krow, bytes = vs + chunk * vrow;
  }
};

// Flash-decoding over the cache. With a fused single-token write (k_new), the cache rows this block
// reads were all written by earlier steps (its own token's are taken from k_new / v_new), so the keys,
// values and their positions are requested before waiting for the previous kernel (programmatic
// dependent launch) and arrive while it drains; only q, k_new and v_new need the wait.
template <class KT>
__global__ void __launch_bounds__(kDecThreads, 1) attn_decode_kernel(AttnArgs a, KvView kv, const int32_t* positions,
                                                                  const int32_t* seqs, DecodeShape shape) {
  pdl_launch_dependents();
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  const int KVH = kv.kv_heads, D = kv.head_dim, Dv = kv.v_head_dim, H = a.heads, G = H / KVH;
  const int chunk = shape.chunk;
  const DecodeSmem L(G, D, Dv, int(sizeof(KT)), chunk);
  float* qs = smem + L.qs;  // [G][D] rotated, scaled queries
  float* sc = smem + L.sc;  // [G][chunk] scores, then probabilities
  float* kn = smem + L.kn;  // [D] this token's rotated key (fused write)
  float* vn = smem + L.vn;  // [Dv] this token's value (fused write)
  float* red = smem + L.red;
  uint8_t* ks = reinterpret_cast<uint8_t*>(smem) + L.ks;  // [chunk] key rows of L.krow bytes
  uint8_t* vs = reinterpret_cast<uint8_t*>(smem) + L.vs;  // [chunk] value rows of L.vrow bytes
  __shared__ float m_run[kMaxGroup], l_run[kMaxGroup], alpha[kMaxGroup];

  const int t = blockIdx.x / KVH, kvh = blockIdx.x % KVH, split = blockIdx.y, nsplit = gridDim.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const KT* kbase = static_cast<const KT*>(kv.k);
  const KT* vbase = static_cast<const KT*>(kv.v);
  const int64_t krows = int64_t(KVH) * D, vrows = int64_t(KVH) * Dv;  // cache row strides (values)
  const bool aligned = (D * sizeof(KT)) % 16 == 0 && (Dv * sizeof(KT)) % 16 == 0;

  // Chunk [c0, c0 + cnt) of this sequence's slots into the tiles (asynchronously when aligned) and the
  // position of this thread's slot into pos_j.
  int seq = 0, pq = 0, used = 1, s_lo = 0, s_hi = 0, pos_j = -1;
  const int32_t* pbase = nullptr;
  auto request = [&](int c0) {
    const int cnt = min(chunk, s_hi - c0);
    const KT* k0 = kbase + (int64_t(seq) * kv.cap + c0) * krows + int64_t(kvh) * D;
    const KT* v0 = vbase + (int64_t(seq) * kv.cap + c0) * vrows + int64_t(kvh) * Dv;
    if (aligned) {
      const int kq = D * int(sizeof(KT)) / 16, vq = Dv * int(sizeof(KT)) / 16;
      for (int i = tid; i < cnt * kq; i += kDecThreads)
        cp_async16(ks + (i / kq) * L.krow + (i % kq) * 16, reinterpret_cast<const uint8_t*>(k0 + (i / kq) * krows) + (i % kq) * 16, true);
      for (int i = tid; i < cnt * vq; i += kDecThreads)
        cp_async16(vs + (i / vq) * L.vrow + (i % vq) * 16, reinterpret_cast<const uint8_t*>(v0 + (i / vq) * vrows) + (i % vq) * 16, true);
      cp_async_commit();
    } else {
      for (int i = tid; i < cnt * D; i += kDecThreads)
        reinterpret_cast<KT*>(ks + (i / D) * L.krow)[i % D] = k0[(i / D) * krows + i % D];
      for (int i = tid; i < cnt * Dv; i += kDecThreads)
        reinterpret_cast<KT*>(vs + (i / Dv) * L.vrow)[i % Dv] = v0[(i / Dv) * vrows + i % Dv];
    }
    pos_j = tid < cnt ? pbase[c0 + tid] : -1;
  };
  // This split's slots and its first chunk's requests; false when it has no keys to score.
  auto start = [&]() {
    const DecodeRange r = decode_range(a, kv, positions, seqs, t, split, nsplit, shape.split_keys);
    seq = r.seq, pq = r.pq, pbase = r.pbase, used = r.used, s_lo = r.s_lo, s_hi = r.s_hi;
    if (split >= used) return false;
    if (s_lo < s_hi) request(s_lo);
    return true;
  };
  // Positions and sequences come from the step's upload, which precedes every kernel of the step.
  const bool early = a.k_new != nullptr;
  if (early && !start()) return;
  pdl_wait();
  if (!early && !start()) return;

  for (int i = tid; i < G * D; i += kDecThreads) {
    const int g = i / D, d = i % D;
    qs[i] = rope_value(a.q + (int64_t(t) * H + kvh * G + g) * D, d, pq, a.rope_q) * a.scale;
  }
  // Fused cache write (single-token steps): this token's key and value come from the step's k and v,
  // not from the cache, and the first split stores them there for later steps.
  const int64_t s_cur = a.k_new ? (kv.ring ? pq % kv.cap : pq) : -1;
  if (a.k_new) {
    for (int d = tid; d < D; d += kDecThreads)
      kn[d] = kv_round<KT>(rope_value(a.k_new + (int64_t(t) * KVH + kvh) * D, d, pq, a.rope_k));
    for (int d = tid; d < Dv; d += kDecThreads) vn[d] = kv_round<KT>(a.v_new[(int64_t(t) * KVH + kvh) * Dv + d]);
  }
  if (tid < G) m_run[tid] = -INFINITY, l_run[tid] = 0.f;
  float acc[kMaxAcc];
#pragma unroll
  for (int i = 0; i < kMaxAcc; ++i) acc[i] = 0.f;
  __syncthreads();
  if (a.k_new && split == 0) {
    const int64_t row = int64_t(seq) * kv.cap + s_cur;
    KT* kc = const_cast<KT*>(kbase) + row * krows + int64_t(kvh) * D;
    KT* vc = const_cast<KT*>(vbase) + row * vrows + int64_t(kvh) * Dv;
    for (int d = tid; d < D; d += kDecThreads) kc[d] = kv_cast<KT>(kn[d]);
    for (int d = tid; d < Dv; d += kDecThreads) vc[d] = kv_cast<KT>(vn[d]);
    if (kvh == 0 && tid == 0) kv.pos[row] = pq;
  }

  // V accumulation layout: with Dv a multiple of 8, each thread owns 8 consecutive outputs (one head)
  // of one subset of the keys (V8 vectors x nsets subsets), so a chunk's keys are summed in parallel.
  const bool vec = Dv % 8 == 0;
  const int V8 = G * Dv / 8, nsets = vec ? kDecThreads / V8 : 0;
  const int vi = vec ? tid % V8 : 0, vset = vec ? tid / V8 : 0;
  const bool vown = vec && vset < nsets;
  const int vg = vi * 8 / (Dv > 0 ? Dv : 1), vd = vi * 8 % (Dv > 0 ? Dv : 1);
  float acc8[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};

  for (int c0 = s_lo; c0 < s_hi; c0 += chunk) {
    const int cnt = min(chunk, s_hi - c0);
    cp_async_wait<0>();
    __syncthreads();  // the chunk's rows are in the tiles
    // Scores of this chunk's keys (one key per thread), -inf where masked. A slot's stale row is read
    // whether or not it is visible (and this token's own slot before its write): the mask decides.
    if (tid < chunk) {
      const int j = c0 + tid;
      const bool mine = j == s_cur, in = tid < cnt;
      const bool valid = in && (mine || key_visible(pos_j, pq, a.window));
      const KT* key = reinterpret_cast<const KT*>(ks + tid * L.krow);
      for (int g0 = 0; g0 < G; g0 += 4) {
        float d4[4] = {0.f, 0.f, 0.f, 0.f};
        if (in) {
          if (mine) dot_heads(qs, D, G, kn, d4, g0);
          else dot_heads(qs, D, G, key, d4, g0);
        }
        for (int i = 0; i < 4 && g0 + i < G; ++i) {
          float s = d4[i];
          if (a.softcap > 0) s = a.softcap * tanhf(s / a.softcap);
          sc[(g0 + i) * chunk + tid] = valid ? s : -INFINITY;
        }
      }
    }
    __syncthreads();
    // Running max and sum per head; scores become probabilities (relative to the new max).
    for (int g = warp; g < G; g += kDecThreads / 32) {
      float mx = -INFINITY;
      for (int i = lane; i < cnt; i += 32) mx = fmaxf(mx, sc[g * chunk + i]);
      mx = warp_max(mx);
      const float m_old = m_run[g], m_new = fmaxf(m_old, mx);
      float sum = 0.f;
      for (int i = lane; i < cnt; i += 32) {
        const float p = m_new == -INFINITY ? 0.f : expf(sc[g * chunk + i] - m_new);
        sc[g * chunk + i] = p;
        sum += p;
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const float al = m_new == -INFINITY ? 1.f : expf(m_old - m_new);
        alpha[g] = al;
        l_run[g] = l_run[g] * al + sum;
        m_run[g] = m_new;
      }
    }
    __syncthreads();
    // Weighted V rows (masked slots have p = 0 and finite, zero-initialized or stale, values).
    if (vown) {
      const float al = alpha[vg];
#pragma unroll
      for (int e = 0; e < 8; ++e) acc8[e] *= al;
      const float* pg = sc + vg * chunk;
#pragma unroll 4
      for (int jj = vset; jj < cnt; jj += nsets) {
        float v[8];
        if (c0 + jj == s_cur) {
#pragma unroll
          for (int e = 0; e < 8; ++e) v[e] = vn[vd + e];
        } else {
          kv_load8(reinterpret_cast<const KT*>(vs + jj * L.vrow) + vd, v);
        }
        const float p = pg[jj];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc8[e] += p * v[e];
      }
    } else if (!vec) {
#pragma unroll
      for (int i = 0; i < kMaxAcc; ++i) {
        const int idx = tid + i * kDecThreads;
        if (idx >= G * Dv) break;
        const int g = idx / Dv, dv = idx % Dv;
        float s = acc[i] * alpha[g];
        const float* pg = sc + g * chunk;
        for (int jj = 0; jj < cnt; ++jj)
          s += pg[jj] * (c0 + jj == s_cur ? vn[dv] : kv_load(reinterpret_cast<const KT*>(vs + jj * L.vrow) + dv));
        acc[i] = s;
      }
    }
    __syncthreads();  // the tiles and scores are free again
    if (c0 + chunk < s_hi) request(c0 + chunk);
  }
  if (vec) {  // sum the key subsets
    if (vown)
#pragma unroll
      for (int e = 0; e < 8; ++e) red[vset * G * Dv + vi * 8 + e] = acc8[e];
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kMaxAcc; ++i) {
      const int idx = tid + i * kDecThreads;
      float s = 0.f;
      if (idx < G * Dv)
        for (int k = 0; k < nsets; ++k) s += red[k * G * Dv + idx];
      acc[i] = s;
    }
  }

  decode_finish(a, t, kvh, G, Dv, split, nsplit, used, acc, m_run, l_run);
}

// ---- decode: teams of 8 lanes per key ----
//
// The common decode shapes (f16 cache, head dims of up to 256 in 8-value chunks, at most 512 outputs per
// kv head) take a kernel without shared tiles or phases: the block's 32 teams of 8 lanes take the
// split's keys in turn, each lane reading 16 bytes of the key and value rows straight into registers
// (the next round's rows requested before this round's arithmetic), a team scoring its key for every
// head of the group with a 3-step shuffle sum and keeping its own online softmax and weighted-value
// sums in registers. Barriers come only at the start (queries) and in the final combine of the teams,
// so a short context is a few dependent steps rather than the tiled kernel's chain of phases (13 us at
// a 10-key context for llama3.2-1b under ncu). The first round's rows are requested before the wait for
// the previous kernel, as in the tiled kernel.
constexpr int kTeam = 8, kTeams = kDecThreads / kTeam, kTeamMaxOut = 512, kTeamMaxD = 256;

// Whether the team kernel takes these shapes; NC: 16-byte chunks per lane of a row, GM: heads per
// group rounded up to a power of two (its register accumulators: GM x NC x 8 floats).
bool team_shape(int G, int D, int Dv, int& NC, int& GM) {
  static const bool on = [] {
    const char* e = std::getenv("ELM_CUDA_ATTN_TEAMS");
    return !(e && std::atoi(e) == 0);
  }();
  const int dmax = std::max(D, Dv);
  if (!on || D % 8 || Dv % 8 || dmax > kTeamMaxD) return false;
  NC = dmax <= 64 ? 1 : dmax <= 128 ? 2 : 4;
  GM = G <= 1 ? 1 : G <= 2 ? 2 : G <= 4 ? 4 : G <= 8 ? 8 : 0;
  return GM > 0 && GM * NC * 64 <= kTeamMaxOut;
}

template <int NC>
struct TeamRows {
  uint4 k[NC], v[NC];  // this lane's chunks tl + 8 i of the key and value rows
  int32_t pos;         // the slot's position
};

__device__ __forceinline__ void halves8(uint4 u, float (&f)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(h[i]);
    f[2 * i] = v.x, f[2 * i + 1] = v.y;
  }
}

template <int NC, int GM>
__global__ void __launch_bounds__(kDecThreads) attn_decode_team_kernel(AttnArgs a, KvView kv, const int32_t* positions,
                                                                      const int32_t* seqs, DecodeShape shape) {
  pdl_launch_dependents();
  constexpr int kWarpsPer = kDecThreads / 32;
  __shared__ __align__(16) float qs[kTeamMaxOut];  // [G][D] rotated, scaled queries
  __shared__ __align__(16) float kn[kTeamMaxD];    // this token's rotated key (fused write)
  __shared__ __align__(16) float vn[kTeamMaxD];    // ... and value
  __shared__ float red[kWarpsPer][kTeamMaxOut];    // per warp: weighted values [G][Dv]
  __shared__ float red_m[kWarpsPer][GM], red_l[kWarpsPer][GM];
  __shared__ float m_run[GM], l_run[GM];
  const int KVH = kv.kv_heads, D = kv.head_dim, Dv = kv.v_head_dim, H = a.heads, G = H / KVH;
  const int t = blockIdx.x / KVH, kvh = blockIdx.x % KVH, split = blockIdx.y, nsplit = gridDim.y;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, team = tid / kTeam, tl = tid % kTeam;
  const int DC = D / 8, DvC = Dv / 8;  // 8-value chunks of a key / value row
  const __half* kbase = static_cast<const __half*>(kv.k) + int64_t(kvh) * D;
  const __half* vbase = static_cast<const __half*>(kv.v) + int64_t(kvh) * Dv;
  const int64_t krows = int64_t(KVH) * D, vrows = int64_t(KVH) * Dv;  // cache row strides (values)

  DecodeRange r{};
  // Slot j's rows (zeros past the split) and position into `out`.
  auto fetch = [&](int j, TeamRows<NC>& out) {
    const bool in = j < r.s_hi;
    const int64_t row = int64_t(r.seq) * kv.cap + j;
#pragma unroll
    for (int i = 0; i < NC; ++i) {
      const int c = tl + kTeam * i;
      out.k[i] = in && c < DC ? reinterpret_cast<const uint4*>(kbase + row * krows)[c] : make_uint4(0, 0, 0, 0);
      out.v[i] = in && c < DvC ? reinterpret_cast<const uint4*>(vbase + row * vrows)[c] : make_uint4(0, 0, 0, 0);
    }
    out.pos = in ? r.pbase[j] : -1;
  };
  TeamRows<NC> cur;
  const bool early = a.k_new != nullptr;  // see attn_decode_kernel
  if (early) {
    r = decode_range(a, kv, positions, seqs, t, split, nsplit, shape.split_keys);
    if (split >= r.used) return;
    fetch(r.s_lo + team, cur);
  }
  pdl_wait();
  if (!early) {
    r = decode_range(a, kv, positions, seqs, t, split, nsplit, shape.split_keys);
    if (split >= r.used) return;
    fetch(r.s_lo + team, cur);
  }

  // Queries, and this token's key and value, requested together.
  const int pq = r.pq, nq = G * D, nk = early ? D : 0, nv = early ? Dv : 0;
  for (int i = tid; i < nq + nk + nv; i += kDecThreads) {
    if (i < nq) {
      qs[i] = rope_value(a.q + (int64_t(t) * H + kvh * G + i / D) * D, i % D, pq, a.rope_q) * a.scale;
    } else if (i < nq + nk) {
      kn[i - nq] = kv_round<__half>(rope_value(a.k_new + (int64_t(t) * KVH + kvh) * D, i - nq, pq, a.rope_k));
    } else {
      vn[i - nq - nk] = kv_round<__half>(a.v_new[(int64_t(t) * KVH + kvh) * Dv + i - nq - nk]);
    }
  }
  __syncthreads();
  const int64_t s_cur = early ? (kv.ring ? pq % kv.cap : pq) : -1;
  if (early && split == 0) {  // the fused cache write (see attn_decode_kernel)
    const int64_t row = int64_t(r.seq) * kv.cap + s_cur;
    __half* kc = const_cast<__half*>(kbase) + row * krows;
    __half* vc = const_cast<__half*>(vbase) + row * vrows;
    for (int d = tid; d < D; d += kDecThreads) kc[d] = __float2half_rn(kn[d]);
    for (int d = tid; d < Dv; d += kDecThreads) vc[d] = __float2half_rn(vn[d]);
    if (kvh == 0 && tid == 0) kv.pos[row] = pq;
  }

  float m[GM], l[GM], acc[GM][NC][8];
#pragma unroll
  for (int g = 0; g < GM; ++g) {
    m[g] = -INFINITY, l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < NC; ++i)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][i][e] = 0.f;
  }
  // Rounds over the split's slots: team `team` takes slot j0 + team. Every lane runs every round (the
  // shuffles need the whole warp); slots past the split are invalid.
  for (int j0 = r.s_lo; j0 < r.s_hi; j0 += kTeams) {
    const int j = j0 + team;
    TeamRows<NC> nxt;
    if (j0 + kTeams < r.s_hi) fetch(j + kTeams, nxt);
    const bool mine = j == s_cur;
    const bool valid = j < r.s_hi && (mine || key_visible(cur.pos, pq, a.window));
    float kf[NC][8], vf[NC][8];
#pragma unroll
    for (int i = 0; i < NC; ++i) {
      const int c = tl + kTeam * i;
      halves8(cur.k[i], kf[i]);
      halves8(cur.v[i], vf[i]);
      if (mine) {
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          kf[i][e] = c < DC ? kn[8 * c + e] : 0.f;
          vf[i][e] = c < DvC ? vn[8 * c + e] : 0.f;
        }
      }
    }
#pragma unroll
    for (int g = 0; g < GM; ++g) {
      if (g >= G) break;
      float s = 0.f;
#pragma unroll
      for (int i = 0; i < NC; ++i) {
        const int c = tl + kTeam * i;
        if (c < DC) {
          const float4 q0 = reinterpret_cast<const float4*>(qs + g * D)[2 * c];
          const float4 q1 = reinterpret_cast<const float4*>(qs + g * D)[2 * c + 1];
          s += q0.x * kf[i][0] + q0.y * kf[i][1] + q0.z * kf[i][2] + q0.w * kf[i][3] + q1.x * kf[i][4] +
               q1.y * kf[i][5] + q1.z * kf[i][6] + q1.w * kf[i][7];
        }
      }
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      s += __shfl_xor_sync(0xffffffffu, s, 2);
      s += __shfl_xor_sync(0xffffffffu, s, 4);
      if (a.softcap > 0) s = a.softcap * tanhf(s / a.softcap);
      if (valid) {
        const float mn = fmaxf(m[g], s);
        const float al = expf(m[g] - mn), p = expf(s - mn);  // al = 0 for the first key (m = -inf)
        l[g] = l[g] * al + p;
#pragma unroll
        for (int i = 0; i < NC; ++i)
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[g][i][e] = acc[g][i][e] * al + p * vf[i][e];
        m[g] = mn;
      }
    }
    if (j0 + kTeams < r.s_hi) cur = nxt;
  }

  // Combine the warp's 4 teams (lanes 8 and 16 apart hold the same chunks), then the warps.
#pragma unroll
  for (int g = 0; g < GM; ++g) {
    if (g >= G) break;
    float M = fmaxf(m[g], __shfl_xor_sync(0xffffffffu, m[g], 8));
    M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, 16));
    const float e = m[g] == -INFINITY ? 0.f : expf(m[g] - M);
    float lw = l[g] * e;
    lw += __shfl_xor_sync(0xffffffffu, lw, 8);
    lw += __shfl_xor_sync(0xffffffffu, lw, 16);
#pragma unroll
    for (int i = 0; i < NC; ++i) {
      const int c = tl + kTeam * i;
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        float v = acc[g][i][k] * e;
        v += __shfl_xor_sync(0xffffffffu, v, 8);
        v += __shfl_xor_sync(0xffffffffu, v, 16);
        if (lane < kTeam && c < DvC) red[warp][g * Dv + 8 * c + k] = v;
      }
    }
    if (lane == 0) red_m[warp][g] = M, red_l[warp][g] = lw;
  }
  __syncthreads();
  if (tid < G) {
    float M = -INFINITY, L = 0.f;
    for (int w = 0; w < kWarpsPer; ++w) M = fmaxf(M, red_m[w][tid]);
    for (int w = 0; w < kWarpsPer; ++w)
      if (red_m[w][tid] != -INFINITY) L += expf(red_m[w][tid] - M) * red_l[w][tid];
    m_run[tid] = M, l_run[tid] = L;
  }
  float out[kMaxAcc];
#pragma unroll
  for (int i = 0; i < kMaxAcc; ++i) {
    const int idx = tid + i * kDecThreads;
    out[i] = 0.f;
    if (idx >= G * Dv) continue;
    const int g = idx / Dv;
    float M = -INFINITY;
    for (int w = 0; w < kWarpsPer; ++w) M = fmaxf(M, red_m[w][g]);
    for (int w = 0; w < kWarpsPer; ++w)
      if (red_m[w][g] != -INFINITY) out[i] += expf(red_m[w][g] - M) * red[w][idx];
  }
  __syncthreads();  // m_run, l_run
  decode_finish(a, t, kvh, G, Dv, split, nsplit, r.used, out, m_run, l_run);
}

template <int NC, int GM>
void launch_team(const AttnArgs& a, const KvView& kv, const int32_t* positions, const int32_t* seqs, int nsplit,
                 DecodeShape shape, cudaStream_t s) {
  launch(attn_decode_team_kernel<NC, GM>, dim3(unsigned(a.T * kv.kv_heads), unsigned(nsplit)), kDecThreads, 0, s,
         "attention decode", a, kv, positions, seqs, shape);
}

// The team kernel for these shapes; false when it does not take them.
bool launch_team_decode(const AttnArgs& a, const KvView& kv, const int32_t* positions, const int32_t* seqs,
                        int nsplit, DecodeShape shape, cudaStream_t s) {
  int NC = 0, GM = 0;
  if (!kv.half || !team_shape(a.heads / kv.kv_heads, kv.head_dim, kv.v_head_dim, NC, GM)) return false;
  switch (NC * 16 + GM) {
    case 17: launch_team<1, 1>(a, kv, positions, seqs, nsplit, shape, s); return true;
    case 18: launch_team<1, 2>(a, kv, positions, seqs, nsplit, shape, s); return true;
    case 20: launch_team<1, 4>(a, kv, positions, seqs, nsplit, shape, s); return true;
    case 24: launch_team<1, 8>(a, kv, positions, seqs, nsplit, shape, s); return true;
    case 33: launch_team<2, 1>(a, kv, positions, seqs, nsplit, shape, s); return true;
    case 34: launch_team<2, 2>(a, kv, positions, seqs, nsplit, shape, s); return true;
    case 36: launch_team<2, 4>(a, kv, positions, seqs, nsplit, shape, s); return true;
    case 65: launch_team<4, 1>(a, kv, positions, seqs, nsplit, shape, s); return true;
    case 66: launch_team<4, 2>(a, kv, positions, seqs, nsplit, shape, s); return true;
    default: return false;
  }
}

// ---- prefill ----

constexpr int PQ = 64, PK = 64;

template <class KT, int DMAX>
__global__ void __launch_bounds__(256) attn_prefill_kernel(AttnArgs a, KvView kv, const int32_t* positions,
                                                           const int32_t* seqs) {
  pdl_launch_dependents();
  pdl_wait();
  extern __shared__ float smem[];
  constexpr int LD = DMAX + 1, NC = DMAX / 16;
  float* Qs = smem;              // [PQ][LD]
  float* Ks = Qs + PQ * LD;      // [PK][LD]
  float* Vs = Ks + PK * LD;      // [PK][LD]
  float* Ps = Vs + PK * LD;      // [PQ][PK + 1]
  __shared__ int32_t qpos[PQ], kpos[PK];
  __shared__ int32_t range[2];

  const int KVH = kv.kv_heads, D = kv.head_dim, Dv = kv.v_head_dim, H = a.heads, G = H / KVH;
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const int q0 = blockIdx.x * PQ, h = blockIdx.y, kvh = h / G;
  const int seq = seqs[0];

  query_positions<PQ>(positions, q0, a.T, qpos, range);
  for (int i = tid; i < PQ * D; i += 256) {
    const int r = i / D, d = i % D;
    Qs[r * LD + d] = q0 + r < a.T
                         ? rope_value(a.q + (int64_t(q0 + r) * H + h) * D, d, qpos[r], a.rope_q) * a.scale
                         : 0.f;
  }
  __syncthreads();
  int lo, hi;
  key_range(kv, range[0], range[1], a.window, lo, hi);

  float m[4], l[4], acc[4][NC];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY, l[i] = 0.f;
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[i][c] = 0.f;
  }
  const KT* kbase = static_cast<const KT*>(kv.k) + (int64_t(seq) * kv.cap * KVH + kvh) * D;
  const KT* vbase = static_cast<const KT*>(kv.v) + (int64_t(seq) * kv.cap * KVH + kvh) * Dv;
  const int32_t* pbase = kv.pos + int64_t(seq) * kv.cap;

  for (int k0 = lo; k0 < hi; k0 += PK) {
    for (int i = tid; i < PK * D; i += 256) {
      const int j = i / D, d = i % D;
      Ks[j * LD + d] = k0 + j < hi ? kv_load(kbase + int64_t(k0 + j) * KVH * D + d) : 0.f;
    }
    for (int i = tid; i < PK * Dv; i += 256) {
      const int j = i / Dv, d = i % Dv;
      Vs[j * LD + d] = k0 + j < hi ? kv_load(vbase + int64_t(k0 + j) * KVH * Dv + d) : 0.f;
    }
    if (tid < PK) kpos[tid] = k0 + tid < hi ? pbase[k0 + tid] : -1;
    __syncthreads();

    // Scores for rows ty*4 + i and keys tx + 16 j.
    float s[4][4] = {};
#pragma unroll 4
    for (int d = 0; d < D; ++d) {
      float qv[4], kv4[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) qv[i] = Qs[(ty * 4 + i) * LD + d];
#pragma unroll
      for (int j = 0; j < 4; ++j) kv4[j] = Ks[(tx + 16 * j) * LD + d];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) s[i][j] += qv[i] * kv4[j];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int32_t pq = qpos[ty * 4 + i];
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float v = s[i][j];
        if (a.softcap > 0) v = a.softcap * tanhf(v / a.softcap);
        s[i][j] = pq >= 0 && key_visible(kpos[tx + 16 * j], pq, a.window) ? v : -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
#pragma unroll
      for (int o = 8; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_new = fmaxf(m[i], mx);
      const float al = m_new == -INFINITY ? 1.f : expf(m[i] - m_new);
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float p = m_new == -INFINITY ? 0.f : expf(s[i][j] - m_new);
        Ps[(ty * 4 + i) * (PK + 1) + tx + 16 * j] = p;
        sum += p;
      }
#pragma unroll
      for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      l[i] = l[i] * al + sum;
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < NC; ++c) acc[i][c] *= al;
    }
    __syncthreads();
    const int nk = min(PK, hi - k0);
    for (int j = 0; j < nk; ++j) {
      float pv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) pv[i] = Ps[(ty * 4 + i) * (PK + 1) + j];
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const float v = Vs[j * LD + tx + 16 * c];
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i][c] += pv[i] * v;
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty * 4 + i;
    if (q0 + r >= a.T) continue;
    float* o = a.out + (int64_t(q0 + r) * H + h) * Dv;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = tx + 16 * c;
      if (d < Dv) o[d] = l[i] > 0.f ? acc[i][c] / l[i] : 0.f;
    }
  }
}

template <class KT, int DMAX>
void launch_prefill(const AttnArgs& a, const KvView& kv, const int32_t* positions, const int32_t* seqs,
                    cudaStream_t s) {
  const size_t smem = (size_t(3) * 64 * (DMAX + 1) + size_t(PQ) * (PK + 1)) * 4;
  auto* k = attn_prefill_kernel<KT, DMAX>;
  allow_dynamic_smem(reinterpret_cast<const void*>(k), smem);
  launch(k, dim3(unsigned((a.T + PQ - 1) / PQ), unsigned(a.heads)), 256, smem, s, "attention prefill", a, kv,
         positions, seqs);
}

template <class KT>
void launch_attention(const AttnArgs& a, const KvView& kv, const int32_t* positions, const int32_t* seqs,
                      cudaStream_t s) {
  const int dmax = std::max(kv.head_dim, kv.v_head_dim);
  if (a.single_seq && a.T > kDecodeMaxT) {
    if (attention_prefill_mma(a, kv, positions, seqs, s)) return;
    if (dmax <= 64) return launch_prefill<KT, 64>(a, kv, positions, seqs, s);
    if (dmax <= 128) return launch_prefill<KT, 128>(a, kv, positions, seqs, s);
    return launch_prefill<KT, 256>(a, kv, positions, seqs, s);
  }
  const int G = a.heads / kv.kv_heads;
  const int nsplit = decode_splits(a.T, kv.cap);
  const DecodeShape shape{decode_chunk(kv.head_dim, kv.v_head_dim, int(sizeof(KT))), split_keys()};
  if (launch_team_decode(a, kv, positions, seqs, nsplit, shape, s)) return;
  const size_t smem = size_t(DecodeSmem(G, kv.head_dim, kv.v_head_dim, int(sizeof(KT)), shape.chunk).bytes);
  auto* k = attn_decode_kernel<KT>;
  allow_dynamic_smem(reinterpret_cast<const void*>(k), smem);
  launch(k, dim3(unsigned(a.T * kv.kv_heads), unsigned(nsplit)), kDecThreads, smem, s, "attention decode", a, kv,
         positions, seqs, shape);
}

}  // namespace

size_t attention_work_floats(int max_T, int heads, int v_head_dim, int cap) {
  const int T = std::min(max_T, kDecodeMaxT);
  return size_t(T) * size_t(heads) * size_t(decode_splits(T, cap)) * size_t(v_head_dim + 2);
}

size_t attention_counters(int max_T, int heads) { return size_t(max_T) * size_t(heads); }

bool attention_supported(int heads, int kv_heads, int head_dim, int v_head_dim) {
  if (kv_heads <= 0 || heads % kv_heads) return false;
  const int G = heads / kv_heads;
  return G <= kMaxGroup && G * v_head_dim <= kDecThreads * kMaxAcc && head_dim <= 256 && v_head_dim <= 256;
}

void kv_write(const KvView& kv, const float* k, const float* v, int T, const int32_t* positions, const int32_t* seqs,
              const RopeArgs& rope_k, cudaStream_t s) {
  if (kv.half) launch(kv_write_kernel<__half>, unsigned(T), 256, 0, s, "kv_write", kv, k, v, positions, seqs, rope_k);
  else launch(kv_write_kernel<float>, unsigned(T), 256, 0, s, "kv_write", kv, k, v, positions, seqs, rope_k);
}

void kv_reset(const KvView& kv, int seq, cudaStream_t s) {
  ELM_CUDA_CHECK(cudaMemsetAsync(kv.pos + int64_t(seq) * kv.cap, 0xFF, size_t(kv.cap) * 4, s));
}

void kv_truncate(const KvView& kv, int seq, int32_t n_past, cudaStream_t s) {
  launch(kv_truncate_kernel, blocks_for(kv.cap, 256), 256, 0, s, "kv_truncate", kv.pos + int64_t(seq) * kv.cap,
         kv.cap, n_past);
}

void attention(const AttnArgs& args, const KvView& kv, const int32_t* positions, const int32_t* seqs, cudaStream_t s) {
  AttnArgs a = args;
  // A single token's cache write is fused into the decode kernel; larger steps write all their keys
  // first (a query may see keys of the same step).
  if (a.k_new && a.T != 1) {
    kv_write(kv, a.k_new, a.v_new, a.T, positions, seqs, a.rope_k, s);
    a.k_new = a.v_new = nullptr;
  }
  if (kv.half) launch_attention<__half>(a, kv, positions, seqs, s);
  else launch_attention<float>(a, kv, positions, seqs, s);
}

}  // namespace elm::cuda
