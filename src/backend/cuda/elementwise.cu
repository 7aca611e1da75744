// Elementwise and layout kernels: embedding lookup, RMSNorm, binary/unary ops, slices, row gathers,
// RoPE and argmax. Each matches the CPU reference (src/backend/cpu/) formula for formula.
#include <algorithm>
#include <cfloat>

#include "backend/cuda/common.cuh"
#include "backend/cuda/rope.cuh"

namespace elm::cuda {

bool weight_supported(DType t, int64_t cols) {
  const bool type_ok = t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8 || t == DType::Q4 ||
                       t == DType::Q4M;
  return type_ok && cols % 32 == 0;
}

namespace {

__global__ void embed_kernel(DeviceWeight table, const int32_t* ids, int T, float* out) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t C = table.cols;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= T * C) return;
  const int64_t t = i / C, c = i % C;
  out[i] = weight_value(table, ids[t], c);
}

// One block per (row, group): y = x / sqrt(mean(x^2) + eps) * (w or 1 + w).
__global__ void rms_norm_kernel(const float* x, int C, const float* w, int group, float eps, bool add_one, float* y) {
  pdl_launch_dependents();
  pdl_wait();
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const int g0 = blockIdx.y * group;
  const float* xr = x + r * C + g0;
  float ss = 0;
  for (int c = threadIdx.x; c < group; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss, red);
  const float inv = 1.0f / sqrtf(ss / float(group) + eps);
  float* yr = y + r * C + g0;
  for (int c = threadIdx.x; c < group; c += blockDim.x) {
    float v = xr[c] * inv;
    if (w) v *= add_one ? 1.0f + w[c] : w[c];
    yr[c] = v;
  }
}

__device__ __forceinline__ float apply_unary(EwOp op, float x, float p) {
  switch (op) {
    case EwOp::Scale: return x * p;
    case EwOp::Silu: return silu(x);
    case EwOp::Gelu: return gelu(x);
    case EwOp::GeluTanh: return gelu_tanh(x);
    case EwOp::Sigmoid: return 1.0f / (1.0f + expf(-x));
    case EwOp::Softplus: return x > 20.f ? x : log1pf(expf(x));
    case EwOp::Tanh: return tanhf(x);
    case EwOp::SoftCap: return p * tanhf(x / p);
    default: return x;
  }
}

__global__ void elementwise_kernel(EwOp op, const float* a, const float* b, bool bb, int64_t R, int C, float p,
                                   float* y) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= R * C) return;
  if (op == EwOp::Add || op == EwOp::Mul) {
    const float bv = b[bb ? i % C : i];
    y[i] = op == EwOp::Add ? a[i] + bv : a[i] * bv;
  } else {
    y[i] = apply_unary(op, a[i], p);
  }
}

__global__ void copy_cols_kernel(const float* x, int64_t R, int x_cols, int start, int len, float* y, int y_cols,
                                 int y_off) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= R * len) return;
  const int64_t r = i / len, c = i % len;
  y[r * y_cols + y_off + c] = x[r * x_cols + start + c];
}

__global__ void gather_rows_kernel(const float* x, int C, const int32_t* rows, int n, float* y) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(n) * C) return;
  const int64_t r = i / C, c = i % C;
  y[i] = x[int64_t(rows[r]) * C + c];
}

__global__ void rope_kernel(const float* x, int T, int C, const int32_t* positions, RopeArgs ra, float* y) {
  pdl_launch_dependents();
  pdl_wait();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(T) * C) return;
  const int64_t t = i / C;
  const int c = int(i % C), h0 = c - c % ra.head_dim;
  y[i] = rope_value(x + t * C + h0, c - h0, positions[t], ra);
}

// argmax: the first index of the largest value of each row (the CPU sampler's argmax). A row of a
// large vocabulary is split over several blocks, each the only reader of its slice (one block per row
// was latency-bound: 12 us for a 49k row on an H100); the last block to finish a row (a counter per row,
// left at zero again) reduces the slices' winners. Ties and NaN: the lower index; a row of NaN gives 0.
constexpr int kArgmaxThreads = 256, kArgmaxMaxSplits = 32, kArgmaxPerBlock = 2048;

struct ArgmaxPartial {
  float v;
  int i;
};
// Scratch of one row, at a fixed place whatever the row count of a call (a counter left non-zero by
// a partial of a wider call would be read as blocks already done).
struct ArgmaxRowScratch {
  unsigned count;
  unsigned pad;
  ArgmaxPartial partial[kArgmaxMaxSplits];
};

__device__ __forceinline__ void argmax_better(float& bv, int& bi, float ov, int oi) {
  if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
}

__device__ __forceinline__ void argmax_warp(float& bv, int& bi) {
  for (int o = 16; o > 0; o >>= 1) argmax_better(bv, bi, __shfl_xor_sync(0xffffffffu, bv, o), __shfl_xor_sync(0xffffffffu, bi, o));
}

