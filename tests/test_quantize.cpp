// Quantization round trips: every format's reconstruction error stays inside the bound its rounding
// rule implies (half a step, from scales recomputed here), and the policy assigns formats by role.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "quant/quantize.h"
#include "op_harness.h"

using namespace elm;

namespace {
float f16_round(float x) { return f16_to_f32(f32_to_f16(x)); }
}  // namespace

TEST(Quantize, RoundTripErrorWithinHalfAStep) {
  const int64_t rows = 7, cols = 256;
  std::vector<float> x = test::random_vector(size_t(rows * cols), 99);
  x[5] = 40.f;  // an outlier in the first group
  for (DType dt : {DType::Q8, DType::Q4, DType::Q4M})
    for (int group : {32, 64, 128})
      for (DType st : {DType::F16, DType::F32}) {
        TensorView v;
        std::vector<uint8_t> bytes = quantize_matrix(x.data(), rows, cols, {dt, group, st}, &v);
        v.data = bytes.data();
        EXPECT_EQ(bytes.size(), tensor_nbytes(dt, {rows, cols}, group, st));
        std::vector<float> y = to_f32(v);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t g = 0; g < cols / group; ++g) {
            const float* xg = x.data() + r * cols + g * group;
            float amax = 0, lo = xg[0], hi = xg[0];
            for (int j = 0; j < group; ++j)
              amax = std::max(amax, std::fabs(xg[j])), lo = std::min(lo, xg[j]), hi = std::max(hi, xg[j]);
            auto sr = [&](float s) { return st == DType::F16 ? f16_round(s) : s; };
            if (dt == DType::Q4) {
              // Q4 searches its scale for the least squared error: never worse than llama.cpp's Q4_0
              // rule (the largest magnitude maps to -8), computed here with the same scale rounding.
              float signed_max = 0;
              for (int j = 0; j < group; ++j)
                if (std::fabs(xg[j]) == amax) signed_max = xg[j];
              const float d0 = sr(signed_max / -8.f);
              double sse = 0, sse_q4_0 = 0;
              for (int j = 0; j < group; ++j) {
                const float q = std::clamp(std::nearbyint(xg[j] / d0), -8.f, 7.f);
                sse_q4_0 += std::pow(double(xg[j]) - d0 * q, 2);
                sse += std::pow(double(y[size_t(r * cols + g * group + j)]) - xg[j], 2);
              }
              ASSERT_LE(sse, sse_q4_0 * 1.01 + 1e-9) << "Q4 g" << group << " row " << r << " group " << g;
              continue;
            }
            // Step size and worst-case error of each rule. Q4M's min is rounded to the scale type.
            double step = dt == DType::Q8 ? sr(amax / 127) : sr((hi - lo) / 15);
            double bound = step / 2;
            if (dt == DType::Q4M) bound += std::fabs(sr(lo) - lo);
            for (int j = 0; j < group; ++j) {
              const float got = y[size_t(r * cols + g * group + j)];
              ASSERT_LE(std::fabs(got - xg[j]), bound * 1.001 + 1e-7)
                  << dtype_name(dt) << " g" << group << " row " << r << " group " << g << " j " << j;
            }
          }
      }
}

TEST(Quantize, PlainTypesRoundTrip) {
  std::vector<float> x = test::random_vector(64, 5);
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    TensorView v;
    std::vector<uint8_t> bytes = quantize_matrix(x.data(), 2, 32, {dt, 0, DType::F16}, &v);
    v.data = bytes.data();
    std::vector<float> y = to_f32(v);
    for (size_t i = 0; i < x.size(); ++i) {
      const double rel = dt == DType::F32 ? 0 : dt == DType::F16 ? 1.0 / 2048 : 1.0 / 256;
      EXPECT_LE(std::fabs(y[i] - x[i]), rel * std::fabs(x[i]) + 1e-7);
    }
  }
}

TEST(Quantize, LayoutRejectsBadGroups) {
  EXPECT_THROW(quant_layout(DType::Q4, 4, 48, 32, DType::F16), Error);
  EXPECT_THROW(quant_layout(DType::Q4, 4, 64, 16, DType::F16), Error);
  EXPECT_THROW(quant_layout(DType::Q8, 4, 64, 32, DType::BF16), Error);
  EXPECT_THROW(QuantPolicy::parse("int3"), Error);
}

TEST(Quantize, PolicyKeepsSmallTensorsAndOverridesEmbeddings) {
  QuantPolicy p = QuantPolicy::parse("int4");
  EXPECT_EQ(p.spec_for(WeightRole::Small, {64}).type, DType::F32);
  EXPECT_EQ(p.spec_for(WeightRole::FeedForward, {128, 64}).type, DType::Q4);
  EXPECT_EQ(p.spec_for(WeightRole::Output, {512, 64}).type, DType::Q8);
  // Columns the group cannot divide fall back to a plain type.
  EXPECT_EQ(p.spec_for(WeightRole::FeedForward, {128, 172}).type, DType::F16);
  QuantPolicy g = QuantPolicy::parse("int4m-g128");
  EXPECT_EQ(g.base.type, DType::Q4M);
  EXPECT_EQ(g.base.group, 128);
}

// The convert default: 4-bit feed-forward, 8-bit attention, 8-bit embedding/output in groups of 64
// (a Q8 that fits the size of llama.cpp's Q4_K_M on ref-28m; docs/quantization.md).
TEST(Quantize, MixedPolicyGivesEachRoleItsFormat) {
  const QuantPolicy p = QuantPolicy::parse("int4-mix");
  EXPECT_EQ(p.spec_for(WeightRole::FeedForward, {128, 64}).type, DType::Q4);
  EXPECT_EQ(p.spec_for(WeightRole::Attention, {128, 64}).type, DType::Q8);
  EXPECT_EQ(p.spec_for(WeightRole::Attention, {128, 64}).group, 32);
  const QuantSpec e = p.spec_for(WeightRole::Embedding, {512, 128});
  EXPECT_EQ(e.type, DType::Q8);
  EXPECT_EQ(e.group, 64);
  EXPECT_EQ(p.spec_for(WeightRole::Output, {512, 128}).group, 64);
  EXPECT_EQ(QuantPolicy::parse("int4m-mix").spec_for(WeightRole::FeedForward, {128, 64}).type, DType::Q4M);
}
