// Tensor-core products for prefill: y [T, N] = x [T, K] w^T (+ bias, + residual), in three passes.
//
//   to_half    x (float32, RMSNorm fused when asked) -> f16 / bf16, once per step
//   dequant    w (any elm layout) -> f16 / bf16, in chunks of rows (skipped when w is stored that way)
//   gemm       both operands plain 16-bit, K-contiguous: 4-stage cp.async pipeline into shared memory,
//              ldmatrix + mma.sync m16n8k16 with float accumulators, 128 x 128 (or 64 x 128) tiles
//
// Splitting the decode from the product keeps the product a pure copy-and-multiply loop whose loads
// run several tiles ahead; the decode pass costs one extra stream over the (small) weight chunk.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backend/cuda/common.cuh"
#include "backend/cuda/matmul_internal.h"

namespace elm::cuda {

namespace {

template <class CT>
__device__ __forceinline__ uint32_t pack2(float a, float b);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float a, float b) {
  __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float a, float b) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}


// ---- x to 16 bits ----

// One block per row: out = x (normalized by RMSNorm with weights w when norm) in CT.
template <class CT>
__global__ void __launch_bounds__(256) to_half_kernel(const float* x, int K, bool norm, const float* w, float eps,
                                                      bool add_one, CT* out) {
  __shared__ float red[32];
  pdl_launch_dependents();
  pdl_wait();
  const float* xr = x + int64_t(blockIdx.x) * K;
  float inv = 1.f;
  if (norm) {
    float ss = 0.f;
    for (int c = threadIdx.x * 4; c < K; c += 1024) {
      const float4 v = *reinterpret_cast<const float4*>(xr + c);
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    inv = 1.0f / sqrtf(block_sum(ss, red) / float(K) + eps);
  }
  uint2* o = reinterpret_cast<uint2*>(out + int64_t(blockIdx.x) * K);
  for (int c = threadIdx.x * 4; c < K; c += 1024) {
    float4 v = *reinterpret_cast<const float4*>(xr + c);
    if (norm) {
      float4 s = w ? *reinterpret_cast<const float4*>(w + c) : make_float4(1, 1, 1, 1);
      if (w && add_one) s.x += 1.f, s.y += 1.f, s.z += 1.f, s.w += 1.f;
      v.x *= inv * s.x, v.y *= inv * s.y, v.z *= inv * s.z, v.w *= inv * s.w;
    }
    o[c / 4] = make_uint2(pack2<CT>(v.x, v.y), pack2<CT>(v.z, v.w));
  }
}

// ---- w to 16 bits ----

// Rows [n0, n0 + rows) of w into rows offset, offset + step, ... of out [*, K], 8 values per thread
// (step 2 interleaves the gate and up rows of a gated MLP).
template <DType WT, class CT>
__global__ void dequant_kernel(DeviceWeight w, int64_t n0, int64_t rows, CT* out, int step, int64_t offset) {
  pdl_launch_dependents();
  pdl_wait();  // out may still be read by the previous product
  const int64_t K = w.cols;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * K / 8) return;
  const int64_t r = i / (K / 8), n = n0 + r, k = (i % (K / 8)) * 8;
  float v[8];
  if constexpr (WT == DType::F32) {
    const float4* p = reinterpret_cast<const float4*>(reinterpret_cast<const float*>(w.data) + n * K + k);
    const float4 a = p[0], b = p[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else if constexpr (WT == DType::F16 || WT == DType::BF16) {
    const uint4 u = *reinterpret_cast<const uint4*>(reinterpret_cast<const uint16_t*>(w.data) + n * K + k);
    const uint16_t* h = reinterpret_cast<const uint16_t*>(&u);
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = WT == DType::F16 ? f16_bits_to_float(h[e]) : bf16_bits_to_float(h[e]);
  } else if constexpr (WT == DType::Q8) {
    const float d = load_scale(w.data + w.scales_offset, n * (K / w.group) + k / w.group, w.scale_f32);
    const uint2 u = *reinterpret_cast<const uint2*>(w.data + n * K + k);
    const int8_t* q = reinterpret_cast<const int8_t*>(&u);
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = d * float(q[e]);
  } else {  // Q4, Q4M: within each 32 values, byte j holds value j (low nibble) and j + 16 (high)
    const int64_t gi = n * (K / w.group) + k / w.group;
    const float d = load_scale(w.data + w.scales_offset, gi, w.scale_f32);
    const float m = WT == DType::Q4M ? load_scale(w.data + w.mins_offset, gi, w.scale_f32) : 0.f;
    const int j = int(k & 31);
    const uint2 u = *reinterpret_cast<const uint2*>(w.data + (n * K + (k & ~int64_t(31))) / 2 + (j & 15));
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&u);
    const float off = WT == DType::Q4 ? -8.f : 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = d * (float(j < 16 ? b[e] & 15 : b[e] >> 4) + off) + m;
  }
  uint4 o;
  o.x = pack2<CT>(v[0], v[1]), o.y = pack2<CT>(v[2], v[3]), o.z = pack2<CT>(v[4], v[5]), o.w = pack2<CT>(v[6], v[7]);
  reinterpret_cast<uint4*>(out + (offset + r * step) * K)[k / 8] = o;
}

// ---- the product ----

constexpr int BN = 128, BK = 32, LDS = BK + 8, STAGES = 4;  // LDS: row stride in halves (conflict-free ldmatrix)

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* p) {
  const unsigned a = unsigned(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

template <class CT>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<CT, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Where columns [begin, next out's begin) of the product go: y [T, ldy] at columns col0 + (n - begin).
struct GemmOut {
  float* y = nullptr;
  const float* bias = nullptr;      // indexed by the y column
  const float* residual = nullptr;  // [T, ldy]
  int64_t ldy = 0, begin = 0, col0 = 0;
};

struct GemmParams {
  const void* a;  // [T, K] CT
  const void* b;  // [N, K] CT
  int T, K;
  int64_t N;      // rows of b
  int nout;       // outputs over the columns (q, k, v)
  GemmOut out[3];
  GateAct gate;   // gated: b holds gate and up rows interleaved; out[0].y gets act(gate) * up per pair
  const float* up_bias;
  int ksplit;     // > 1: blocks split K and add their partial products into y (initialized before)
};

size_t gemm_smem(int bm) { return size_t(STAGES) * size_t(bm + BN) * LDS * 2; }

// 8 warps in a 2 x 4 grid, each owning a (BM / 2) x 32 block of the tile.
template <class CT, int BM>
__global__ void __launch_bounds__(256) gemm_kernel(const GemmParams p) {
  constexpr int MI = BM / 32;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* As = smem;                          // [STAGES][BM][LDS]
  uint16_t* Bs = smem + STAGES * BM * LDS;      // [STAGES][BN][LDS]
  pdl_launch_dependents();
  pdl_wait();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;
  const int64_t n0 = int64_t(blockIdx.x) * BN;
  const int m0 = blockIdx.y * BM;
  const int K = p.K;
  // This block's share of the k-tiles (all of them unless K is split).
  const int kt0 = int(int64_t(K / BK) * blockIdx.z / p.ksplit), kt1 = int(int64_t(K / BK) * (blockIdx.z + 1) / p.ksplit);
  const int nk = kt1 - kt0;
  const uint16_t* A = static_cast<const uint16_t*>(p.a);
  const uint16_t* B = static_cast<const uint16_t*>(p.b);

  // A stage: BM rows x 4 chunks of 16 bytes; B stage: BN rows x 4 chunks.
  auto load_stage = [&](int stage, int kt) {
    const int k0 = (kt0 + kt) * BK;
#pragma unroll
    for (int i = 0; i < BM * 4 / 256; ++i) {
      const int c = tid + i * 256, r = c >> 2, q = c & 3;
      const int m = m0 + r;
      cp_async16(As + (stage * BM + r) * LDS + q * 8, A + int64_t(m < p.T ? m : 0) * K + k0 + q * 8, m < p.T);
    }
#pragma unroll
    for (int i = 0; i < BN * 4 / 256; ++i) {
      const int c = tid + i * 256, r = c >> 2, q = c & 3;
      const int64_t n = n0 + r;
      cp_async16(Bs + (stage * BN + r) * LDS + q * 8, B + (n < p.N ? n : 0) * K + k0 + q * 8, n < p.N);
    }
  };

  float acc[MI][4][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nk) load_stage(s, s);
    cp_async_commit();
  }
  const int mat = lane >> 3, r8 = lane & 7;
  for (int kt = 0; kt < nk; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // tile kt is in; every warp is done with the stage refilled below
    const int pre = kt + STAGES - 1;
    if (pre < nk) load_stage(pre % STAGES, pre);
    cp_async_commit();
    const uint16_t* as = As + (kt % STAGES) * BM * LDS;
    const uint16_t* bs = Bs + (kt % STAGES) * BN * LDS;
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      uint32_t a[MI][4], b[4][2];
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
        ldmatrix_x4(a[mi], as + (wm * (BM / 2) + mi * 16 + (mat & 1) * 8 + r8) * LDS + ks * 16 + (mat >> 1) * 8);
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) {
        uint32_t t[4];
        ldmatrix_x4(t, bs + (wn * 32 + nj * 16 + (mat >> 1) * 8 + r8) * LDS + ks * 16 + (mat & 1) * 8);
        b[2 * nj][0] = t[0], b[2 * nj][1] = t[1], b[2 * nj + 1][0] = t[2], b[2 * nj + 1][1] = t[3];
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma16816<CT>(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    }
  }
  cp_async_wait<0>();

  // Epilogue: accumulator elements (e, e + 1) are columns n, n + 1 of one row (n even), which is what
  // the gated form needs (a gate row and its up row are adjacent).
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int m = m0 + wm * (BM / 2) + mi * 16 + (lane >> 2) + h * 8;
        const int64_t n = n0 + wn * 32 + ni * 8 + 2 * (lane & 3);
        if (m >= p.T || n >= p.N) continue;
        const float* c = &acc[mi][ni][2 * h];
        if (p.gate != GateAct::None) {
          const GemmOut& o = p.out[0];
          const int64_t col = o.col0 + n / 2;
          const float g = c[0] + (o.bias ? o.bias[col] : 0.f), u = c[1] + (p.up_bias ? p.up_bias[col] : 0.f);
          o.y[int64_t(m) * o.ldy + col] = gate_act(p.gate, g) * u;
          continue;
        }
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t nn = n + e;
          if (nn >= p.N) continue;
          int j = 0;
          if (p.nout > 1 && nn >= p.out[1].begin) j = 1;
          if (p.nout > 2 && nn >= p.out[2].begin) j = 2;
          // (kernel parameters indexed at run time: copy the selected one by constant indices)
          GemmOut o = p.out[0];
          if (j == 1) o = p.out[1];
          if (j == 2) o = p.out[2];
          const int64_t col = o.col0 + nn - o.begin, at = int64_t(m) * o.ldy + col;
          if (p.ksplit > 1) {
            atomicAdd(o.y + at, c[e]);
          } else {
            float v = c[e];
            if (o.bias) v += o.bias[col];
            if (o.residual) v += o.residual[at];
            o.y[at] = v;
          }
        }
      }
}