__global__ void __launch_bounds__(kArgmaxThreads) argmax_kernel(const float* x, int C, int per, ArgmaxRowScratch* scratch,
                                                               int32_t* out) {
  pdl_launch_dependents();
  pdl_wait();
  __shared__ float best_v[kArgmaxThreads / 32];
  __shared__ int best_i[kArgmaxThreads / 32];
  __shared__ bool last;
  const int r = blockIdx.y, b = blockIdx.x, nb = gridDim.x;
  const float* row = x + int64_t(r) * C;
  const int lo = b * per, hi = min(C, lo + per);
  float bv = -INFINITY;
  int bi = INT32_MAX;
#pragma unroll 4
  for (int c = lo + int(threadIdx.x); c < hi; c += kArgmaxThreads) argmax_better(bv, bi, row[c], c);
  argmax_warp(bv, bi);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) best_v[warp] = bv, best_i[warp] = bi;
  __syncthreads();
  if (warp == 0) {
    bv = lane < kArgmaxThreads / 32 ? best_v[lane] : -INFINITY;
    bi = lane < kArgmaxThreads / 32 ? best_i[lane] : INT32_MAX;
    argmax_warp(bv, bi);
    if (lane == 0) {
      if (nb == 1) {
        out[r] = bi == INT32_MAX ? 0 : bi;
      } else {
        scratch[r].partial[b] = {bv, bi};
        __threadfence();  // the partial is visible before the count says so
        last = atomicAdd(&scratch[r].count, 1u) == unsigned(nb - 1);
      }
    }
  }
  if (nb == 1) return;
  __syncthreads();
  if (!last || warp != 0) return;
  __threadfence();
  const volatile ArgmaxPartial* pr = scratch[r].partial;
  bv = lane < nb ? pr[lane].v : -INFINITY;
  bi = lane < nb ? pr[lane].i : INT32_MAX;
  argmax_warp(bv, bi);
  if (lane == 0) {
    out[r] = bi == INT32_MAX ? 0 : bi;
    scratch[r].count = 0;  // ready for the next step
  }
}

constexpr int kThreads = 256;

}  // namespace

void embed(const DeviceWeight& table, const int32_t* ids, int T, float* out, cudaStream_t s) {
  const int64_t n = int64_t(T) * table.cols;
  launch(embed_kernel, blocks_for(n, kThreads), kThreads, 0, s, "embed", table, ids, T, out);
}

void rms_norm(const float* x, int R, int C, const float* w, int group, float eps, bool add_one, float* y,
              cudaStream_t s) {
  const int threads = group >= 256 ? 256 : (group + 31) / 32 * 32;
  launch(rms_norm_kernel, dim3(unsigned(R), unsigned(C / group)), threads, 0, s, "rms_norm", x, C, w, group, eps, add_one, y);
}

void elementwise(EwOp op, const float* a, const float* b, bool b_broadcast, int R, int C, float param, float* y,
                 cudaStream_t s) {
  const int64_t n = int64_t(R) * C;
  launch(elementwise_kernel, blocks_for(n, kThreads), kThreads, 0, s, "elementwise", op, a, b, b_broadcast, int64_t(R), C, param, y);
}

void copy_cols(const float* x, int R, int x_cols, int start, int len, float* y, int y_cols, int y_off,
               cudaStream_t s) {
  const int64_t n = int64_t(R) * len;
  launch(copy_cols_kernel, blocks_for(n, kThreads), kThreads, 0, s, "copy_cols", x, int64_t(R), x_cols, start, len, y, y_cols, y_off);
}

void gather_rows(const float* x, int C, const int32_t* rows, int n, float* y, cudaStream_t s) {
  const int64_t total = int64_t(n) * C;
  launch(gather_rows_kernel, blocks_for(total, kThreads), kThreads, 0, s, "gather_rows", x, C, rows, n, y);
}

void rope(const float* x, int T, int C, const int32_t* positions, const RopeArgs& r, float* y, cudaStream_t s) {
  const int64_t n = int64_t(T) * C;
  launch(rope_kernel, blocks_for(n, kThreads), kThreads, 0, s, "rope", x, T, C, positions, r, y);
}

size_t argmax_scratch_bytes(int R) { return size_t(R) * sizeof(ArgmaxRowScratch); }

void argmax_rows(const float* x, int R, int C, int32_t* out, void* scratch, cudaStream_t s) {
  const int nb = std::max(1, std::min(kArgmaxMaxSplits, (C + kArgmaxPerBlock - 1) / kArgmaxPerBlock));
  const int per = (C + nb - 1) / nb;
  launch(argmax_kernel, dim3(unsigned(nb), unsigned(R)), kArgmaxThreads, 0, s, "argmax", x, C, per,
         static_cast<ArgmaxRowScratch*>(scratch), out);
}

}  // namespace elm::cuda
