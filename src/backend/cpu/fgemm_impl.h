// The float-weight matmul kernels, written once over the SIMD interface of simd_<isa>.h and
// instantiated per ISA (fgemm_avx512.cpp, fgemm_avx2.cpp, fgemm_neon.cpp).
// Only included by ISA files (the template is instantiated there with that ISA's flags).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/dtype.h"

namespace elm::cpu {

template <class S>
struct FloatGemm {
  using V = typename S::V;
  static constexpr int W = S::W;
  static constexpr int NC = 2 * W;      // output columns of a gemm tile
  static constexpr int64_t KC = 256;    // reduction block: a packed [KC, NC] panel stays in L1
  static constexpr int MR = S::kGemmRows;

  template <elm::DType DT>
  static const uint8_t* at(const void* w, int64_t K, int64_t row, int64_t k) {
    return static_cast<const uint8_t*>(w) + size_t(row * K + k) * (DT == elm::DType::F32 ? 4 : 2);
  }
  static V load_x(const float* p, int64_t n) {
    return n >= W ? S::load(p) : S::template widen<elm::DType::F32>(p, int(n));
  }

  // Few rows: 4 weight rows at a time against all R activation rows. Decode streams the weights once,
  // 4 rows (a few KB) at a time; the hardware prefetcher trains too late on a stream that restarts
  // every few KB, so every load also prefetches kPrefetchBytes further on. The rows of a thread's
  // range are consecutive in memory, so the four prefetch streams together cover the bytes that follow
  // the block, whatever K is.
  static constexpr int64_t kPrefetchBytes = 6144;
  template <elm::DType DT, int R>
  static void gemv_rows(const void* w, int64_t K, const float* x, int64_t n0, int64_t n1,
                        const float* bias, float* y, int64_t ldy) {
    constexpr int NR = 4;
    int64_t n = n0;
    for (; n + NR <= n1; n += NR) {
      V acc[NR][R];
      for (int i = 0; i < NR; ++i)
        for (int r = 0; r < R; ++r) acc[i][r] = S::zero();
      // Whole vectors, then a masked tail: the same products in the same order as masking every step.
      const auto block = [&](int64_t k, int cols) __attribute__((always_inline)) {
        V xv[R];
        for (int r = 0; r < R; ++r) xv[r] = cols == W ? S::load(x + r * K + k) : load_x(x + r * K + k, cols);
        for (int i = 0; i < NR; ++i) {
          __builtin_prefetch(at<DT>(w, K, n + i, k) + kPrefetchBytes);  // see kPrefetchBytes
          const V wv = S::template widen<DT>(at<DT>(w, K, n + i, k), cols);
          for (int r = 0; r < R; ++r) acc[i][r] = S::fma(wv, xv[r], acc[i][r]);
        }
      };
      int64_t k = 0;
      for (; k + W <= K; k += W) block(k, W);
      if (k < K) block(k, int(K - k));
      // Four rows' sums at once: with short rows (attention's 64-dim keys) the reductions cost as
      // much as the products when done one by one.
      static_assert(NR == 4);
      for (int r = 0; r < R; ++r) {
        float s[4];
        S::sum4(acc[0][r], acc[1][r], acc[2][r], acc[3][r], s);
        for (int i = 0; i < NR; ++i) y[r * ldy + n + i] = s[i] + (bias ? bias[n + i] : 0.f);
      }
    }
    for (; n < n1; ++n) {
      V acc[R];
      for (int r = 0; r < R; ++r) acc[r] = S::zero();
      for (int64_t k = 0; k < K; k += W) {
        const int64_t left = K - k;
        const V wv = S::template widen<DT>(at<DT>(w, K, n, k), int(std::min<int64_t>(W, left)));
        for (int r = 0; r < R; ++r) acc[r] = S::fma(wv, load_x(x + r * K + k, left), acc[r]);
      }
      // Summed as in a group of four, so a column's value does not depend on where the range ends
      // (attention scores a tile's keys as columns: a row must get the same score whatever the tile's
      // key count, see cpu/attention.cpp's invariant steps).
      for (int r = 0; r < R; ++r) {
        float s[4];
        S::sum4(acc[r], S::zero(), S::zero(), S::zero(), s);
        y[r * ldy + n] = s[0] + (bias ? bias[n] : 0.f);
      }
    }
  }

  template <elm::DType DT>
  static void gemv_t(const void* w, int64_t K, const float* x, int64_t R, int64_t n0, int64_t n1, const float* bias,
                     float* y, int64_t ldy) {
    for (int64_t r = 0; r < R; r += 4) {
      const float* xr = x + r * K;
      float* yr = y + r * ldy;
      switch (std::min<int64_t>(4, R - r)) {
        case 1: gemv_rows<DT, 1>(w, K, xr, n0, n1, bias, yr, ldy); break;
        case 2: gemv_rows<DT, 2>(w, K, xr, n0, n1, bias, yr, ldy); break;
        case 3: gemv_rows<DT, 3>(w, K, xr, n0, n1, bias, yr, ldy); break;
        default: gemv_rows<DT, 4>(w, K, xr, n0, n1, bias, yr, ldy); break;
      }
    }
  }