// y = residual + bias (or 0) before split-K blocks add their partial products.
__global__ void init_out_kernel(GemmOut o, int T, int64_t cols) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= T * cols) return;
  const int64_t m = i / cols, c = o.col0 + i % cols, at = m * o.ldy + c;
  o.y[at] = (o.residual ? o.residual[at] : 0.f) + (o.bias ? o.bias[c] : 0.f);
}

template <class CT>
void launch_gemm(GemmParams p, cudaStream_t s) {
  const int64_t nb = (p.N + BN - 1) / BN;
  const int sms = sm_count();
  // 128-row tiles unless that leaves SMs idle (o_proj, down_proj at prefill sizes): then 64; and when
  // even that is under two blocks per SM, K is split (not for gated pairs: their epilogue is not linear).
  const int bm = nb * ((p.T + 127) / 128) >= sms ? 128 : 64;
  const int64_t blocks = nb * ((p.T + bm - 1) / bm);
  p.ksplit = 1;
  if (p.gate == GateAct::None && blocks < 2 * sms)
    p.ksplit = int(std::min<int64_t>({4, (2 * sms + blocks - 1) / blocks, p.K / (BK * 16)}));
  p.ksplit = std::max(1, p.ksplit);
  if (p.ksplit > 1) {
    for (int j = 0; j < p.nout; ++j) {
      const int64_t end = j + 1 < p.nout ? p.out[j + 1].begin : p.N, cols = end - p.out[j].begin;
      launch(init_out_kernel, blocks_for(int64_t(p.T) * cols, 256), 256, 0, s, "init_out", p.out[j], p.T, cols);
    }
  }
  const dim3 grid(unsigned(nb), unsigned((p.T + bm - 1) / bm), unsigned(p.ksplit));
  if (bm == 128) {
    allow_dynamic_smem(reinterpret_cast<const void*>(gemm_kernel<CT, 128>), gemm_smem(128));
    launch(gemm_kernel<CT, 128>, grid, 256, gemm_smem(128), s, "gemm", p);
  } else {
    allow_dynamic_smem(reinterpret_cast<const void*>(gemm_kernel<CT, 64>), gemm_smem(64));
    launch(gemm_kernel<CT, 64>, grid, 256, gemm_smem(64), s, "gemm", p);
  }
}

