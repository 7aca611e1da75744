// Matrix-vector products for decoding: y [T, N] = x [T, K] w^T with T <= 8 tokens.
//
// Decoding reads every weight once per token, so this kernel is a memory stream: each warp owns one
// output row (two for a gated MLP: the gate and up rows), its lanes read the row in 16-byte chunks,
// several chunks in flight per lane, and decode them in registers (elm's layouts, core/dtype.h, read as
// stored). x sits in shared memory: as float32 for float weights, swizzled so that 32 lanes reading 32
// different chunks hit distinct banks; as int8 blocks for quantized weights, which take DP4A dot products
// (gemv_x.cuh). An optional RMSNorm of x is applied while x is loaded (fused into the product), and the
// epilogue adds bias and a residual, or combines gate and up rows: one launch where the graph has up to
// five nodes.
#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/gemv_x.cuh"
#include "backend/cuda/matmul_internal.h"

namespace elm::cuda {

namespace {

constexpr size_t kMaxSmem = 96 * 1024;   // x rows in shared memory

// Shared-memory slot of float4 number g of an x row: lanes reading chunk l (g = l * F + j, F = float4s per
// chunk, 1..8) land in distinct 16-byte bank groups.
__device__ __forceinline__ int swz(int g) { return g ^ ((g >> 3) & 7); }

// 8388608 + b as a float, for byte k (0..3) of w: one PRMT.
__device__ __forceinline__ float byte_as_float(uint32_t w, int k) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7440u | unsigned(k)));
}

__device__ __forceinline__ float4 xrow(const float4* xs, int K4, int t, int g) { return xs[t * K4 + swz(g)]; }

__device__ __forceinline__ float dot4(float4 a, float b0, float b1, float b2, float b3) {
  return a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
}

// acc[t] += dot(chunk c of the row, x[t]) for t < NT; d, m: the chunk's scale and min.
template <DType WT, int NT>
__device__ __forceinline__ void chunk_dot(uint4 w, float d, float m, const float4* xs, int K4, int c, float (&acc)[NT]) {
  const uint32_t word[4] = {w.x, w.y, w.z, w.w};
  if constexpr (WT == DType::Q4 || WT == DType::Q4M) {
    // Byte j of the chunk: value j in the low nibble, value j + 16 in the high nibble.
    constexpr float bias = WT == DType::Q4 ? 8388616.f : 8388608.f;  // magic, plus the Q4 offset of 8
    float s[NT], sx[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) s[t] = 0.f, sx[t] = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t lo = word[i] & 0x0F0F0F0Fu, hi = (word[i] >> 4) & 0x0F0F0F0Fu;
      const float l0 = byte_as_float(lo, 0) - bias, l1 = byte_as_float(lo, 1) - bias;
      const float l2 = byte_as_float(lo, 2) - bias, l3 = byte_as_float(lo, 3) - bias;
      const float h0 = byte_as_float(hi, 0) - bias, h1 = byte_as_float(hi, 1) - bias;
      const float h2 = byte_as_float(hi, 2) - bias, h3 = byte_as_float(hi, 3) - bias;
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const float4 xa = xrow(xs, K4, t, 8 * c + i), xb = xrow(xs, K4, t, 8 * c + 4 + i);
        s[t] += dot4(xa, l0, l1, l2, l3) + dot4(xb, h0, h1, h2, h3);
        if constexpr (WT == DType::Q4M) sx[t] += (xa.x + xa.y) + (xa.z + xa.w) + (xb.x + xb.y) + (xb.z + xb.w);
      }
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] += WT == DType::Q4M ? d * s[t] + m * sx[t] : d * s[t];
  } else if constexpr (WT == DType::Q8) {
    float s[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) s[t] = 0.f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t u = word[i] ^ 0x80808080u;  // int8 q -> unsigned q + 128
      constexpr float bias = 8388608.f + 128.f;
      const float q0 = byte_as_float(u, 0) - bias, q1 = byte_as_float(u, 1) - bias;
      const float q2 = byte_as_float(u, 2) - bias, q3 = byte_as_float(u, 3) - bias;
#pragma unroll
      for (int t = 0; t < NT; ++t) s[t] += dot4(xrow(xs, K4, t, 4 * c + i), q0, q1, q2, q3);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] += d * s[t];
  } else if constexpr (WT == DType::F16 || WT == DType::BF16) {
    float v[8];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (WT == DType::F16) {
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&word[i]));
        v[2 * i] = f.x, v[2 * i + 1] = f.y;
      } else {
        v[2 * i] = __uint_as_float(word[i] << 16), v[2 * i + 1] = __uint_as_float(word[i] & 0xFFFF0000u);
      }
    }
