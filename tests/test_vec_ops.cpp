// The vector math of every ISA (vec_ops.h) against plain loops in double precision, for lengths that
// cover full vectors and every tail.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/vec_ops.h"
#include "core/half.h"

using namespace elm;
using namespace elm::cpu;

namespace {

std::vector<float> rnd(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

const int64_t kLengths[] = {0, 1, 3, 8, 15, 16, 17, 31, 64, 100};

class Vec : public testing::TestWithParam<Isa> {
 protected:
  const VecOps& ops() const { return vec_ops(GetParam()); }
};

}  // namespace

TEST_P(Vec, DotMaxAxpyScale) {
  for (int64_t n : kLengths) {
    SCOPED_TRACE(n);
    std::vector<float> a = rnd(size_t(n), 1), b = rnd(size_t(n), 2), y = rnd(size_t(n), 3);
    double dot = 0, mag = 0;
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
      dot += double(a[size_t(i)]) * b[size_t(i)];
      mag += std::fabs(double(a[size_t(i)]) * b[size_t(i)]);
      mx = std::max(mx, a[size_t(i)]);
    }
    EXPECT_NEAR(ops().dot(a.data(), b.data(), n), dot, 1e-6 * mag + 1e-30);
    EXPECT_EQ(ops().max(a.data(), n), mx);
    std::vector<float> y2 = y;
    ops().axpy(0.75f, a.data(), y2.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y2[size_t(i)], y[size_t(i)] + 0.75 * a[size_t(i)], 1e-6);
    y2 = y;
    ops().scale(-3.f, y2.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y2[size_t(i)], -3.f * y[size_t(i)]);
  }
}

TEST_P(Vec, ExpShiftIsAccurateAndZeroesMaskedScores) {
  for (int64_t n : kLengths) {
    SCOPED_TRACE(n);
    std::vector<float> x = rnd(size_t(n), 4, 20.f);
    if (n > 2) x[1] = -INFINITY;  // a masked score
    const float m = n ? *std::max_element(x.begin(), x.end()) : 0.f;
    std::vector<float> e = x;
    const float s = ops().exp_shift(e.data(), n, m);
    double want_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float d = x[size_t(i)] - m;  // the kernel's argument, rounded to float like this
      const double want = std::exp(double(d));
      if (d < -87) {
        EXPECT_EQ(e[size_t(i)], 0.f) << i;
        continue;
      }
      want_sum += want;
      EXPECT_NEAR(e[size_t(i)], want, 3e-7 * want) << "x - m = " << x[size_t(i)] - m;
    }
    EXPECT_NEAR(s, want_sum, 1e-6 * want_sum + 1e-30);
  }
}

// Blocks of queries: nq covers whole register blocks (2 or 6 queries) and remainders; each query's
// probabilities sit ldp apart, and its row of acc is added to, not overwritten.
TEST_P(Vec, WeightedRows) {
  for (int64_t width : {1, 7, 16, 64, 80, 130})
    for (int64_t nq : {1, 2, 3, 7, 13}) {
      const int64_t n = 9, ldp = 11;
      std::vector<float> p = rnd(size_t(nq * ldp), 5), rows = rnd(size_t(n * width), 6), acc = rnd(size_t(nq * width), 7);
      std::vector<float> got = acc;
      ops().weighted_rows(p.data(), ldp, nq, rows.data(), n, width, got.data());
      for (int64_t q = 0; q < nq; ++q)
        for (int64_t c = 0; c < width; ++c) {
          double want = acc[size_t(q * width + c)];
          for (int64_t j = 0; j < n; ++j) want += double(p[size_t(q * ldp + j)]) * rows[size_t(j * width + c)];
          EXPECT_NEAR(got[size_t(q * width + c)], want, 1e-5) << "width " << width << " query " << q << " col " << c;
        }
    }
}

