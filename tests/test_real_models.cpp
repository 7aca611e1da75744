// Real checkpoints: ref-28m (sharded bf16 Llama, 49k vocabulary) against transformers' float32 logits
// and per-token NLL, and stories260k's greedy decoding against its float64 reference.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

TEST(RealModels, Ref28mLogitsNllAndArgmax) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.safetensors");
  auto model = Model::load(shared("models/ref-28m"));
  SafetensorsFile ref = SafetensorsFile::open(shared("models/ref-28m/reference.safetensors"));
  const TensorView& ids_t = ref.tensors().at("input_ids");
  const auto* ip = static_cast<const int32_t*>(ids_t.data);
  std::vector<int32_t> ids(ip, ip + ids_t.numel());
  ASSERT_EQ(ids.size(), 512u);
  const std::vector<float> ref_logits = to_f32(ref.tensors().at("logits"));  // [32, V]
  const std::vector<float> ref_nll = to_f32(ref.tensors().at("nll"));        // [511]
  const TensorView& am = ref.tensors().at("argmax");
  std::vector<float> ref_argmax = to_f32(am);

  SessionOptions o;
  o.runtime.n_ctx = 512;
  o.runtime.max_batch = 512;
  Session s(model, o);
  const std::vector<float> logits = s.feed_all(0, ids);
  const size_t V = size_t(s.vocab());
  ASSERT_EQ(V, 49152u);
  EXPECT_LT(rel_max_err(logits.data(), ref_logits.data(), ref_logits.size()), 1e-4);

  double sum_nll = 0, max_nll_err = 0;
  int argmax_mismatch = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    const float* row = logits.data() + t * V;
    double mx = -INFINITY;
    size_t best = 0;
    for (size_t v = 0; v < V; ++v)
      if (row[v] > mx) mx = row[v], best = v;
    double z = 0;
    for (size_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
    const double nll = -(double(row[size_t(ids[t + 1])]) - mx - std::log(z));
    sum_nll += nll;
    max_nll_err = std::max(max_nll_err, std::fabs(nll - ref_nll[t]));
    argmax_mismatch += int(best) != int(ref_argmax[t]);
  }
  const double ppl = std::exp(sum_nll / double(ids.size() - 1));
  EXPECT_NEAR(ppl, 83.38, 83.38 * 1e-3);
  EXPECT_LT(max_nll_err, 1e-3);
  EXPECT_EQ(argmax_mismatch, 0);
  RecordProperty("perplexity", std::to_string(ppl));
}

TEST(RealModels, Stories260kGreedyFromBos) {
  ELM_REQUIRE_SHARED("models/stories260k/reference_greedy.json");
  std::ifstream f(shared("models/stories260k/reference_greedy.json"));
  nlohmann::json ref = nlohmann::json::parse(f);
  auto model = Model::load(shared("models/stories260k/hf"));
  Session s(model, {});
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.max_tokens = int(ref["greedy_ids"].size());
  g.stop_at_eos = false;
  GenerateResult r = generate(s, 0, ref["prompt_ids"].get<std::vector<int32_t>>(), g);
  EXPECT_EQ(r.tokens, ref["greedy_ids"].get<std::vector<int32_t>>());
}
