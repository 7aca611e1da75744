// AVX-512 instantiation of the float-weight kernels (fgemm_impl.h).
// GCC 12 warns about the deliberately undefined pass-through operand inside AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "backend/cpu/fgemm.h"
#include "backend/cpu/fgemm_impl.h"
#include "backend/cpu/transpose_avx512.h"

namespace elm::cpu {

namespace {

struct S512 {
  using V = __m512;
  static constexpr int W = 16;
  static constexpr int kGemmRows = 6;  // 6 x 32 accumulators + 2 weight vectors: 14 of 32 registers
  static V zero() { return _mm512_setzero_ps(); }
  static V bcast(float f) { return _mm512_set1_ps(f); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(V v) { return _mm512_reduce_add_ps(v); }
  template <DType DT>
  static V widen(const void* p, int n) {
    const __mmask16 m = n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
    if constexpr (DT == DType::F32) return _mm512_maskz_loadu_ps(m, p);
    else if constexpr (DT == DType::F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
  static void transpose(V r[16]) { avx512::transpose16x16(reinterpret_cast<__m512i*>(r)); }
};

}  // namespace

const FKernels kFKernelsAvx512 = {FloatGemm<S512>::gemv, FloatGemm<S512>::gemm, nullptr};

}  // namespace elm::cpu
