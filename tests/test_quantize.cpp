// Quantization round trips: every format's reconstruction error stays inside the bound its rounding
// rule implies (half a step, from scales recomputed here), and the policy assigns formats by role.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "quant/quantize.h"
#include "op_harness.h"
#include "runtime/model.h"
#include "util.h"

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
            if (dt == DType::Q4 || dt == DType::Q4M) {
              // 4-bit groups search their step (Q4M: and minimum) for the least squared error: never
              // worse than the plain rules, computed here with the same scale rounding: llama.cpp's
              // Q4_0 (the largest magnitude maps to -8) and min/max onto 0..15 (Q4_1).
              float signed_max = 0;
              for (int j = 0; j < group; ++j)
                if (std::fabs(xg[j]) == amax) signed_max = xg[j];
              const float d0 = dt == DType::Q4 ? sr(signed_max / -8.f) : sr((hi - lo) / 15), m0 = dt == DType::Q4 ? 0 : sr(lo);
              double sse = 0, sse_plain = 0;
              for (int j = 0; j < group; ++j) {
                const float q = dt == DType::Q4 ? std::clamp(std::nearbyint(xg[j] / d0), -8.f, 7.f)
                                                : std::clamp(std::nearbyint((xg[j] - m0) / d0), 0.f, 15.f);
                sse_plain += std::pow(double(xg[j]) - (m0 + d0 * q), 2);
                sse += std::pow(double(y[size_t(r * cols + g * group + j)]) - xg[j], 2);
              }
              ASSERT_LE(sse, sse_plain * 1.01 + 1e-9) << dtype_name(dt) << " g" << group << " row " << r << " group " << g;
              continue;
            }
            // Q8: half a step.
            const double bound = sr(amax / 127) / 2;
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

// The mixed policies: 4-bit feed-forward, 8-bit attention, 8-bit embedding/output in larger groups
// (int4m-mix, the convert default, fits the size of llama.cpp's Q4_K_M on ref-28m; docs/quantization.md).
TEST(Quantize, MixedPolicyGivesEachRoleItsFormat) {
  const QuantPolicy p = QuantPolicy::parse("int4-mix");
  EXPECT_EQ(p.spec_for(WeightRole::FeedForward, {128, 64}).type, DType::Q4);
  EXPECT_EQ(p.spec_for(WeightRole::Attention, {128, 64}).type, DType::Q8);
  EXPECT_EQ(p.spec_for(WeightRole::Attention, {128, 64}).group, 32);
  const QuantSpec e = p.spec_for(WeightRole::Embedding, {512, 128});
  EXPECT_EQ(e.type, DType::Q8);
  EXPECT_EQ(e.group, 64);
  EXPECT_EQ(p.spec_for(WeightRole::Output, {512, 128}).group, 64);
  const QuantPolicy m = QuantPolicy::parse(kDefaultQuant);
  EXPECT_EQ(m.spec_for(WeightRole::FeedForward, {128, 64}).type, DType::Q4M);
  EXPECT_EQ(m.spec_for(WeightRole::Attention, {128, 64}).type, DType::Q8);
  EXPECT_EQ(m.spec_for(WeightRole::Output, {512, 256}).group, 128);
  // A row of 64 columns (narrow test models) that 128 does not divide: 8-bit groups of 32.
  EXPECT_EQ(m.spec_for(WeightRole::Embedding, {512, 64}).type, DType::Q8);
  EXPECT_EQ(m.spec_for(WeightRole::Embedding, {512, 64}).group, 32);
}

// The default's per-layer choices: 4-bit query / key projections, 8-bit down projections in half the
// layers spread from the first to the last.
TEST(Quantize, DefaultPolicyWidensDownProjectionsOfHalfTheLayers) {
  const QuantPolicy m = QuantPolicy::parse(kDefaultQuant);
  EXPECT_EQ(m.spec_for(WeightRole::AttentionQK, {128, 64}).type, DType::Q4M);
  EXPECT_EQ(m.spec_for(WeightRole::Attention, {128, 64}).type, DType::Q8);
  auto wide = [&](int layers) {
    std::vector<int> out;
    for (int l = 0; l < layers; ++l)
      if (m.spec_for(WeightRole::FeedForwardDown, {64, 128}, l, layers).type == DType::Q8) out.push_back(l);
    return out;
  };
  EXPECT_EQ(wide(1), std::vector<int>({0}));
  EXPECT_EQ(wide(2), std::vector<int>({0}));
  EXPECT_EQ(wide(6), std::vector<int>({0, 3, 5}));
  EXPECT_EQ(wide(7), std::vector<int>({0, 2, 4, 6}));
  const std::vector<int> w32 = wide(32);
  EXPECT_EQ(w32.size(), 16u);
  EXPECT_EQ(w32.front(), 0);
  EXPECT_EQ(w32.back(), 31);
  // Unknown layer: the base format. Other policies keep every down projection at the base format.
  EXPECT_EQ(m.spec_for(WeightRole::FeedForwardDown, {64, 128}).type, DType::Q4M);
  EXPECT_EQ(QuantPolicy::parse("int4-mix").spec_for(WeightRole::FeedForwardDown, {64, 128}, 0, 6).type, DType::Q4);
  EXPECT_EQ(QuantPolicy::parse("int4-mix").spec_for(WeightRole::AttentionQK, {64, 128}).type, DType::Q8);
}

TEST(Quantize, WeightsArePlacedByRoleAndLayer) {
  EXPECT_EQ(weight_layer("model.layers.12.mlp.down_proj.weight"), 12);
  EXPECT_EQ(weight_layer("model.embed_tokens.weight"), -1);
  EXPECT_EQ(weight_layer("model.sublayers.3.weight"), -1);
  ELM_REQUIRE_SHARED("models/ref-28m");
  const auto model = Model::load(test::shared("models/ref-28m"));
  const Graph& g = model->graph;
  EXPECT_EQ(layer_count(g), 6);
  EXPECT_EQ(weight_role(g, "model.layers.2.self_attn.q_proj.weight"), WeightRole::AttentionQK);
  EXPECT_EQ(weight_role(g, "model.layers.2.self_attn.k_proj.weight"), WeightRole::AttentionQK);
  EXPECT_EQ(weight_role(g, "model.layers.2.self_attn.v_proj.weight"), WeightRole::Attention);
  EXPECT_EQ(weight_role(g, "model.layers.2.self_attn.o_proj.weight"), WeightRole::Attention);
  EXPECT_EQ(weight_role(g, "model.layers.2.mlp.down_proj.weight"), WeightRole::FeedForwardDown);
  EXPECT_EQ(weight_role(g, "model.layers.2.mlp.up_proj.weight"), WeightRole::FeedForward);
  EXPECT_EQ(weight_role(g, "model.embed_tokens.weight"), WeightRole::Output);  // tied
  EXPECT_EQ(weight_role(g, "model.norm.weight"), WeightRole::Small);
}

// quantize_weights on several threads gives the very bytes of the sequential pass, tensor by tensor, under
// the default policy (its formats depend on each weight's role and layer).
TEST(Quantize, ParallelQuantizationEqualsSequential) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const std::string dir = test::shared("fixtures/tiny/llama");
  const auto one = Model::load(dir), many = Model::load(dir);
  const QuantPolicy policy = QuantPolicy::parse(kDefaultQuant);
  const size_t bytes = quantize_weights(*one, policy, nullptr, 1);
  EXPECT_EQ(quantize_weights(*many, policy, nullptr, 4), bytes);
  size_t n = 0;
  for (const auto& [name, a] : one->weights.all()) {
    const TensorView& b = many->weights.get(name);
    ASSERT_EQ(a.dtype, b.dtype) << name;
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
    n += is_quantized(a.dtype);
  }
  EXPECT_GT(n, 0u);
}
