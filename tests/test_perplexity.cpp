// Perplexity and KL divergence (src/runtime/perplexity.h) against transformers' own per-token NLL of
// ref-28m, and the properties KLD must have.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "format/safetensors.h"
#include "quant/quantize.h"
#include "runtime/perplexity.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

SessionOptions options(int ctx) {
  SessionOptions o;
  o.runtime.n_ctx = ctx;
  o.runtime.max_batch = ctx;
  o.runtime.threads = 2;
  return o;
}

std::vector<int32_t> heldout_tokens(const Model& m, size_t bytes) {
  std::string text = read_text_file(shared("text/heldout.txt"));
  text.resize(std::min(text.size(), bytes));
  return m.tokenizer->encode(text, true);
}

}  // namespace

// One chunk of ref-28m's 512 reference tokens: the second half's NLL is transformers' (reference.safetensors
// nll[t] = -log p(token t+1 | tokens 0..t), computed in float32 by transformers).
TEST(Perplexity, SecondHalfOfAChunkMatchesTransformersNll) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.safetensors");
  auto model = Model::load(shared("models/ref-28m"));
  SafetensorsFile ref = SafetensorsFile::open(shared("models/ref-28m/reference.safetensors"));
  const TensorView& ids_t = ref.tensors().at("input_ids");
  const auto* ip = static_cast<const int32_t*>(ids_t.data);
  const std::vector<int32_t> ids(ip, ip + ids_t.numel());
  const std::vector<float> nll = to_f32(ref.tensors().at("nll"));  // [511]
  double sum = 0;
  for (size_t t = 256; t < 511; ++t) sum += nll[t];
  const double expect = std::exp(sum / 255);

  Session s(model, options(512));
  PerplexityOptions o;
  o.ctx = 512;
  const PerplexityResult r = perplexity(s, ids, o);
  EXPECT_EQ(r.chunks, 1);
  EXPECT_EQ(r.tokens_scored, 255);
  EXPECT_NEAR(r.ppl, expect, expect * 1e-4);
  EXPECT_FALSE(r.has_base);
}

TEST(Perplexity, KldOfAModelAgainstItselfIsZeroAndQuantizationOrdersIt) {
  ELM_REQUIRE_SHARED("models/ref-28m");
  ELM_REQUIRE_SHARED("text/heldout.txt");
  auto f32 = Model::load(shared("models/ref-28m"));
  const std::vector<int32_t> tokens = heldout_tokens(*f32, 8000);
  PerplexityOptions o;
  o.ctx = 128;
  o.chunks = 3;
  Session base(f32, options(128)), same(f32, options(128));
  const PerplexityResult self = perplexity(same, tokens, o, &base);
  EXPECT_TRUE(self.has_base);
  EXPECT_EQ(self.tokens_scored, 3 * 63);
  EXPECT_LT(self.kld_mean, 1e-9);
  EXPECT_EQ(self.top1_agree, 1.0);
  EXPECT_DOUBLE_EQ(self.ppl, self.ppl_base);

  double kld[2];
  int i = 0;
  for (const char* q : {"int8", "int4-g128"}) {
    auto m = Model::load(shared("models/ref-28m"));
    quantize_weights(*m, QuantPolicy::parse(q));
    Session s(m, options(128));
    const PerplexityResult r = perplexity(s, tokens, o, &base);
    EXPECT_GT(r.kld_mean, 0) << q;
    EXPECT_LT(r.top1_agree, 1.0 + 1e-12) << q;
    EXPECT_NEAR(r.ppl_base, self.ppl_base, 1e-9 * self.ppl_base) << q;
    kld[i++] = r.kld_mean;
  }
  EXPECT_LT(kld[0], kld[1]) << "int8 must stay closer to the float model than 4 bits in groups of 128";
}

TEST(Perplexity, BadInputsAreClearErrors) {
  ELM_REQUIRE_SHARED("models/ref-28m");
  ELM_REQUIRE_SHARED("models/stories260k/hf");
  auto m = Model::load(shared("models/ref-28m"));
  auto other = Model::load(shared("models/stories260k/hf"));
  Session s(m, options(64)), so(other, options(64));
  PerplexityOptions o;
  o.ctx = 64;
  const std::vector<int32_t> few(40, 5), enough(200, 5);
  EXPECT_THROW(perplexity(s, few, o), Error);               // shorter than one chunk
  EXPECT_THROW(perplexity(s, enough, o, &so), Error);       // different vocabularies
  o.ctx = 128;
  EXPECT_THROW(perplexity(s, enough, o), Error);            // more than the session's context
}
