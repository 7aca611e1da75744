// Pieces of matmul() that live in separate translation units (to keep each nvcc job small).
#pragma once
#include "backend/cuda/kernels.h"

namespace elm::cuda {

// Decode-sized products (T <= gemv_max_tokens(K)): one warp per output row, weights streamed once.
void gemv(const MatmulArgs& a, cudaStream_t s);

// y [T, N] = x w^T + bias + residual in float32 arithmetic (the exact prefill path).
void exact_matmul(const float* x, int T, const DeviceWeight& w, const float* bias, const float* residual, float* y,
                  cudaStream_t s);

// The tensor-core prefill path (gemm.cu): x to f16 / bf16 (RMSNorm fused when norm), then the step's
// products (a.x ignored; xh instead) against weights converted chunk by chunk into `wh`
// (gemm_weight_chunk_rows(K) * K 16-bit values).
void x_to_half(const float* x, int T, int K, bool bf16, const float* norm_w, bool norm, float eps, bool add_one,
               void* out, cudaStream_t s);
void half_products(const MatmulArgs& a, const void* xh, void* wh, cudaStream_t s);
int64_t gemm_weight_chunk_rows(int K);

}  // namespace elm::cuda
