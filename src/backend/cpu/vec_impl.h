// The VecOps table (vec_ops.h), written once over the SIMD interface of simd_<isa>.h and
// instantiated per ISA (vec_<isa>.cpp) and with scalar "vectors" (vec_ops.cpp).
#pragma once
#include <cmath>
#include <cstdint>

#include "backend/cpu/vec_ops.h"
#include "core/dtype.h"

namespace elm::cpu {

template <class S>
struct VecImpl {
  using V = typename S::V;
  static constexpr int W = S::W;
  static int rest(int64_t n, int64_t i) { return int(n - i < W ? n - i : W); }

  // exp(x) for x >= -87 (callers zero what lies below): 2^k * p(r), k = round(x / ln 2), r the
  // remainder in [-ln2/2, ln2/2], p the Cephes degree-6 polynomial (about 1 ulp).
  static V exp(V x) {
    x = S::min(x, S::bcast(88.3762626647949f));
    x = S::max(x, S::bcast(-87.3365447505531f));
    const V k = S::round(S::mul(x, S::bcast(1.44269504088896341f)));
    V r = S::fma(k, S::bcast(-0.693359375f), x);
    r = S::fma(k, S::bcast(2.12194440e-4f), r);
    V p = S::bcast(1.9875691500e-4f);
    p = S::fma(p, r, S::bcast(1.3981999507e-3f));
    p = S::fma(p, r, S::bcast(8.3334519073e-3f));
    p = S::fma(p, r, S::bcast(4.1665795894e-2f));
    p = S::fma(p, r, S::bcast(1.6666665459e-1f));
    p = S::fma(p, r, S::bcast(5.0000001201e-1f));
    p = S::fma(S::mul(p, r), r, S::add(r, S::bcast(1.f)));
    return S::mul(p, S::pow2(k));
  }

  static float dot(const float* a, const float* b, int64_t n) {
    V acc0 = S::zero(), acc1 = S::zero();
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      acc0 = S::fma(S::load(a + i), S::load(b + i), acc0);
      acc1 = S::fma(S::load(a + i + W), S::load(b + i + W), acc1);
    }
    for (; i < n; i += W) acc0 = S::fma(S::load(a + i, rest(n, i)), S::load(b + i, rest(n, i)), acc0);
    return S::sum(S::add(acc0, acc1));
  }

  static float max(const float* x, int64_t n) {
    float m = -INFINITY;
    int64_t i = 0;
    if (n >= W) {
      V v = S::load(x);
      for (i = W; i + W <= n; i += W) v = S::max(v, S::load(x + i));
      m = S::hmax(v);
    }
    for (; i < n; ++i) m = x[i] > m ? x[i] : m;
    return m;
  }

  static void axpy(float a, const float* x, float* y, int64_t n) {
    const V va = S::bcast(a);
    for (int64_t i = 0; i < n; i += W) {
      const int c = rest(n, i);
      S::store(y + i, S::fma(va, S::load(x + i, c), S::load(y + i, c)), c);
    }
  }

  static void scale(float a, float* y, int64_t n) {
    const V va = S::bcast(a);
    for (int64_t i = 0; i < n; i += W) S::store(y + i, S::mul(va, S::load(y + i, rest(n, i))), rest(n, i));
  }

  static float exp_shift(float* x, int64_t n, float m) {
    const V vm = S::bcast(m);
    V acc = S::zero();
    for (int64_t i = 0; i < n; i += W) {
      const int c = rest(n, i);
      const V d = S::sub(S::load(x + i, c), vm);
      V e = S::keep_ge(d, -87.f, exp(d));
      if (c < W) e = zero_past(e, c);  // lanes past n must not add to the sum
      S::store(x + i, e, c);
      acc = S::add(acc, e);
    }
    return S::sum(acc);
  }

  static V zero_past(V v, int c) {
    alignas(64) float t[W];
    S::store(t, v);
    for (int i = c; i < W; ++i) t[i] = 0.f;
    return S::load(t);
  }

  // RT: the rows' element type (F32, or F16 read in place from a KV cache). QB queries at a time,
  // so each row is loaded (and widened) once for all of them; per query the sum runs over j in
  // order, as a one-query loop would.
  // Columns [c, c + U * W) of QB queries; cnt: lanes of the last vector (W when the run is whole).
  // No per-vector conditions inside, so the QB x U accumulators stay in registers.
  template <DType RT, int QB, int U, class E>
  static void weighted_cols(const float* p, int64_t ldp, const E* rows, int64_t n, int64_t width, float* acc,
                            int64_t c, int cnt) {
    V a[QB][U];
#pragma GCC unroll 8
    for (int q = 0; q < QB; ++q)
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) a[q][u] = S::load(acc + q * width + c + u * W, u == U - 1 ? cnt : W);
    for (int64_t j = 0; j < n; ++j) {
      const E* row = rows + j * width + c;
      V v[U];
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) v[u] = S::template widen<RT>(row + u * W, u == U - 1 ? cnt : W);
#pragma GCC unroll 8
      for (int q = 0; q < QB; ++q) {
        const V pj = S::bcast(p[q * ldp + j]);
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) a[q][u] = S::fma(pj, v[u], a[q][u]);
      }
    }
