// Gemma 3n, Gemma 4 and Qwen3.5 fixtures quantized in memory: logits of one 64-token prefill against
// the float32 engine (top-1 agreement, max relative error), printed for the report.
//
// The bounds are loose on purpose. These random-weight models amplify small perturbations far more
// than trained ones: a float64 re-implementation of the Gemma 4 fixture (independent of elm) moves
// its logits by 0.9% under 1e-4 relative noise on the embeddings, and by 21% when only the (tied)
// embedding is rounded to int8, the same figure elm shows. Their top-1 margins are also often tiny.
// So the checks guard against a broken quantized path (random agreement would be 1/512), and that
// int8 stays closer to float32 than int4.
#include <gtest/gtest.h>

#include <cstdio>

#include "fixture_check.h"
#include "quant/quantize.h"
#include "runtime/sampler.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

std::vector<float> prefill(std::shared_ptr<const Model> m, const std::vector<int32_t>& ids) {
  Session s(std::move(m), SessionOptions{});
  return s.feed_all(0, ids);
}

struct Agreement {
  double top1 = 0, rel_err = 0;
};

Agreement quantized_agreement(const std::string& family, const std::string& dir, const FixtureRef& ref,
                              const std::vector<float>& f32, const std::string& policy) {
  std::shared_ptr<Model> model = Model::load(dir);
  const size_t bytes = quantize_weights(*model, QuantPolicy::parse(policy));
  const std::vector<float> got = prefill(model, ref.ids);
  EXPECT_EQ(got.size(), f32.size());
  const size_t V = size_t(ref.vocab), T = ref.ids.size();
  size_t agree = 0;
  for (size_t t = 0; t < T; ++t) {
    const std::span<const float> a(got.data() + t * V, V), b(f32.data() + t * V, V);
    agree += argmax(a) == argmax(b);
  }
  Agreement a{double(agree) / double(T), rel_max_err(got.data(), f32.data(), std::min(got.size(), f32.size()))};
  std::printf("  %-8s %-5s weights %7zu bytes  top-1 agreement %.3f  max rel err vs f32 %.4f\n", family.c_str(),
              policy.c_str(), bytes, a.top1, a.rel_err);
  return a;
}

}  // namespace

class QuantizedFixture : public testing::TestWithParam<std::string> {};

TEST_P(QuantizedFixture, Int8AndInt4AgreeWithFloat32) {
  const std::string rel = "fixtures/tiny/" + GetParam();
  ELM_REQUIRE_SHARED(rel);
  const std::string dir = shared(rel);
  const FixtureRef ref = load_fixture_ref(dir);
  const std::vector<float> f32 = prefill(Model::load(dir), ref.ids);
  const Agreement q8 = quantized_agreement(GetParam(), dir, ref, f32, "int8");
  const Agreement q4 = quantized_agreement(GetParam(), dir, ref, f32, "int4");
  for (const auto& [name, a] : {std::pair{"int8", q8}, std::pair{"int4", q4}}) {
    RecordProperty(std::string(name) + "_top1_agreement", std::to_string(a.top1));
    RecordProperty(std::string(name) + "_max_rel_err", std::to_string(a.rel_err));
    EXPECT_GT(a.rel_err, 0) << name << ": were the weights quantized at all?";
  }
  EXPECT_GE(q8.top1, 0.65);
  EXPECT_LT(q8.rel_err, 1.0);
  EXPECT_GE(q4.top1, 0.15);
  EXPECT_LT(q4.rel_err, 2.0);
  EXPECT_LT(q8.rel_err, q4.rel_err);
  EXPECT_GE(q8.top1, q4.top1);
}

INSTANTIATE_TEST_SUITE_P(HybridFamilies, QuantizedFixture, testing::Values("gemma3n", "gemma4", "qwen3_5"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });
