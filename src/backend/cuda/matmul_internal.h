// Pieces of matmul() that live in separate translation units (to keep each nvcc job small).
#pragma once
#include "backend/cuda/kernels.h"

namespace elm::cuda {

// Decode-sized products (T <= gemv_max_tokens(K)): one warp per output row, weights streamed once.
void gemv(const MatmulArgs& a, cudaStream_t s);

// One tiled product y [T, N] = x w^T + bias + residual (prefill sizes).
void tiled_matmul(const float* x, int T, const DeviceWeight& w, const float* bias, const float* residual, float* y,
                  MmaType mma, cudaStream_t s);

}  // namespace elm::cuda