#pragma unroll
    for (int t = 0; t < NT; ++t)
      acc[t] += dot4(xrow(xs, K4, t, 2 * c), v[0], v[1], v[2], v[3]) + dot4(xrow(xs, K4, t, 2 * c + 1), v[4], v[5], v[6], v[7]);
  } else {  // F32
#pragma unroll
    for (int t = 0; t < NT; ++t)
      acc[t] += dot4(xrow(xs, K4, t, c), __uint_as_float(word[0]), __uint_as_float(word[1]), __uint_as_float(word[2]),
                     __uint_as_float(word[3]));
  }
}


// Float weights: x rows [NT, K] into shared memory (rows past T zero), swizzled, RMSNorm applied in place
// when fused: the norm weight is applied with the load (x and w requested together), the 1 / rms once
// the sum is known. Every thread of the block calls it. `red`: 32 floats of shared scratch.
__device__ __forceinline__ void stage_xf(const GemvParams& p, int NT, float4* xs, float* red) {
  const int K = p.K, K4 = K / 4;
  const bool norm_w = p.norm && p.norm_w;
  for (int t = 0; t < NT; ++t) {
    float ss = 0.f;
    for (int g = threadIdx.x; g < K4; g += kThreads) {
      float4 v = t < p.T ? reinterpret_cast<const float4*>(p.x + int64_t(t) * K)[g] : make_float4(0, 0, 0, 0);
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
      if (norm_w) {
        float4 w = reinterpret_cast<const float4*>(p.norm_w)[g];
        if (p.norm_add_one) w.x += 1.f, w.y += 1.f, w.z += 1.f, w.w += 1.f;
        v.x *= w.x, v.y *= w.y, v.z *= w.z, v.w *= w.w;
      }
      xs[t * K4 + swz(g)] = v;
    }
    if (p.norm && t < p.T) {
      const float inv = 1.0f / sqrtf(block_sum(ss, red) / float(K) + p.eps);
      for (int g = threadIdx.x; g < K4; g += kThreads) {
        float4 v = xs[t * K4 + swz(g)];
        v.x *= inv, v.y *= inv, v.z *= inv, v.w *= inv;
        xs[t * K4 + swz(g)] = v;
      }
    }
  }
  __syncthreads();
}

// One warp's group of P consecutive output units (rows of one weight, or gate rows and the up rows
// with the same indices when R = 2): where their rows start and where the results go.
template <int R>
struct Group {
  const uint8_t* q[R];   // first row's quants of each of the R weights
  const uint8_t* sc[R];  // ... and scales
  const uint8_t* mn[R];  // ... and mins
  int64_t row0 = 0, N = 0;
  int valid = 0;  // units of the group that exist (the last group may be short)
  float* y = nullptr;
  const float* bias = nullptr;
  const float* residual = nullptr;
};

// Kernel parameters are only indexed with compile-time constants here (a run-time index would copy
// them to local memory). Groups never straddle two weights (the host checks the row counts).
template <DType WT, int R, int P>
__device__ __forceinline__ void locate(const GemvParams& p, int64_t unit0, Group<R>& o) {
  constexpr bool quant = WT == DType::Q8 || WT == DType::Q4 || WT == DType::Q4M;
  const int64_t groups = p.K / (quant ? p.w[0].group : chunk_values<WT>());
  const int scale_bytes = p.w[0].scale_f32 ? 4 : 2;
#pragma unroll
  for (int i = 0; i < 3; ++i) {
    const bool mine = R == 2 ? i < 2 : (i < p.n && unit0 >= p.offs[i] && unit0 < p.offs[i + 1]);
    if (!mine) continue;
    const int r = R == 2 ? i : 0;
    if (R == 1) {
      o.row0 = unit0 - p.offs[i], o.N = p.w[i].rows, o.y = p.y[i], o.bias = p.bias[i], o.residual = p.residual[i];
    } else {
      o.row0 = unit0, o.N = p.w[0].rows;
    }
    o.valid = int(o.N - o.row0 < P ? o.N - o.row0 : P);
    o.q[r] = p.w[i].data + o.row0 * row_bytes<WT>(p.K);
    o.sc[r] = p.w[i].data + p.w[i].scales_offset + o.row0 * groups * scale_bytes;
    o.mn[r] = p.w[i].data + p.w[i].mins_offset + o.row0 * groups * scale_bytes;
  }
}

// U chunks (32 apart) of each of the P x R rows of a group, in registers.
template <int U, int RW>
struct Chunks {
  uint4 w[U][RW];
  float d[U][RW], m[U][RW];
};

