// AVX2 + FMA + F16C instantiation of the float-weight kernels (fgemm_impl.h).
#include <immintrin.h>

#include <cstring>

#include "backend/cpu/fgemm.h"
#include "backend/cpu/fgemm_impl.h"

namespace elm::cpu {

namespace {

struct S256 {
  using V = __m256;
  static constexpr int W = 8;
  static constexpr int kGemmRows = 4;  // 4 x 16 accumulators + 2 weight vectors + 1 broadcast of 16 registers
  static V zero() { return _mm256_setzero_ps(); }
  static V bcast(float f) { return _mm256_set1_ps(f); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(V v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
  }
  template <DType DT>
  static V widen(const void* p, int n) {
    constexpr size_t kSize = DT == DType::F32 ? 4 : 2;
    alignas(32) uint8_t tmp[32] = {};
    if (n < 8) {  // tails: through a zeroed buffer (no masked 16-bit loads before AVX-512)
      std::memcpy(tmp, p, size_t(n) * kSize);
      p = tmp;
    }
    if constexpr (DT == DType::F32) return _mm256_loadu_ps(static_cast<const float*>(p));
    const __m128i h = _mm_loadu_si128(static_cast<const __m128i*>(p));
    if constexpr (DT == DType::F16) return _mm256_cvtph_ps(h);
    else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static void transpose(V r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {
      u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
      u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xee);
      u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    // u[4i + j], 128-bit half h: element j + 4h of rows 4i .. 4i+3.
    for (int j = 0; j < 4; ++j) {
      r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
      r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
  }
};

}  // namespace

const FKernels kFKernelsAvx2 = {FloatGemm<S256>::gemv, FloatGemm<S256>::gemm, nullptr};

}  // namespace elm::cpu
