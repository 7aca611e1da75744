// AVX-512 instantiation of the float-weight kernels (fgemm_impl.h), and the BF16 dot product kernel.
//
// gemm_bf16dot: vdpbf16ps multiplies pairs, lane i of the result gaining a[2i] b[2i] + a[2i+1] b[2i+1]
// (products of bf16 values are exact, sums f32). Each thread packs 2 panels of 16 output columns x
// kKc k values as one vector per k pair and panel (lane n: w[n][k], w[n][k + 1]; a 16 x 16 transpose
// of the 32-bit lanes of 16 weight rows), then runs register tiles of kMr activation rows x 2 panels
// with one broadcast pair (x[k], x[k + 1]) per row and k pair.
// GCC 12 warns about the deliberately undefined pass-through operand inside AVX-512 intrinsics.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/fgemm.h"
#include "backend/cpu/fgemm_impl.h"
#include "backend/cpu/simd_avx512.h"
#include "backend/cpu/transpose_avx512.h"

namespace elm::cpu {

namespace {

constexpr int64_t kKc = 512;  // k values per packed block: 2 panels of [kKc / 2 pairs, 16] u32 = 32 KB, in L1
// Rows per tile: 8 x 2 panels make 16 accumulators, enough independent chains to cover the
// vdpbf16ps latency; on Zen 5 10 and 12 rows measured the same (about 400 GFLOPS a core on
// [128, 960] x [960, 960]), 6 rows 10-15 % less.
constexpr int kMr = 8;

inline __mmask16 first16(int64_t n) { return n >= 16 ? __mmask16(0xffff) : n <= 0 ? 0 : __mmask16((1u << n) - 1); }

// x [K] to bf16 pairs [(K + 1) / 2], rounded to nearest even; the pad of an odd K is 0.
void to_bf16(const float* x, int64_t K, uint32_t* out) {
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
    _mm512_storeu_si512(out + k / 2, (__m512i)v);
  }
  if (k < K) {  // masked loads read zeros past K: they become the pad
    const __m512 lo = _mm512_maskz_loadu_ps(first16(K - k), x + k);
    const __m512 hi = _mm512_maskz_loadu_ps(first16(K - k - 16), x + k + 16);
    const int64_t pairs = (K - k + 1) / 2;
    _mm512_mask_storeu_epi32(out + k / 2, first16(pairs), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

// Columns [c0, c0 + nc) (nc <= 32; the rest of the 32 zero) x k values [k0, k0 + kc) of w [N, K]
// into panel [(kc + 1) / 2 pairs][2 panels][16 lanes]; an odd kc's last pair ends in 0.
void pack(const uint16_t* w, int64_t K, int64_t c0, int64_t nc, int64_t k0, int64_t kc, uint32_t* panel) {
  for (int64_t kk = 0; kk < kc; kk += 32) {
    const int64_t n = std::min<int64_t>(32, kc - kk);
    const __mmask32 m = n == 32 ? ~__mmask32(0) : (__mmask32(1) << n) - 1;
    for (int h = 0; h < 2; ++h) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t col = h * 16 + i;
        r[i] = col < nc ? _mm512_maskz_loadu_epi16(m, w + (c0 + col) * K + k0 + kk) : _mm512_setzero_si512();
      }
      avx512::transpose16x16(r);
      for (int64_t j = 0; j < (n + 1) / 2; ++j) _mm512_storeu_si512(panel + (kk / 2 + j) * 32 + h * 16, r[j]);
    }
  }
}

// Rows [r0, r0 + M) of y[:, c0 .. c0 + nc) += pairs k pairs from kp0 of x (pairs [R, ldx]) times the
// packed panel; the first block (first) starts from the bias (or 0) instead of y.
template <int M>
void tile(const uint32_t* panel, int64_t pairs, const uint32_t* x, int64_t ldx, int64_t r0, int64_t kp0, bool first,
          const float* bias, float* y, int64_t ldy, int64_t c0, int64_t nc) {
  const __mmask16 mask[2] = {first16(nc), first16(nc - 16)};
  __m512 acc[M][2];  // all in registers: the loops over M are unrolled
  for (int h = 0; h < 2; ++h) {
    const __m512 b = first && bias ? _mm512_maskz_loadu_ps(mask[h], bias + c0 + 16 * h) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m)
      acc[m][h] = first ? b : _mm512_maskz_loadu_ps(mask[h], y + (r0 + m) * ldy + c0 + 16 * h);
  }
  const uint32_t* xr = x + r0 * ldx + kp0;
  for (int64_t j = 0; j < pairs; ++j) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel + j * 32);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(panel + j * 32 + 16);
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(int(xr[m * ldx + j]));
      acc[m][0] = _mm512_dpbf16_ps(acc[m][0], w0, xb);
      acc[m][1] = _mm512_dpbf16_ps(acc[m][1], w1, xb);
    }
  }
