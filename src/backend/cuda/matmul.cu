// Tiled products for prefill (T > gemv_max_tokens) and the matmul() dispatcher.
//
// Tensor-core kernel: 128 x 128 output tiles, k in steps of 32, 8 warps of 64 x 32, mma.sync
// m16n8k16 with float accumulators. Each k-tile of x (float32) and w (any elm layout) is decoded to
// f16 or bf16 on its way into shared memory; the next tile's global loads are issued before the current
// tile's mmas (register double buffering).
// Exact kernel: the same product in float32 FMAs (64 x 64 tiles), for the float32 activation mode,
// whose results must match the CPU reference to rounding.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/matmul_internal.h"

namespace elm::cuda {

namespace {

struct TiledParams {
  const float* x;
  int T, K;
  DeviceWeight w;
  const float* bias;
  const float* residual;
  float* y;
};

// ---- tensor cores ----

constexpr int BN = 128, BK = 32, LDS = BK + 8;  // LDS: row stride in halves (conflict-free ldmatrix)

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

// The raw global data of one thread's 16 weight values of a k-tile, loaded before use.
template <DType WT>
struct BRaw {
  uint4 v[WT == DType::F32 ? 4 : (WT == DType::F16 || WT == DType::BF16) ? 2 : 1];
  float d, m;
};

// Thread (row n, half h) of the B tile: values k0 + 16h .. k0 + 16h + 15 of weight row n.
template <DType WT>
__device__ __forceinline__ void load_b(const DeviceWeight& w, int64_t n, int k0, int h, BRaw<WT>& r) {
  const int64_t K = w.cols;
  if (n >= w.rows) {
#pragma unroll
    for (auto& v : r.v) v = make_uint4(0, 0, 0, 0);
    r.d = 0.f, r.m = 0.f;
    return;
  }
  const int k = k0 + 16 * h;
  if constexpr (WT == DType::F32) {
    const uint4* p = reinterpret_cast<const uint4*>(reinterpret_cast<const float*>(w.data) + n * K + k);
#pragma unroll
    for (int i = 0; i < 4; ++i) r.v[i] = __ldg(p + i);
  } else if constexpr (WT == DType::F16 || WT == DType::BF16) {
    const uint4* p = reinterpret_cast<const uint4*>(reinterpret_cast<const uint16_t*>(w.data) + n * K + k);
    r.v[0] = __ldg(p), r.v[1] = __ldg(p + 1);
  } else if constexpr (WT == DType::Q8) {
    r.v[0] = __ldg(reinterpret_cast<const uint4*>(w.data + n * K + k));
    r.d = load_scale(w.data + w.scales_offset, n * (K / w.group) + k / w.group, w.scale_f32);
  } else {  // Q4, Q4M: the 16-byte chunk of the 32 values at k0; h picks the low or high nibbles
    r.v[0] = __ldg(reinterpret_cast<const uint4*>(w.data + (n * K + k0) / 2));
    const int64_t gi = n * (K / w.group) + k0 / w.group;
    r.d = load_scale(w.data + w.scales_offset, gi, w.scale_f32);
    r.m = WT == DType::Q4M ? load_scale(w.data + w.mins_offset, gi, w.scale_f32) : 0.f;
  }
}

// Decodes the 16 values to CT and stores them (32 bytes) at dst.
template <DType WT, class CT>
__device__ __forceinline__ void store_b(const BRaw<WT>& r, int h, uint16_t* dst) {
  uint32_t out[8];
  if constexpr (WT == DType::F32) {
    const float* f = reinterpret_cast<const float*>(r.v);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = pack2<CT>(f[2 * i], f[2 * i + 1]);
  } else if constexpr ((WT == DType::F16 && std::is_same_v<CT, __half>) ||
                       (WT == DType::BF16 && std::is_same_v<CT, __nv_bfloat16>)) {
    const uint32_t* u = reinterpret_cast<const uint32_t*>(r.v);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = u[i];
  } else if constexpr (WT == DType::F16 || WT == DType::BF16) {
    const uint16_t* u = reinterpret_cast<const uint16_t*>(r.v);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float a = WT == DType::F16 ? f16_bits_to_float(u[2 * i]) : bf16_bits_to_float(u[2 * i]);
      const float b = WT == DType::F16 ? f16_bits_to_float(u[2 * i + 1]) : bf16_bits_to_float(u[2 * i + 1]);
      out[i] = pack2<CT>(a, b);
    }
  } else if constexpr (WT == DType::Q8) {
    const int8_t* q = reinterpret_cast<const int8_t*>(r.v);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = pack2<CT>(r.d * float(q[2 * i]), r.d * float(q[2 * i + 1]));
  } else {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(r.v);
    const float off = WT == DType::Q4 ? -8.f : 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int q0 = h ? b[2 * i] >> 4 : b[2 * i] & 15, q1 = h ? b[2 * i + 1] >> 4 : b[2 * i + 1] & 15;
      out[i] = pack2<CT>(r.d * (float(q0) + off) + r.m, r.d * (float(q1) + off) + r.m);
    }
  }
  uint4* d4 = reinterpret_cast<uint4*>(dst);
  d4[0] = make_uint4(out[0], out[1], out[2], out[3]);
  d4[1] = make_uint4(out[4], out[5], out[6], out[7]);
}

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

