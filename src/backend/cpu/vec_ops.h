// Vector math for the kernels other than matmul (attention, norms, activations), one table per
// ISA: vec_impl.h written once over the SIMD interface of simd_<isa>.h, plus a scalar build for
// CPUs without a SIMD family. Every entry is tested against a plain loop (tests/test_vec_ops.cpp).
#pragma once
#include <cstdint>

#include "backend/cpu/cpu_features.h"

namespace elm::cpu {

struct VecOps {
  float (*dot)(const float* a, const float* b, int64_t n);
  float (*max)(const float* x, int64_t n);  // -inf for n = 0
  void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a x
  void (*scale)(float a, float* y, int64_t n);                 // y *= a
  // x = exp(x - m), 0 where x - m < -87 (so -inf scores give exactly 0); returns the sum.
  float (*exp_shift)(float* x, int64_t n, float m);
  // For each query q < nq: acc[q * width, + width) += sum over j < n of p[q * ldp + j] * rows[j * width,
  // + width) (attention's probabilities times a tile of value rows, for a block of queries at once).
  void (*weighted_rows)(const float* p, int64_t ldp, int64_t nq, const float* rows, int64_t n, int64_t width,
                        float* acc);
  void (*weighted_rows_f16)(const float* p, int64_t ldp, int64_t nq, const uint16_t* rows, int64_t n, int64_t width,
                            float* acc);
  void (*silu)(const float* x, float* y, int64_t n);  // x / (1 + exp(-x))
  void (*add)(const float* a, const float* b, float* y, int64_t n);
  void (*mul)(const float* a, const float* b, float* y, int64_t n);
  // RMSNorm of one run: y = x / sqrt(mean(x^2) + eps) * (w, 1 + w with add_one, or 1 when w is null).
  void (*rms_norm)(const float* x, const float* w, bool add_one, float eps, float* y, int64_t n);
  // Element type conversions: f16 / bf16 / (int8 times a scale) to f32, and f32 to f16 (nearest even).
  void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n);
  void (*bf16_to_f32)(const uint16_t* x, float* y, int64_t n);
  void (*i8_to_f32)(const int8_t* x, float scale, float* y, int64_t n);
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n);
};

const VecOps& vec_ops(Isa isa = active_isa());

extern const VecOps kVecOpsScalar;
extern const VecOps kVecOpsAvx512;
extern const VecOps kVecOpsAvx2;
extern const VecOps kVecOpsNeon;

}  // namespace elm::cpu
