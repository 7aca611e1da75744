// The SIMD interface the portable kernel templates (fgemm_impl.h, vec_impl.h) are written against,
// for AVX-512: 16 floats per vector. Only for *_avx512.cpp files (they are compiled with the flags).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "backend/cpu/transpose_avx512.h"
#include "core/dtype.h"

namespace elm::cpu::avx512 {

struct Simd {
  using V = __m512;
  static constexpr int W = 16;
  static constexpr int kGemmRows = 6;  // fgemm tile: 6 x 32 accumulators + 2 weight vectors of 32 registers

  static __mmask16 first(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }
  static V zero() { return _mm512_setzero_ps(); }
  static V bcast(float f) { return _mm512_set1_ps(f); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const float* p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, V v, int n) { _mm512_mask_storeu_ps(p, first(n), v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(V v) { return _mm512_reduce_add_ps(v); }
  // out[0..3] = sum(a), sum(b), sum(c), sum(d): halves folded, then pairwise adds shared by all four.
  static void sum4(V a, V b, V c, V d, float* out) {
    const auto fold = [](V v) {
      return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    };
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(fold(a), fold(b)), _mm256_hadd_ps(fold(c), fold(d)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }
  static float hmax(V v) { return _mm512_reduce_max_ps(v); }
  static V round(V v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for integral n in [-126, 127] (n given as float).
  static V pow2(V n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  // v where x >= t, else 0.
  static V keep_ge(V x, float t, V v) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(t), _CMP_GE_OQ), v); }

  template <DType DT>
  static V widen(const void* p, int n) {
    const __mmask16 m = first(n);
    if constexpr (DT == DType::F32) return _mm512_maskz_loadu_ps(m, p);
    else if constexpr (DT == DType::F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    else if constexpr (DT == DType::BF16)
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    else return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));  // I8
  }
  // Rounds to nearest even (MXCSR default), stores n halves.
  static void store_f16(uint16_t* p, V v, int n) {
    _mm256_mask_storeu_epi16(p, first(n), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static void transpose(V r[16]) { transpose16x16(reinterpret_cast<__m512i*>(r)); }
};

}  // namespace elm::cpu::avx512