template <DType WT, class CT, int BM>
__global__ void __launch_bounds__(256) mma_kernel(const TiledParams p) {
  constexpr int MI = BM / 32;          // m16 tiles per warp (warp tile: BM/2 x 32)
  constexpr int TPR = 256 / BM;        // A loader: threads per row
  constexpr int FPT = BK / TPR;        // A loader: floats per thread
  __shared__ alignas(16) uint16_t As[2][BM][LDS];
  __shared__ alignas(16) uint16_t Bs[2][BN][LDS];
  pdl_launch_dependents();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 2, wn = warp & 3;  // warp tile: rows wm*BM/2.., cols wn*32..
  const int64_t n0 = int64_t(blockIdx.x) * BN;
  const int m0 = blockIdx.y * BM;
  const int K = p.K;
  // Loader roles: A row la of the tile, part lp (FPT floats); B row lr, half lh (16 values).
  const int la = tid / TPR, lp = tid % TPR;
  const int lr = tid >> 1, lh = tid & 1;
  const int am = m0 + la;

  float4 ra[FPT / 4];
  BRaw<WT> rb;
  auto load_a = [&](int k0) {
#pragma unroll
    for (int i = 0; i < FPT / 4; ++i)
      ra[i] = am < p.T ? reinterpret_cast<const float4*>(p.x + int64_t(am) * K + k0 + FPT * lp)[i]
                       : make_float4(0, 0, 0, 0);
  };
  auto store = [&](int buf) {
    uint4* d = reinterpret_cast<uint4*>(&As[buf][la][FPT * lp]);
#pragma unroll
    for (int i = 0; i < FPT / 8; ++i)
      d[i] = make_uint4(pack2<CT>(ra[2 * i].x, ra[2 * i].y), pack2<CT>(ra[2 * i].z, ra[2 * i].w),
                        pack2<CT>(ra[2 * i + 1].x, ra[2 * i + 1].y), pack2<CT>(ra[2 * i + 1].z, ra[2 * i + 1].w));
    store_b<WT, CT>(rb, lh, &Bs[buf][lr][16 * lh]);
  };

  float acc[MI][4][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  const int nk = K / BK;
  load_b<WT>(p.w, n0 + lr, 0, lh, rb);  // weights first: they do not depend on the previous kernel
  pdl_wait();
  load_a(0);
  store(0);
  __syncthreads();
  for (int kt = 0; kt < nk; ++kt) {
    const int buf = kt & 1;
    if (kt + 1 < nk) {
      load_a((kt + 1) * BK);
      load_b<WT>(p.w, n0 + lr, (kt + 1) * BK, lh, rb);
    }
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      uint32_t a[MI][4], b[4][2];
      const int mat = lane >> 3, r8 = lane & 7;
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
        ldmatrix_x4(a[mi], &As[buf][wm * (BM / 2) + mi * 16 + (mat & 1) * 8 + r8][ks * 16 + (mat >> 1) * 8]);
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) {
        uint32_t t[4];
        ldmatrix_x4(t, &Bs[buf][wn * 32 + nj * 16 + (mat >> 1) * 8 + r8][ks * 16 + (mat & 1) * 8]);
        b[2 * nj][0] = t[0], b[2 * nj][1] = t[1], b[2 * nj + 1][0] = t[2], b[2 * nj + 1][1] = t[3];
      }
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma16816<CT>(acc[mi][ni], a[mi], b[ni][0], b[ni][1]);
    }
    if (kt + 1 < nk) store(buf ^ 1);
    __syncthreads();
  }

  const int64_t N = p.w.rows;
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int m = m0 + wm * (BM / 2) + mi * 16 + (lane >> 2) + (e >> 1) * 8;
        const int64_t n = n0 + wn * 32 + ni * 8 + 2 * (lane & 3) + (e & 1);
        if (m >= p.T || n >= N) continue;
        float v = acc[mi][ni][e];
        if (p.bias) v += p.bias[n];
        if (p.residual) v += p.residual[int64_t(m) * N + n];
        p.y[int64_t(m) * N + n] = v;
      }
}

// ---- exact float32 ----

constexpr int FM = 64, FN = 64, FK = 16;