#pragma GCC unroll 8
    for (int q = 0; q < QB; ++q)
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) S::store(acc + q * width + c + u * W, a[q][u], u == U - 1 ? cnt : W);
  }
  template <DType RT, int QB, class E>
  static void weighted_rows_block(const float* p, int64_t ldp, const E* rows, int64_t n, int64_t width, float* acc) {
    constexpr int U = 4;  // vectors of each query's acc kept in registers
    int64_t c = 0;
    for (; c + U * W <= width; c += U * W) weighted_cols<RT, QB, U>(p, ldp, rows, n, width, acc, c, W);
    for (; c < width; c += W) weighted_cols<RT, QB, 1>(p, ldp, rows, n, width, acc, c, rest(width, c));
  }
  template <DType RT, class E>
  static void weighted_rows_t(const float* p, int64_t ldp, int64_t nq, const E* rows, int64_t n, int64_t width,
                              float* acc) {
    // QB x 4 accumulators + 4 rows + a broadcast within the register file (16 registers with AVX2).
    constexpr int QB = W == 8 ? 2 : 6;
    int64_t q = 0;
    for (; q + QB <= nq; q += QB) weighted_rows_block<RT, QB>(p + q * ldp, ldp, rows, n, width, acc + q * width);
    // The rest as one block too (decode: the 2-5 query heads of a KV head).
    const float* pq = p + q * ldp;
    float* aq = acc + q * width;
    switch (QB > 2 ? nq - q : nq > q) {
      case 0: break;
      case 1: weighted_rows_block<RT, 1>(pq, ldp, rows, n, width, aq); break;
      case 2: weighted_rows_block<RT, 2>(pq, ldp, rows, n, width, aq); break;
      case 3: weighted_rows_block<RT, 3>(pq, ldp, rows, n, width, aq); break;
      case 4: weighted_rows_block<RT, 4>(pq, ldp, rows, n, width, aq); break;
      default: weighted_rows_block<RT, 5>(pq, ldp, rows, n, width, aq); break;
    }
  }
  static void weighted_rows(const float* p, int64_t ldp, int64_t nq, const float* rows, int64_t n, int64_t width,
                            float* acc) {
    weighted_rows_t<DType::F32>(p, ldp, nq, rows, n, width, acc);
  }
  static void weighted_rows_f16(const float* p, int64_t ldp, int64_t nq, const uint16_t* rows, int64_t n,
                                int64_t width, float* acc) {
    weighted_rows_t<DType::F16>(p, ldp, nq, rows, n, width, acc);
  }

  static void silu(const float* x, float* y, int64_t n) {
    const V one = S::bcast(1.f);
    for (int64_t i = 0; i < n; i += W) {
      const int c = rest(n, i);
      const V v = S::load(x + i, c);
      // exp saturates at e^88 for v < -88: v / (1 + e^88) is within 1e-36 of the true ~0.
      S::store(y + i, S::div(v, S::add(one, exp(S::sub(S::zero(), v)))), c);
    }
  }

  static void add(const float* a, const float* b, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i += W) S::store(y + i, S::add(S::load(a + i, rest(n, i)), S::load(b + i, rest(n, i))), rest(n, i));
  }
  static void mul(const float* a, const float* b, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i += W) S::store(y + i, S::mul(S::load(a + i, rest(n, i)), S::load(b + i, rest(n, i))), rest(n, i));
  }

  static void rms_norm(const float* x, const float* w, bool add_one, float eps, float* y, int64_t n) {
    const float inv = 1.0f / std::sqrt(dot(x, x, n) / float(n) + eps);
    const V vi = S::bcast(inv), one = S::bcast(add_one ? 1.f : 0.f);
    for (int64_t i = 0; i < n; i += W) {
      const int c = rest(n, i);
      V v = S::mul(S::load(x + i, c), vi);
      if (w) v = S::mul(v, S::add(one, S::load(w + i, c)));
      S::store(y + i, v, c);
    }
  }

  static void f16_to_f32(const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i += W) S::store(y + i, S::template widen<DType::F16>(x + i, rest(n, i)), rest(n, i));
  }
  static void bf16_to_f32(const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i += W) S::store(y + i, S::template widen<DType::BF16>(x + i, rest(n, i)), rest(n, i));
  }
  static void i8_to_f32(const int8_t* x, float scale, float* y, int64_t n) {
    const V vs = S::bcast(scale);
    for (int64_t i = 0; i < n; i += W)
      S::store(y + i, S::mul(vs, S::template widen<DType::I8>(x + i, rest(n, i))), rest(n, i));
  }
  static void f32_to_f16(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; i += W) S::store_f16(y + i, S::load(x + i, rest(n, i)), rest(n, i));
  }

  static constexpr VecOps table() {
    return VecOps{dot,      max, axpy, scale,      exp_shift,  weighted_rows, weighted_rows_f16, silu,      add,
                  mul,      rms_norm, f16_to_f32, bf16_to_f32, i8_to_f32, f32_to_f16};
  }
};

}  // namespace elm::cpu