template <DType WT, int U, int R, int P, int L>
__device__ __forceinline__ void load_chunks(const Group<R>& g, int c0, int nchunks, int64_t rb, int64_t sb, int group,
                                            bool sf32, Chunks<U, R * P>& b) {
  constexpr int VPC = chunk_values<WT>();
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int c = c0 + L * u;
#pragma unroll
    for (int j = 0; j < P; ++j)
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int k = j * R + r;
        b.d[u][k] = 1.f, b.m[u][k] = 0.f;
        if (c < nchunks && j < g.valid) {
          b.w[u][k] = __ldg(reinterpret_cast<const uint4*>(g.q[r] + j * rb) + c);
          if constexpr (WT == DType::Q8 || WT == DType::Q4 || WT == DType::Q4M) {
            const int gi = c * VPC / group;
            b.d[u][k] = load_scale(g.sc[r] + j * sb, gi, sf32);
            if constexpr (WT == DType::Q4M) b.m[u][k] = load_scale(g.mn[r] + j * sb, gi, sf32);
          }
        }
      }
  }
}

// A persistent grid of warps; each takes groups of P output units (P x R weight rows) and streams
// their rows together, U 16-byte chunks per lane and row in flight, so a warp keeps P x R x U x 512
// bytes of loads outstanding even when rows are short (a 2048-wide Q4 row is only 1 KiB) and has a
// long row's chunks all requested at once when U covers it (an 8192-wide row: U = 8).
// Rows of fewer than 32 chunks (small models: a 384-wide Q4 row is 12 chunks) take L = 8 or 16 lanes
// each, so a warp streams 32 / L groups side by side instead of leaving most lanes idle.
// Blocks per SM the compiler must leave registers for (a floor under the loads in flight per SM): the
// counts these products had before the staging of x grew, which cost Q8 single-token products a block
// per SM and int8 decode 4-6 %. Without a floor, ptxas spends registers freely. Not for the long-row
// products (U = 8): held to 85 registers they spill 260-500 bytes (`-Xptxas -v`); the floors below
// spill at most 28 bytes (Q8 gated pairs, Q4M single gated pairs).
template <DType WT, int NT, int R, int P, int U>
constexpr int gemv_min_blocks() {
  if (NT == 1 && P == 1 && U == 2) return 4;                    // <= 64 registers
  if (WT == DType::Q8 && NT == 1 && P == 2) return 3;            // <= 85
  if (NT <= 4 && R == 1 && P == 1 && U == 2) return 3;
  return 2;                                                     // <= 128
}

template <DType WT, int NT, int R, int P, int U, int L>
__global__ void __launch_bounds__(kThreads, gemv_min_blocks<WT, NT, R, P, U>()) gemv_kernel(const GemvParams p) {
  static_assert(L == 8 || L == 16 || L == 32, "lanes per row");
  extern __shared__ float4 xs[];
  __shared__ float red[8 * kWarps], inv[8];
  constexpr int RW = R * P, S = 32 / L;
  constexpr int VPC = chunk_values<WT>();
  constexpr bool quant = WT == DType::Q8 || WT == DType::Q4 || WT == DType::Q4M;
  pdl_launch_dependents();
  const int K = p.K, K4 = K / 4;
  const int lane = threadIdx.x & 31, sl = lane % L;  // sl: the lane's place in its row
  // The warp walks its groups together (every lane runs the same iterations: the sums below shuffle
  // across the whole warp); its sub-warp `lane / L` takes the group at `base + (lane / L) * P`.
  const int64_t stride = int64_t(gridDim.x) * kWarps * S * P;
  int64_t base = (int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5)) * S * P;
  const int64_t mine = (lane / L) * P;
  const int group = quant ? p.w[0].group : VPC;
  const bool sf32 = p.w[0].scale_f32;
  const int nchunks = K / VPC;
  const int64_t rb = row_bytes<WT>(K), sb = int64_t(K / group) * (sf32 ? 4 : 2);

  Group<R> cur;
  Chunks<U, RW> a;
  if (base + mine < p.units) {
    locate<WT, R, P>(p, base + mine, cur);
    load_chunks<WT, U, R, P, L>(cur, sl, nchunks, rb, sb, group, sf32, a);  // weights before x: overlaps the last kernel
  }
  const bool norm_w = p.norm && p.norm_w;
  if (norm_w)  // a weight too: into L2 now, read with x below
    for (int g = threadIdx.x * 8; g < K4; g += kThreads * 8)  // one 128-byte line each
      asm volatile("prefetch.global.L2 [%0];" ::"l"(reinterpret_cast<const float4*>(p.norm_w) + g));
  pdl_wait();

  XQ xq{};
  if constexpr (quant) xq = stage_xq(p, NT, reinterpret_cast<uint8_t*>(xs), red, inv);
  else stage_xf(p, NT, xs, red);

  for (; base < p.units; base += stride) {
    // The epilogue's residual and bias values (lane t of a row: token t), requested before the products.
    float res[P], bias[R][P];
#pragma unroll
    for (int j = 0; j < P; ++j) {
      const int64_t row = cur.row0 + j;
      const bool out = sl < NT && sl < p.T && j < cur.valid;
      res[j] = R == 1 && out && cur.residual ? cur.residual[int64_t(sl) * cur.N + row] : 0.f;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float* b = R == 2 ? p.bias[r] : cur.bias;
        bias[r][j] = out && b ? b[row] : 0.f;
      }
    }
    float acc[RW][NT];