template <class CT>
void launch_dequant(const DeviceWeight& w, int64_t n0, int64_t rows, void* out, int step, int64_t offset,
                    cudaStream_t s) {
  const int64_t n = rows * w.cols / 8;
  const unsigned blocks = blocks_for(n, 256);
  CT* o = static_cast<CT*>(out);
#define ELM_DEQUANT(T_)                                                                                     \
  return launch(dequant_kernel<T_, CT>, blocks, 256, 0, s, "dequant", w, n0, rows, o, step, offset)
  switch (w.dtype) {
    case DType::F32: ELM_DEQUANT(DType::F32);
    case DType::F16: ELM_DEQUANT(DType::F16);
    case DType::BF16: ELM_DEQUANT(DType::BF16);
    case DType::Q8: ELM_DEQUANT(DType::Q8);
    case DType::Q4: ELM_DEQUANT(DType::Q4);
    case DType::Q4M: ELM_DEQUANT(DType::Q4M);
    default: fail("cuda: cannot convert ", dtype_name(w.dtype), " weights");
  }
#undef ELM_DEQUANT
}

GemmOut out_of(const MatmulArgs& a, int i, int64_t begin, int64_t col0) {
  GemmOut o;
  o.y = a.y[i], o.bias = a.bias[i], o.residual = a.residual[i];
  o.ldy = a.w[i].rows, o.begin = begin, o.col0 = col0;
  return o;
}