#pragma GCC unroll 16
  for (int m = 0; m < M; ++m)
    for (int h = 0; h < 2; ++h) _mm512_mask_storeu_ps(y + (r0 + m) * ldy + c0 + 16 * h, mask[h], acc[m][h]);
}

// The last R % kMr rows: one tile of that many rows.
template <int M>
void tail(int64_t left, const uint32_t* panel, int64_t pairs, const uint32_t* x, int64_t ldx, int64_t r0, int64_t kp0,
          bool first, const float* bias, float* y, int64_t ldy, int64_t c0, int64_t nc) {
  if constexpr (M > 0) {
    if (left == M) return tile<M>(panel, pairs, x, ldx, r0, kp0, first, bias, y, ldy, c0, nc);
    tail<M - 1>(left, panel, pairs, x, ldx, r0, kp0, first, bias, y, ldy, c0, nc);
  }
}

void rows_tiles(const uint32_t* panel, int64_t pairs, const uint32_t* x, int64_t ldx, int64_t R, int64_t kp0,
                bool first, const float* bias, float* y, int64_t ldy, int64_t c0, int64_t nc) {
  int64_t r = 0;
  for (; r + kMr <= R; r += kMr) tile<kMr>(panel, pairs, x, ldx, r, kp0, first, bias, y, ldy, c0, nc);
  tail<kMr - 1>(R - r, panel, pairs, x, ldx, r, kp0, first, bias, y, ldy, c0, nc);
}

void gemm_bf16dot(const uint16_t* w, int64_t N, int64_t K, const uint32_t* xp, int64_t R, int64_t p0, int64_t p1,
                  const float* bias, float* y, int64_t ldy) {
  // 64-byte aligned: every weight load of the tiles is one whole cache line.
  thread_local std::vector<uint32_t> buf(size_t(kKc / 2 * 32 + 16));
  uint32_t* panel = reinterpret_cast<uint32_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  const int64_t ldx = (K + 1) / 2, c_end = std::min(N, 16 * p1);
  for (int64_t c0 = 16 * p0; c0 < c_end; c0 += 32) {
    const int64_t nc = std::min<int64_t>(32, c_end - c0);
    for (int64_t k0 = 0; k0 < K; k0 += kKc) {
      const int64_t kc = std::min(kKc, K - k0);
      pack(w, K, c0, nc, k0, kc, panel);
      rows_tiles(panel, (kc + 1) / 2, xp, ldx, R, k0 / 2, k0 == 0, bias, y, ldy, c0, nc);
    }
  }
}

}  // namespace

using Avx512 = FloatGemm<avx512::Simd>;
const FKernels kFKernelsAvx512 = {Avx512::gemv, Avx512::gemm, nullptr, nullptr};
const FKernels kFKernelsAvx512Bf16 = {Avx512::gemv, Avx512::gemm, gemm_bf16dot, to_bf16};

}  // namespace elm::cpu