#pragma unroll
    for (int k = 0; k < RW; ++k)
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[k][t] = 0.f;
    for (int c0 = sl; c0 < nchunks; c0 += L * U) {
      if (c0 != sl) load_chunks<WT, U, R, P, L>(cur, c0, nchunks, rb, sb, group, sf32, a);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int c = c0 + L * u;
        if (c < nchunks) {
#pragma unroll
          for (int k = 0; k < RW; ++k) {
            if constexpr (quant) chunk_dot_i8<WT, NT>(a.w[u][k], a.d[u][k], a.m[u][k], xq, c, acc[k]);
            else chunk_dot<WT, NT>(a.w[u][k], a.d[u][k], a.m[u][k], xs, K4, c, acc[k]);
          }
        }
      }
    }
#pragma unroll
    for (int k = 0; k < RW; ++k)
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[k][t] = lanes_sum<L>(acc[k][t]);
    // Lane t of a row writes token t (acc indices stay compile-time: select by unrolled comparison).
    if (sl < NT && sl < p.T) {
      const int64_t t = sl;
#pragma unroll
      for (int j = 0; j < P; ++j) {
        if (j >= cur.valid) break;
        float v[R];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          v[r] = acc[j * R + r][0];
#pragma unroll
          for (int tt = 1; tt < NT; ++tt)
            if (sl == tt) v[r] = acc[j * R + r][tt];
        }
        const int64_t row = cur.row0 + j;
        if constexpr (R == 2) {
          p.y[0][t * cur.N + row] = gate_act(p.gate, v[0] + bias[0][j]) * (v[1] + bias[1][j]);
        } else {
          cur.y[t * cur.N + row] = v[0] + bias[0][j] + res[j];
        }
      }
    }
    // The next group's first chunks (a sub-warp past the end keeps no rows: its sums stay zero).
    if (base + stride + mine < p.units) {
      locate<WT, R, P>(p, base + stride + mine, cur);
      load_chunks<WT, U, R, P, L>(cur, sl, nchunks, rb, sb, group, sf32, a);
    } else {
      cur.valid = 0;
    }
  }
}

template <DType WT, int NT, int R, int P, int U = 2, int L = 32>
void launch_gemv(const GemvParams& p, cudaStream_t s) {
  constexpr bool quant = WT == DType::Q8 || WT == DType::Q4 || WT == DType::Q4M;
  const size_t smem = quant ? xq_bytes(NT, p.K) : size_t(NT) * size_t(p.K) * 4;
  auto* k = gemv_kernel<WT, NT, R, P, U, L>;
  allow_dynamic_smem(reinterpret_cast<const void*>(k), smem);
  // As many blocks as fit on the GPU at once (each warp then loops over its groups), fewer when there
  // are not that many groups.
  const int64_t per_block = int64_t(kWarps) * (32 / L) * P;
  const int64_t want = (p.units + per_block - 1) / per_block;
  // (Capping this at one block per SM, to leave room for the next kernel's blocks to start early,
  // measured 1,263 -> 902 tok/s on llama3.2-1b int4-g32: loads in flight matter more.)
  const int64_t fit = int64_t(blocks_per_sm(reinterpret_cast<const void*>(k), kThreads, smem)) * sm_count();
  launch(k, unsigned(std::max<int64_t>(1, std::min(want, fit))), kThreads, smem, s, "gemv", p);
}

