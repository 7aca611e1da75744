// The hybrid families split across backends: a backend that runs everything except the recurrent,
// stream and attention ops leaves those to the CPU fallback, so the graph alternates between
// segments and recurrent state lives in many CPU segments. Logits must still match transformers, and
// a refused truncation must change no segment.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "core/error.h"
#include "fixture_check.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

// The CPU backend under another name, declining some ops.
class PartialCpu : public Backend {
 public:
  explicit PartialCpu(const RuntimeConfig& c) : cpu_(make_backend("cpu", c)) {}
  std::string name() const override { return "partial-cpu"; }
  bool supports(const Graph& g, const WeightStore&, int32_t node) const override {
    switch (g.nodes[size_t(node)].op) {
      case Op::CausalConv1d:
      case Op::GatedDeltaRule:
      case Op::StreamMix:
      case Op::RmsRescale:
      case Op::GaussianTopK:
      case Op::SliceGroups:
      case Op::Attention: return false;
      default: return true;
    }
  }
  std::unique_ptr<Segment> prepare(const SegmentSpec& spec) override { return cpu_->prepare(spec); }

 private:
  std::unique_ptr<Backend> cpu_;
};

SessionOptions partial_options() {
  register_backend("partial-cpu", [](const RuntimeConfig& c) { return std::make_unique<PartialCpu>(c); });
  SessionOptions o;
  o.backends = {"partial-cpu"};
  return o;
}

}  // namespace

class PartitionedFixture : public testing::TestWithParam<std::string> {};

TEST_P(PartitionedFixture, MatchesTransformersAcrossSegments) {
  const std::string rel = "fixtures/tiny/" + GetParam();
  ELM_REQUIRE_SHARED(rel);
  auto model = Model::load(shared(rel));
  const SessionOptions o = partial_options();
  {
    Session s(model, o);
    EXPECT_GT(s.executor().plan().segments.size(), size_t(6)) << s.executor().plan_summary();
  }
  const FixtureErrors e = fixture_errors(model, load_fixture_ref(shared(rel)), o);
  EXPECT_LT(e.prefill, 1e-4) << "prefill";
  EXPECT_LT(e.stepwise, 1e-4) << "stepwise";
}

INSTANTIATE_TEST_SUITE_P(HybridFamilies, PartitionedFixture, testing::Values("gemma3n", "gemma4", "qwen3_5"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(PartitionedFixture, RefusedTruncationChangesNoSegment) {
  ELM_REQUIRE_SHARED("fixtures/tiny/qwen3_5");
  auto model = Model::load(shared("fixtures/tiny/qwen3_5"));
  const FixtureRef ref = load_fixture_ref(shared("fixtures/tiny/qwen3_5"));
  Session s(model, partial_options());
  const std::span<const int32_t> ids(ref.ids);
  s.feed_all(0, ids.first(20));
  EXPECT_THROW(s.truncate(0, 15), Error);
  std::vector<float> more = s.feed_all(0, ids.subspan(20, 6));
  const size_t V = size_t(ref.vocab);
  EXPECT_LT(rel_max_err(more.data(), ref.logits.data() + 20 * V, 6 * V), 1e-4);
}