template <DType WT>
__global__ void __launch_bounds__(256) ffma_kernel(const TiledParams p) {
  __shared__ alignas(16) float As[FK][FM + 4];
  __shared__ alignas(16) float Bs[FK][FN + 4];
  pdl_launch_dependents();
  pdl_wait();
  const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
  const int m0 = blockIdx.y * FM;
  const int64_t n0 = int64_t(blockIdx.x) * FN;
  const int K = p.K;
  const int64_t N = p.w.rows;
  const int lr = tid >> 2, lk = (tid & 3) * 4;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += FK) {
    const int m = m0 + lr;
    float4 xa = m < p.T ? *reinterpret_cast<const float4*>(p.x + int64_t(m) * K + k0 + lk) : make_float4(0, 0, 0, 0);
    As[lk][lr] = xa.x, As[lk + 1][lr] = xa.y, As[lk + 2][lr] = xa.z, As[lk + 3][lr] = xa.w;
    const int64_t n = n0 + lr;
#pragma unroll
    for (int j = 0; j < 4; ++j) Bs[lk + j][lr] = n < N ? weight_value(p.w, n, k0 + lk + j) : 0.f;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < FK; ++k) {
      const float4 a = *reinterpret_cast<const float4*>(&As[k][ty * 4]);
      const float4 b = *reinterpret_cast<const float4*>(&Bs[k][tx * 4]);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m0 + ty * 4 + i;
      const int64_t n = n0 + tx * 4 + j;
      if (m >= p.T || n >= N) continue;
      float v = acc[i][j];
      if (p.bias) v += p.bias[n];
      if (p.residual) v += p.residual[int64_t(m) * N + n];
      p.y[int64_t(m) * N + n] = v;
    }
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

template <DType WT, class CT>
void launch_mma(const TiledParams& p, cudaStream_t s) {
  const unsigned nb = unsigned((p.w.rows + BN - 1) / BN);
  // 128-row tiles unless that leaves SMs idle (o_proj, down_proj at prefill sizes): then 64.
  if (int64_t(nb) * ((p.T + 127) / 128) >= 2 * sm_count())
    launch(mma_kernel<WT, CT, 128>, dim3(nb, unsigned((p.T + 127) / 128)), 256, 0, s, "mma", p);
  else
    launch(mma_kernel<WT, CT, 64>, dim3(nb, unsigned((p.T + 63) / 64)), 256, 0, s, "mma", p);
}

template <DType WT>
void launch_tiled(const TiledParams& p, MmaType mma, cudaStream_t s) {
  if (mma == MmaType::F32)
    launch(ffma_kernel<WT>, dim3(unsigned((p.w.rows + FN - 1) / FN), unsigned((p.T + FM - 1) / FM)), 256, 0, s,
           "ffma", p);
  else if (mma == MmaType::F16)
    launch_mma<WT, __half>(p, s);
  else
    launch_mma<WT, __nv_bfloat16>(p, s);
}

__global__ void gate_mul_kernel(GateAct act, const float* g, const float* u, int64_t n, float* y) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float x = g[i];
  float a = x;
  if (act == GateAct::Silu) a = x / (1.0f + expf(-x));
  else if (act == GateAct::Gelu) a = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  else if (act == GateAct::GeluTanh) a = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  y[i] = a * u[i];
}

}  // namespace

void tiled_matmul(const float* x, int T, const DeviceWeight& w, const float* bias, const float* residual, float* y,
                  MmaType mma, cudaStream_t s) {
  TiledParams p{x, T, int(w.cols), w, bias, residual, y};
  switch (w.dtype) {
    case DType::F32: return launch_tiled<DType::F32>(p, mma, s);
    case DType::F16: return launch_tiled<DType::F16>(p, mma, s);
    case DType::BF16: return launch_tiled<DType::BF16>(p, mma, s);
    case DType::Q8: return launch_tiled<DType::Q8>(p, mma, s);
    case DType::Q4: return launch_tiled<DType::Q4>(p, mma, s);
    case DType::Q4M: return launch_tiled<DType::Q4M>(p, mma, s);
    default: fail("cuda matmul: unsupported weight type ", dtype_name(w.dtype));
  }
}

size_t matmul_scratch_floats(int max_T, int K, int N_gate) {
  return size_t(max_T) * size_t(K) + 2 * size_t(max_T) * size_t(N_gate);
}

void matmul(const MatmulArgs& a, cudaStream_t s) {
  if (a.T <= gemv_max_tokens(a.K)) return gemv(a, s);
  const float* x = a.x;
  float* scratch = a.scratch;
  if (a.norm) {
    ELM_CHECK(scratch, "cuda matmul: fused norm needs scratch memory");
    rms_norm(a.x, a.T, a.K, a.norm_w, a.K, a.eps, a.norm_add_one, scratch, s);
    x = scratch;
    scratch += size_t(a.T) * size_t(a.K);
  }
  if (a.gate != GateAct::None) {
    ELM_CHECK(scratch && a.n == 2, "cuda matmul: gated product needs scratch memory and two weights");
    const int64_t n = int64_t(a.T) * a.w[0].rows;
    float* g = scratch;
    float* u = scratch + n;
    tiled_matmul(x, a.T, a.w[0], a.bias[0], nullptr, g, a.mma, s);
    tiled_matmul(x, a.T, a.w[1], a.bias[1], nullptr, u, a.mma, s);
    launch(gate_mul_kernel, blocks_for(n, 256), 256, 0, s, "gate_mul", a.gate, g, u, n, a.y[0]);
    return;
  }
  for (int i = 0; i < a.n; ++i) tiled_matmul(x, a.T, a.w[i], a.bias[i], a.residual[i], a.y[i], a.mma, s);
}

}  // namespace elm::cuda