// All products of a step: gate and up interleaved in one product with the activation in its epilogue;
// q, k, v concatenated in one product; weights converted to CT chunk by chunk into wh (weights stored
// as CT are used in place).
template <class CT>
void products(const MatmulArgs& a, const void* xh, void* wh, cudaStream_t s) {
  constexpr DType native = std::is_same_v<CT, __half> ? DType::F16 : DType::BF16;
  const int64_t chunk = gemm_weight_chunk_rows(a.K);
  GemmParams p{};
  p.a = xh, p.T = a.T, p.K = a.K, p.gate = GateAct::None;
  if (a.gate != GateAct::None) {
    const int64_t pairs = chunk / 2;
    for (int64_t i0 = 0; i0 < a.w[0].rows; i0 += pairs) {
      const int64_t cnt = std::min(pairs, a.w[0].rows - i0);
      launch_dequant<CT>(a.w[0], i0, cnt, wh, 2, 0, s);
      launch_dequant<CT>(a.w[1], i0, cnt, wh, 2, 1, s);
      p.b = wh, p.N = 2 * cnt, p.nout = 1, p.gate = a.gate, p.up_bias = a.bias[1];
      p.out[0] = out_of(a, 0, 0, i0);
      launch_gemm<CT>(p, s);
    }
    return;
  }
  int64_t total = 0;
  bool all_native = true;
  for (int i = 0; i < a.n; ++i) total += a.w[i].rows, all_native = all_native && a.w[i].dtype == native;
  if (!all_native && total <= chunk) {
    p.b = wh, p.N = total, p.nout = a.n;
    int64_t off = 0;
    for (int i = 0; i < a.n; ++i) {
      launch_dequant<CT>(a.w[i], 0, a.w[i].rows, wh, 1, off, s);
      p.out[i] = out_of(a, i, off, 0);
      off += a.w[i].rows;
    }
    launch_gemm<CT>(p, s);
    return;
  }
  for (int i = 0; i < a.n; ++i) {
    p.nout = 1;
    if (a.w[i].dtype == native) {
      p.b = a.w[i].data, p.N = a.w[i].rows, p.out[0] = out_of(a, i, 0, 0);
      launch_gemm<CT>(p, s);
      continue;
    }
    for (int64_t n0 = 0; n0 < a.w[i].rows; n0 += chunk) {
      const int64_t rows = std::min(chunk, a.w[i].rows - n0);
      launch_dequant<CT>(a.w[i], n0, rows, wh, 1, 0, s);
      p.b = wh, p.N = rows, p.out[0] = out_of(a, i, 0, n0);
      launch_gemm<CT>(p, s);
    }
  }
}

}  // namespace

int64_t gemm_weight_chunk_rows(int K) {
  const int64_t elems = int64_t(16) << 20;  // 32 MiB of 16-bit values
  return std::max<int64_t>(BN, elems / K / BN * BN);
}

void x_to_half(const float* x, int T, int K, bool bf16, const float* norm_w, bool norm, float eps, bool add_one,
               void* out, cudaStream_t s) {
  if (bf16)
    launch(to_half_kernel<__nv_bfloat16>, unsigned(T), 256, 0, s, "to_half", x, K, norm, norm_w, eps, add_one,
           static_cast<__nv_bfloat16*>(out));
  else
    launch(to_half_kernel<__half>, unsigned(T), 256, 0, s, "to_half", x, K, norm, norm_w, eps, add_one,
           static_cast<__half*>(out));
}

void half_products(const MatmulArgs& a, const void* xh, void* wh, cudaStream_t s) {
  if (a.mma == MmaType::BF16) products<__nv_bfloat16>(a, xh, wh, s);
  else products<__half>(a, xh, wh, s);
}

}  // namespace elm::cuda