TEST_P(Vec, WeightedRowsOfHalves) {
  for (int64_t width : {1, 7, 16, 64, 80, 130})
    for (int64_t nq : {1, 2, 3, 7, 13}) {
      const int64_t n = 9, ldp = 11;
      std::vector<float> p = rnd(size_t(nq * ldp), 5), rows = rnd(size_t(n * width), 6), acc = rnd(size_t(nq * width), 7);
      std::vector<uint16_t> halves(rows.size());
      for (size_t i = 0; i < rows.size(); ++i) halves[i] = f32_to_f16(rows[i]);
      std::vector<float> got = acc;
      ops().weighted_rows_f16(p.data(), ldp, nq, halves.data(), n, width, got.data());
      for (int64_t q = 0; q < nq; ++q)
        for (int64_t c = 0; c < width; ++c) {
          double want = acc[size_t(q * width + c)];
          for (int64_t j = 0; j < n; ++j)
            want += double(p[size_t(q * ldp + j)]) * f16_to_f32(halves[size_t(j * width + c)]);
          EXPECT_NEAR(got[size_t(q * width + c)], want, 1e-5) << "width " << width << " query " << q << " col " << c;
        }
    }
}

TEST_P(Vec, ActivationsNormAndElementwise) {
  for (int64_t n : kLengths) {
    SCOPED_TRACE(n);
    std::vector<float> x = rnd(size_t(n), 8, 4.f), w = rnd(size_t(n), 9), y(static_cast<size_t>(n));
    if (n > 3) x[2] = -120.f, x[3] = 95.f;  // beyond exp's range both ways
    ops().silu(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double v = x[size_t(i)], want = v / (1 + std::exp(-v));
      EXPECT_NEAR(y[size_t(i)], want, 1e-6 * std::fabs(want) + 1e-30) << v;
    }
    ops().add(x.data(), w.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[size_t(i)], x[size_t(i)] + w[size_t(i)]);
    ops().mul(x.data(), w.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[size_t(i)], x[size_t(i)] * w[size_t(i)]);
    if (n == 0) continue;
    for (int variant = 0; variant < 3; ++variant) {
      const float* wp = variant == 0 ? nullptr : w.data();
      const bool add_one = variant == 2;
      ops().rms_norm(x.data(), wp, add_one, 1e-5f, y.data(), n);
      double ss = 0;
      for (float v : x) ss += double(v) * v;
      const double inv = 1 / std::sqrt(ss / double(n) + 1e-5);
      for (int64_t i = 0; i < n; ++i) {
        const double scale = wp ? (add_one ? 1 + w[size_t(i)] : w[size_t(i)]) : 1;
        EXPECT_NEAR(y[size_t(i)], x[size_t(i)] * inv * scale, 2e-6 * (1 + std::fabs(x[size_t(i)] * inv * scale)));
      }
    }
  }
}

TEST_P(Vec, Conversions) {
  for (int64_t n : kLengths) {
    SCOPED_TRACE(n);
    std::vector<float> x = rnd(size_t(n), 10, 100.f), y(static_cast<size_t>(n));
    if (n > 2) x[0] = 1e6f, x[1] = 3e-6f;  // overflow to inf, a subnormal half
    std::vector<uint16_t> h(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    ops().f32_to_f16(x.data(), h.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(h[size_t(i)], f32_to_f16(x[size_t(i)])) << x[size_t(i)];
    ops().f16_to_f32(h.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[size_t(i)], f16_to_f32(h[size_t(i)]));
    for (int64_t i = 0; i < n; ++i) b[size_t(i)] = f32_to_bf16(x[size_t(i)]);
    ops().bf16_to_f32(b.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[size_t(i)], bf16_to_f32(b[size_t(i)]));
    std::vector<int8_t> q(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) q[size_t(i)] = int8_t(int(i * 37) % 255 - 127);
    ops().i8_to_f32(q.data(), 0.5f, y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[size_t(i)], 0.5f * q[size_t(i)]);
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, Vec, testing::ValuesIn(available_isas()),
                         [](const testing::TestParamInfo<Isa>& i) { return std::string(isa_name(i.param)); });