  static void gemv(elm::DType dt, const void* w, int64_t K, const float* x, int64_t R, int64_t n0, int64_t n1,
                   const float* bias, float* y, int64_t ldy) {
    if (dt == elm::DType::F32) return gemv_t<elm::DType::F32>(w, K, x, R, n0, n1, bias, y, ldy);
    if (dt == elm::DType::F16) return gemv_t<elm::DType::F16>(w, K, x, R, n0, n1, bias, y, ldy);
    return gemv_t<elm::DType::BF16>(w, K, x, R, n0, n1, bias, y, ldy);
  }

  // Rows [r0, r0 + M) of y[:, c0 .. c0 + nc) += x[:, k0 .. k0 + kc) * panel, panel [kc, NC] packed.
  // The first reduction block starts from the bias (or 0) instead of y.
  template <int M>
  static void tile(const float* panel, const float* x, int64_t K, int64_t r0, int64_t k0, int64_t kc, const float* bias,
                   float* y, int64_t ldy, int64_t c0, int64_t nc) {
    V acc[M][2];
    for (int m = 0; m < M; ++m)
      for (int h = 0; h < 2; ++h) {
        const int64_t cols = std::clamp<int64_t>(nc - h * W, 0, W);
        if (k0 > 0) acc[m][h] = load_x(y + (r0 + m) * ldy + c0 + h * W, cols);
        else acc[m][h] = bias ? load_x(bias + c0 + h * W, cols) : S::zero();
      }
    for (int64_t k = 0; k < kc; ++k) {
      const V w0 = S::load(panel + k * NC), w1 = S::load(panel + k * NC + W);
      for (int m = 0; m < M; ++m) {
        const V xb = S::bcast(x[(r0 + m) * K + k0 + k]);
        acc[m][0] = S::fma(w0, xb, acc[m][0]);
        acc[m][1] = S::fma(w1, xb, acc[m][1]);
      }
    }
    for (int m = 0; m < M; ++m)
      for (int h = 0; h < 2; ++h) {
        const int64_t cols = std::clamp<int64_t>(nc - h * W, 0, W);
        float* dst = y + (r0 + m) * ldy + c0 + h * W;
        if (cols == W) {
          S::store(dst, acc[m][h]);
        } else if (cols > 0) {
          alignas(64) float tmp[W];
          S::store(tmp, acc[m][h]);
          std::memcpy(dst, tmp, size_t(cols) * 4);
        }
      }
  }

  template <int M>
  static void tiles(const float* panel, const float* x, int64_t R, int64_t K, int64_t k0, int64_t kc,
                    const float* bias, float* y, int64_t ldy, int64_t c0, int64_t nc) {
    int64_t r = 0;
    for (; r + M <= R; r += M) tile<M>(panel, x, K, r, k0, kc, bias, y, ldy, c0, nc);
    if constexpr (M > 1) {
      if (r < R) {
        // The remainder, one row count smaller at a time (at most M - 1 rows).
        for (; r < R; ++r) tile<1>(panel, x, K, r, k0, kc, bias, y, ldy, c0, nc);
      }
    }
  }

  // Columns [16 p0, 16 p1) clipped to N: panels of NC columns widened and transposed into a
  // per-thread [KC, NC] buffer, then register tiles of MR rows x NC columns.
  template <elm::DType DT>
  static void gemm_t(const void* w, int64_t N, int64_t K, const float* x, int64_t R, int64_t p0, int64_t p1,
                     const float* bias, float* y, int64_t ldy) {
    thread_local std::vector<float> buf;
    buf.resize(size_t(KC * NC) + 16);
    float* panel = buf.data();
    const int64_t c_end = std::min(N, 16 * p1);
    for (int64_t c0 = 16 * p0; c0 < c_end; c0 += NC) {
      const int64_t nc = std::min<int64_t>(NC, c_end - c0);
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        for (int64_t kk = 0; kk < kc; kk += W) {
          const int valid = int(std::min<int64_t>(W, kc - kk));
          for (int h = 0; h < 2; ++h) {
            V r[W];
            for (int i = 0; i < W; ++i) {
              const int64_t row = c0 + h * W + i;
              r[i] = row < c0 + nc ? S::template widen<DT>(at<DT>(w, K, row, k0 + kk), valid) : S::zero();
            }
            S::transpose(r);
            for (int j = 0; j < valid; ++j) S::store(panel + (kk + j) * NC + h * W, r[j]);
          }
        }
        tiles<MR>(panel, x, R, K, k0, kc, bias, y, ldy, c0, nc);
      }
    }
  }

  static void gemm(elm::DType dt, const void* w, int64_t N, int64_t K, const float* x, int64_t R, int64_t p0,
                   int64_t p1, const float* bias, float* y, int64_t ldy) {
    if (dt == elm::DType::F32) return gemm_t<elm::DType::F32>(w, N, K, x, R, p0, p1, bias, y, ldy);
    if (dt == elm::DType::F16) return gemm_t<elm::DType::F16>(w, N, K, x, R, p0, p1, bias, y, ldy);
    return gemm_t<elm::DType::BF16>(w, N, K, x, R, p0, p1, bias, y, ldy);
  }
};

}  // namespace elm::cpu
