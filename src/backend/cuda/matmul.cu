// Prefill-sized products (T > gemv_max_tokens) and the matmul() dispatcher.
//
// F16 / BF16 arithmetic goes to the tensor-core GEMM (gemm.cu). The exact path, for the float32
// activation mode whose results must match the CPU reference to rounding, is a float32 FMA kernel
// (64 x 64 tiles) that decodes any weight layout as it loads it.
#include <algorithm>

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

template <DType WT>
void launch_ffma(const TiledParams& p, cudaStream_t s) {
  launch(ffma_kernel<WT>, dim3(unsigned((p.w.rows + FN - 1) / FN), unsigned((p.T + FM - 1) / FM)), 256, 0, s, "ffma",
         p);
}

__global__ void gate_mul_kernel(GateAct act, const float* g, const float* u, int64_t n, float* y) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  y[i] = gate_act(act, g[i]) * u[i];
}

}  // namespace

void exact_matmul(const float* x, int T, const DeviceWeight& w, const float* bias, const float* residual, float* y,
                  cudaStream_t s) {
  TiledParams p{x, T, int(w.cols), w, bias, residual, y};
  switch (w.dtype) {
    case DType::F32: return launch_ffma<DType::F32>(p, s);
    case DType::F16: return launch_ffma<DType::F16>(p, s);
    case DType::BF16: return launch_ffma<DType::BF16>(p, s);
    case DType::Q8: return launch_ffma<DType::Q8>(p, s);
    case DType::Q4: return launch_ffma<DType::Q4>(p, s);
    case DType::Q4M: return launch_ffma<DType::Q4M>(p, s);
    default: fail("cuda matmul: unsupported weight type ", dtype_name(w.dtype));
  }
}

namespace {
size_t align4(size_t n) { return (n + 3) / 4 * 4; }  // 16-byte boundaries between scratch regions
}  // namespace

size_t matmul_scratch_floats(const MatmulArgs& a, int max_T) {
  if (max_T <= gemv_max_tokens(a.K, a.w[0].dtype)) return 0;
  const size_t T = size_t(max_T), K = size_t(a.K);
  if (a.mma == MmaType::F32) return (a.norm ? T * K : 0) + (a.gate != GateAct::None ? 2 * T * size_t(a.w[0].rows) : 0);
  int64_t rows = 0;
  for (int i = 0; i < a.n; ++i) rows += a.w[i].rows;
  rows = std::min(rows, gemm_weight_chunk_rows(a.K));
  return align4(T * K / 2 + 1) + align4(size_t(rows) * K / 2 + 1);
}

void matmul(const MatmulArgs& a, cudaStream_t s) {
  if (a.T <= gemv_max_tokens(a.K, a.w[0].dtype)) return gemv(a, s);
  const size_t T = size_t(a.T), K = size_t(a.K);
  float* scratch = a.scratch;
  if (a.mma != MmaType::F32) {
    ELM_CHECK(scratch, "cuda matmul: prefill products need scratch memory");
    void* xh = scratch;
    x_to_half(a.x, a.T, a.K, a.mma == MmaType::BF16, a.norm_w, a.norm, a.eps, a.norm_add_one, xh, s);
    half_products(a, xh, scratch + align4(T * K / 2 + 1), s);
    return;
  }
  const float* x = a.x;
  if (a.norm) {
    ELM_CHECK(scratch, "cuda matmul: a fused norm needs scratch memory");
    rms_norm(a.x, a.T, a.K, a.norm_w, a.K, a.eps, a.norm_add_one, scratch, s);
    x = scratch;
    scratch += T * K;
  }
  if (a.gate == GateAct::None) {
    for (int i = 0; i < a.n; ++i) exact_matmul(x, a.T, a.w[i], a.bias[i], a.residual[i], a.y[i], s);
    return;
  }
  ELM_CHECK(scratch, "cuda matmul: a gated product needs scratch memory");
  const int64_t n = int64_t(T) * a.w[0].rows;
  float* g = scratch;
  float* u = scratch + n;
  exact_matmul(x, a.T, a.w[0], a.bias[0], nullptr, g, s);
  exact_matmul(x, a.T, a.w[1], a.bias[1], nullptr, u, s);
  launch(gate_mul_kernel, blocks_for(n, 256), 256, 0, s, "gate_mul", a.gate, g, u, n, a.y[0]);
}

}  // namespace elm::cuda
