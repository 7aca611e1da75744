// Matmul against float weights (F32, F16, BF16) in the plain row-major layout, with float32
// activations. Weights are widened to f32 in registers (F16 through F16C, BF16 by a shift), so the
// result equals the reference up to summation order. With bf16 activations (RuntimeConfig::act_dtype
// BF16) on CPUs with AVX-512 BF16, BF16 weights of prefill-sized products (more than 16 rows) run
// through vdpbf16ps instead: the activations are rounded to bf16 first (nearest even; in that mode
// they already are), products of bf16 values are exact and sums are f32. Decode keeps the gemv,
// which is bound by reading the weights.
#pragma once
#include <cstdint>

#include "backend/cpu/cpu_features.h"
#include "core/thread_pool.h"
#include "core/tensor.h"

namespace elm::cpu {

// One ISA's kernels. w is [N, K] row-major of type dt; x is [R, K]; y is [R, ldy] with output column
// n at y[n]. Each call writes the columns of its own range only.
struct FKernels {
  // Few rows (decode): columns [n0, n1).
  void (*gemv)(DType dt, const void* w, int64_t K, const float* x, int64_t R, int64_t n0, int64_t n1,
               const float* bias, float* y, int64_t ldy);
  // Many rows (prefill): columns [16 p0, 16 p1) (clipped to N), weights widened into a per-thread
  // panel buffer and multiplied by register tiles.
  void (*gemm)(DType dt, const void* w, int64_t N, int64_t K, const float* x, int64_t R, int64_t p0, int64_t p1,
               const float* bias, float* y, int64_t ldy);
  // BF16 weights against bf16-rounded activations, columns as gemm; xp is x [R, K] as to_bf16
  // writes it. Null, like to_bf16, when the CPU has no bf16 dot product.
  void (*gemm_bf16dot)(const uint16_t* w, int64_t N, int64_t K, const uint32_t* xp, int64_t R, int64_t p0, int64_t p1,
                       const float* bias, float* y, int64_t ldy);
  // One row x [K] rounded to bf16 (nearest even) as pairs [(K + 1) / 2] (x[2i] in the low half); an
  // odd K's last pair ends in 0.
  void (*to_bf16)(const float* x, int64_t K, uint32_t* xp);
};

// Null for ISAs without float kernels (Generic: matmul_ref is used).
const FKernels* fkernels(Isa isa);
inline bool fgemm_supports(const FKernels&, DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Runs y = x w^T + bias on the pool with the given kernels; act is the activation mode
// (RuntimeConfig::act_dtype): BF16 lets BF16 weights use gemm_bf16dot.
void matmul_float(const float* x, int64_t R, const TensorView& w, const FKernels& fk, const float* bias, float* y,
                  ThreadPool& pool, DType act = DType::F32);

extern const FKernels kFKernelsAvx512;
extern const FKernels kFKernelsAvx512Bf16;  // kFKernelsAvx512 plus the bf16 dot product kernel
extern const FKernels kFKernelsAvx2;
extern const FKernels kFKernelsNeon;

}  // namespace elm::cpu