// Quantized rows of at most 16 chunks (small models) take 8 or 16 lanes each, any token count; single
// tokens over many rows (a small model's output head: 49k rows of 12 chunks) take P1 rows per sub-warp,
// so that each streams several rows at once instead of one short row per round trip.
template <DType WT, int R, int L, int P1>
void launch_short(const GemvParams& p, cudaStream_t s, bool aligned) {
  const bool large = p.units / (int64_t(kWarps) * (32 / L) * P1) >= 2 * sm_count();
  if (p.T <= 1 && aligned && large) return launch_gemv<WT, 1, R, P1, 2, L>(p, s);
  if (p.T <= 1) return launch_gemv<WT, 1, R, 1, 2, L>(p, s);
  if (p.T <= 2) return launch_gemv<WT, 2, R, 1, 2, L>(p, s);
  if (p.T <= 4) return launch_gemv<WT, 4, R, 1, 2, L>(p, s);
  return launch_gemv<WT, 8, R, 1, 2, L>(p, s);
}

// Units per warp: for single tokens over a large matrix (the output head, gated MLPs), 4 rows in flight
// per warp (gated: 2 gate and 2 up rows); for smaller ones, rows spread one per warp over more SMs.
// With more tokens the accumulators take the registers, and rows go one (or one pair) per warp.
template <DType WT, int R>
void launch_nt(const GemvParams& p, cudaStream_t s) {
  constexpr int P1 = R == 1 ? 4 : 2;
  bool aligned = true;  // groups of P1 units never straddle two weights
  for (int i = 0; i + 1 < p.n; ++i) aligned = aligned && p.offs[i + 1] % P1 == 0;
  constexpr bool quant = WT == DType::Q8 || WT == DType::Q4 || WT == DType::Q4M;
  if constexpr (quant) {
    const int nchunks = p.K / chunk_values<WT>();
    if (nchunks <= 8) return launch_short<WT, R, 8, P1>(p, s, aligned);
    if (nchunks <= 16) return launch_short<WT, R, 16, P1>(p, s, aligned);
  }
  const bool large = p.units / (kWarps * P1) >= 2 * sm_count();
  const bool long_rows = p.K / chunk_values<WT>() >= 32 * 4;  // 4+ chunks per lane: request them at once
  if (p.T <= 1 && aligned && large) return launch_gemv<WT, 1, R, P1>(p, s);
  if constexpr (R == 1)
    if (p.T <= 1 && long_rows) return launch_gemv<WT, 1, R, 1, 8>(p, s);
  if (p.T <= 1) return launch_gemv<WT, 1, R, 1>(p, s);
  if (p.T <= 2) return launch_gemv<WT, 2, R, 1>(p, s);
  if (p.T <= 4) return launch_gemv<WT, 4, R, 1>(p, s);
  return launch_gemv<WT, 8, R, 1>(p, s);
}

template <int R>
void launch_type(const GemvParams& p, cudaStream_t s) {
  switch (p.w[0].dtype) {
    case DType::F32: return launch_nt<DType::F32, R>(p, s);
    case DType::F16: return launch_nt<DType::F16, R>(p, s);
    case DType::BF16: return launch_nt<DType::BF16, R>(p, s);
    case DType::Q8: return launch_nt<DType::Q8, R>(p, s);
    case DType::Q4: return launch_nt<DType::Q4, R>(p, s);
    case DType::Q4M: return launch_nt<DType::Q4M, R>(p, s);
    default: fail("cuda gemv: unsupported weight type ", dtype_name(p.w[0].dtype));
  }
}

}  // namespace

int gemv_max_tokens(int K, DType w) {
  for (int nt : {8, 4, 2, 1})
    if ((is_quantized(w) ? xq_bytes(nt, K) : size_t(nt) * size_t(K) * 4) <= kMaxSmem) return nt;
  return 0;
}

void gemv(const MatmulArgs& a, cudaStream_t s) {
  ELM_CHECK(a.T >= 1 && a.T <= gemv_max_tokens(a.K, a.w[0].dtype) && a.K % 32 == 0, "cuda gemv: bad shape");
  GemvParams p{};
  p.x = a.x, p.T = a.T, p.K = a.K;
  p.norm = a.norm, p.norm_w = a.norm_w, p.eps = a.eps, p.norm_add_one = a.norm_add_one;
  p.n = a.n, p.gate = a.gate;
  p.offs[0] = 0;
  for (int i = 0; i < a.n; ++i) {
    p.w[i] = a.w[i], p.y[i] = a.y[i], p.bias[i] = a.bias[i], p.residual[i] = a.residual[i];
    p.offs[i + 1] = p.offs[i] + a.w[i].rows;
  }
  if (a.gate != GateAct::None) {
    ELM_CHECK(a.n == 2 && a.w[0].rows == a.w[1].rows, "cuda gemv: gated product needs two weights of equal rows");
    p.units = a.w[0].rows;
    launch_type<2>(p, s);
  } else {
    p.units = p.offs[a.n];
    launch_type<1>(p, s);
  }
}

}  // namespace elm::cuda
