// The tiny transformers fixtures: logits at every position within 1e-4 of the reference, in one prefill
// and token by token through the KV cache.
#include <gtest/gtest.h>

#include "fixture_check.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

class Fixture : public testing::TestWithParam<std::string> {};

TEST_P(Fixture, MatchesTransformersPrefillAndStepwise) {
  const std::string rel = "fixtures/tiny/" + GetParam();
  ELM_REQUIRE_SHARED(rel);
  const std::string dir = shared(rel);
  auto model = Model::load(dir);
  FixtureRef ref = load_fixture_ref(dir);
  FixtureErrors e = fixture_errors(model, ref);
  EXPECT_LT(e.prefill, 1e-4) << "prefill";
  EXPECT_LT(e.stepwise, 1e-4) << "stepwise";
  RecordProperty("prefill_rel_err", std::to_string(e.prefill));
  RecordProperty("stepwise_rel_err", std::to_string(e.stepwise));
}

INSTANTIATE_TEST_SUITE_P(CoreFamilies, Fixture,
                         testing::Values("llama", "llama3", "mistral", "qwen2", "qwen3", "phi3", "smollm3", "gemma3"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// Per-layer embeddings, AltUp, Laurel, activation sparsity, KV sharing (Gemma 3n); per-layer head
// geometry, proportional RoPE (Gemma 4); conv and delta-rule recurrent state (Qwen3.5).
INSTANTIATE_TEST_SUITE_P(HybridFamilies, Fixture, testing::Values("gemma3n", "gemma4", "qwen3_5"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });
