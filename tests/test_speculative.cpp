// Speculative decoding, greedy: the output must be token for token what decoding without a draft
// gives. References: transformers' greedy continuations of ref-28m (reference.json) and the float64
// llama2.c-math continuation of stories260k, with ref-draft-14m, prompt lookup and a model drafting for
// itself as draft sources; plain generate() for the sequence state left behind. Also: cache rollback
// (truncate + re-feed equals a fresh prefix, sliding windows included), the n-gram lookup rule, the
// draft-length policy, vocabulary checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "format/safetensors.h"
#include "quant/quantize.h"
#include "runtime/draft_length.h"
#include "runtime/draft_model.h"
#include "runtime/prompt_lookup.h"
#include "runtime/speculative.h"
#include "fixture_check.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

GenerateOptions greedy(int max_tokens) {
  GenerateOptions g;
  g.max_tokens = max_tokens;
  g.sampling.temperature = 0;
  g.stop_at_eos = false;
  return g;
}

SessionOptions session_options(int n_ctx = 256, int max_batch = 16) {
  SessionOptions o;
  o.runtime.n_ctx = n_ctx;
  o.runtime.max_batch = max_batch;
  return o;
}

Speculator with_draft(std::shared_ptr<const Model> target, std::shared_ptr<const Model> draft, const SessionOptions& so,
                      int k, bool adaptive) {
  auto draft_session = std::make_shared<Session>(std::move(draft), so);
  return Speculator(std::make_unique<DraftModel>(draft_session, 0, *target, 1234), {k, adaptive});
}

Speculator with_lookup(int n, int k, bool adaptive) { return Speculator(std::make_unique<PromptLookup>(n), {k, adaptive}); }

}  // namespace

TEST(Speculative, DraftModelGreedyEqualsTransformersGreedy) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.json");
  ELM_REQUIRE_SHARED("models/ref-draft-14m");
  auto target = Model::load(shared("models/ref-28m"));
  auto draft = Model::load(shared("models/ref-draft-14m"));
  const auto refs = ref28m_greedy();
  // A fixed length drafts every round; the adaptive policy (which on the reference CPU kernels mostly
  // decodes plainly, probing now and then) must not change the output either.
  for (bool adaptive : {false, true}) {
    GreedyRef ref = refs[adaptive ? 2 : 0];
    if (adaptive) ref.ids.resize(20);
    Session s(target, session_options());
    Speculator spec = with_draft(target, draft, session_options(), 3, adaptive);
    const GenerateResult r = spec.generate(s, 0, ref.prompt, greedy(int(ref.ids.size())));
    EXPECT_EQ(r.tokens, ref.ids) << "adaptive " << adaptive;
    EXPECT_EQ(s.n_past(0), int32_t(ref.prompt.size() + ref.ids.size()));
    const SpeculativeStats& st = spec.stats();
    EXPECT_GT(st.drafted, 0);
    EXPECT_EQ(st.generated + 1, int64_t(ref.ids.size()));  // the first token comes from the prompt's logits
    if (!adaptive) {
      EXPECT_LT(st.rounds, int64_t(ref.ids.size()) - 1) << "no draft token was ever accepted";
    }
  }
}

// Quantized models on two threads: the CPU computes every row of a verification pass (up to 16
// tokens) bit for bit as a one-token step does (attention on fixed tiles and splits, the same product
// kernels), so greedy speculation equals plain decoding. Before, int8 activations amplified a last-bit
// difference of the attention into another argmax 30 tokens into this continuation of held-out text.
TEST(Speculative, QuantizedGreedyEqualsPlainDecodingOnHeldOutText) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.safetensors");
  ELM_REQUIRE_SHARED("models/ref-draft-14m");
  SafetensorsFile ref = SafetensorsFile::open(shared("models/ref-28m/reference.safetensors"));
  const auto* ip = static_cast<const int32_t*>(ref.tensors().at("input_ids").data);
  const std::vector<int32_t> prompt(ip, ip + 64);
  for (const char* quant : {"int4-g32", "int8"}) {
    SCOPED_TRACE(quant);
    std::shared_ptr<Model> target = Model::load(shared("models/ref-28m"));
    std::shared_ptr<Model> draft = Model::load(shared("models/ref-draft-14m"));
    quantize_weights(*target, QuantPolicy::parse(quant));
    quantize_weights(*draft, QuantPolicy::parse(quant));
    SessionOptions so = session_options(512, 64);
    so.runtime.threads = 2;
    Session plain(target, so), s(target, so);
    const GenerateResult want = generate(plain, 0, prompt, greedy(128));
    Speculator spec = with_draft(target, draft, so, 3, false);
    const GenerateResult got = spec.generate(s, 0, prompt, greedy(128));
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_GT(spec.stats().accepted, 0);
  }
}

TEST(Speculative, PromptLookupGreedyEqualsTransformersGreedy) {
  ELM_REQUIRE_SHARED("models/ref-28m/reference.json");
  auto target = Model::load(shared("models/ref-28m"));
  // The first and last continuations repeat themselves ("...with the same authority. The United
  // States has been able to do with the same authority..."), which is what lookup predicts.
  const auto refs = ref28m_greedy();
  for (size_t i : {size_t(0), refs.size() - 1}) {
    const GreedyRef& ref = refs[i];
    Session s(target, session_options());
    Speculator spec = with_lookup(3, 4, false);
    const GenerateResult r = spec.generate(s, 0, ref.prompt, greedy(int(ref.ids.size())));
    EXPECT_EQ(r.tokens, ref.ids);
    EXPECT_GT(spec.stats().accepted, 4);
    EXPECT_EQ(s.n_past(0), int32_t(ref.prompt.size() + ref.ids.size()));
  }
}

TEST(Speculative, SelfDraftAcceptsEverythingAndKeepsTheReference) {
  // A model drafting for itself is always right under greedy decoding: every round accepts all k
  // drafts and adds the bonus token from the last row of the verification pass.
  ELM_REQUIRE_SHARED("models/stories260k/reference_greedy.json");
  std::ifstream f(shared("models/stories260k/reference_greedy.json"));
  const nlohmann::json ref = nlohmann::json::parse(f);
  const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const auto want = ref["greedy_ids"].get<std::vector<int32_t>>();
  auto model = Model::load(shared("models/stories260k/hf"));
  for (int k : {1, 4, 7}) {
    Session s(model, session_options());
    Speculator spec = with_draft(model, model, session_options(), k, false);
    const GenerateResult r = spec.generate(s, 0, prompt, greedy(int(want.size())));
    EXPECT_EQ(r.tokens, want) << "k " << k;
    const SpeculativeStats& st = spec.stats();
    EXPECT_EQ(st.accepted, st.drafted) << "k " << k;
    // ceil((n - 1) / (k + 1)) rounds: every round but possibly the last makes k + 1 tokens.
    EXPECT_EQ(st.rounds, (int64_t(want.size()) - 1 + k) / (k + 1)) << "k " << k;
  }
}

TEST(Speculative, LeavesTheSequenceAsPlainDecodingDoes) {
  // Stop by length, by EOS, by a full context, then a second turn on the same sequence: tokens,
  // reason and the number of positions the sequence holds afterwards all match generate().
  ELM_REQUIRE_SHARED("models/stories260k/hf");
  std::shared_ptr<Model> model = Model::load(shared("models/stories260k/hf"));
  const std::vector<int32_t> prompt = {1, 403, 407, 261}, turn2 = {286, 261, 376};
  struct Case {
    const char* name;
    int n_ctx, max_tokens;
    int32_t eos;
  };
  // Token 410 is the 18th token of the greedy continuation of `prompt` (reference_greedy.json).
  for (const Case& c : {Case{"length", 256, 40, -1}, Case{"eos", 256, 60, 410}, Case{"context", 40, 80, -1}}) {
    model->info.eos_token_ids = c.eos >= 0 ? std::vector<int32_t>{c.eos} : std::vector<int32_t>{};
    GenerateOptions g = greedy(c.max_tokens);
    g.stop_at_eos = c.eos >= 0;
    for (int source = 0; source < 2; ++source) {
      SCOPED_TRACE(std::string(c.name) + (source == 0 ? " draft" : " lookup"));
      const SessionOptions so = session_options(c.n_ctx, 8);
      Session plain(model, so), s(model, so);
      Speculator spec = source == 0 ? with_draft(model, model, so, 5, false) : with_lookup(2, 5, false);
      const GenerateResult want = generate(plain, 0, prompt, g);
      const GenerateResult got = spec.generate(s, 0, prompt, g);
      EXPECT_EQ(got.tokens, want.tokens);
      EXPECT_EQ(got.reason, want.reason);
      EXPECT_EQ(s.n_past(0), plain.n_past(0));
      if (c.eos >= 0) {
        EXPECT_EQ(want.tokens.size(), 17u);
      }
      if (c.n_ctx == 256) {  // room for a second turn
        const GenerateResult want2 = generate(plain, 0, turn2, greedy(20));
        const GenerateResult got2 = spec.generate(s, 0, turn2, greedy(20));
        EXPECT_EQ(got2.tokens, want2.tokens);
        EXPECT_EQ(s.n_past(0), plain.n_past(0));
      }
    }
  }
}

// Runs everything but attention (on a CPU backend underneath), so the graph splits into segments that
// alternate with the CPU fallback, which owns the KV caches: the shape of a GPU backend lacking an op.
class NoAttentionBackend : public Backend {
 public:
  explicit NoAttentionBackend(const RuntimeConfig& c) : cpu_(make_cpu_backend(c)) {}
  std::string name() const override { return "test-no-attention"; }
  bool supports(const Graph& g, const WeightStore&, int32_t node) const override {
    return g.nodes[size_t(node)].op != Op::Attention;
  }
  std::unique_ptr<Segment> prepare(const SegmentSpec& spec) override { return cpu_->prepare(spec); }

 private:
  std::unique_ptr<Backend> cpu_;
};

TEST(Speculative, WorksOnAnyBackendList) {
  ELM_REQUIRE_SHARED("models/stories260k/hf");
  register_backend("test-no-attention", [](const RuntimeConfig& c) { return std::make_unique<NoAttentionBackend>(c); });
  auto model = Model::load(shared("models/stories260k/hf"));
  SessionOptions split = session_options();
  split.backends = {"test-no-attention"};
  Session plain(model, session_options());
  const std::vector<int32_t> prompt = {1, 403, 407};
  const GenerateResult want = generate(plain, 0, prompt, greedy(30));
  for (int source = 0; source < 2; ++source) {
    Session s(model, split);
    ASSERT_GT(s.executor().plan().segments.size(), 5u);
    Speculator spec = source == 0 ? with_draft(model, model, split, 4, false) : with_lookup(2, 4, false);
    EXPECT_EQ(spec.generate(s, 0, prompt, greedy(30)).tokens, want.tokens) << (source == 0 ? "draft" : "lookup");
    EXPECT_GT(spec.stats().drafted, 0);
  }
}

TEST(Speculative, RoundsOfSeveralSequencesShareOnePass) {
  // The step API as a server would use it: two sequences (one drafting by lookup, one with a draft
  // model) verified in the same executor step, each then rolled back on its own.
  ELM_REQUIRE_SHARED("models/stories260k/hf");
  auto model = Model::load(shared("models/stories260k/hf"));
  const std::vector<std::vector<int32_t>> prompts = {{1, 403, 407, 261, 378}, {1, 286, 261}};
  const int n_tokens = 40;
  RuntimeConfig rc = session_options().runtime;
  rc.max_seqs = 2;
  Executor ex(model, rc);
  std::vector<Speculator> specs;
  specs.push_back(with_lookup(2, 4, false));
  specs.push_back(with_draft(model, model, session_options(), 3, false));
  std::vector<Sampler> samplers(2, Sampler(greedy(0).sampling));
  std::vector<int32_t> n_past(2), pending(2);
  std::vector<std::vector<int32_t>> out(2);
  for (int q = 0; q < 2; ++q) {
    Batch b;
    for (size_t i = 0; i < prompts[size_t(q)].size(); ++i)
      b.add(prompts[size_t(q)][i], int32_t(i), q, i + 1 == prompts[size_t(q)].size());
    const HostTensor& logits = ex.step(b);
    specs[size_t(q)].fed(prompts[size_t(q)]);
    n_past[size_t(q)] = int32_t(prompts[size_t(q)].size());
    pending[size_t(q)] = samplers[size_t(q)].sample(std::span<const float>(logits.row(0), size_t(logits.cols)));
    out[size_t(q)].push_back(pending[size_t(q)]);
  }
  while (out[0].size() < size_t(n_tokens) || out[1].size() < size_t(n_tokens)) {
    Batch b;
    std::vector<size_t> first_row(2), n_rows(2);
    for (int q = 0; q < 2; ++q) {
      const int limit = std::min(4, n_tokens - int(out[size_t(q)].size()) - 1);
      const std::vector<int32_t>& feed = specs[size_t(q)].draft(pending[size_t(q)], std::max(limit, 0), samplers[size_t(q)]);
      first_row[size_t(q)] = size_t(b.n_outputs());
      n_rows[size_t(q)] = feed.size();
      for (size_t j = 0; j < feed.size(); ++j) b.add(feed[j], n_past[size_t(q)] + int32_t(j), q, true);
    }
    const HostTensor& logits = ex.step(b);
    for (int q = 0; q < 2; ++q) {
      const auto rows = std::span<const float>(logits.row(int64_t(first_row[size_t(q)])), n_rows[size_t(q)] * size_t(logits.cols));
      const SpeculativeRound& r = specs[size_t(q)].verify(rows, samplers[size_t(q)]);
      n_past[size_t(q)] += r.keep;
      ex.seq_truncate(q, n_past[size_t(q)]);
      out[size_t(q)].insert(out[size_t(q)].end(), r.tokens.begin(), r.tokens.end());
      pending[size_t(q)] = r.tokens.back();
    }
  }
  for (int q = 0; q < 2; ++q) {
    Session plain(model, session_options());
    const GenerateResult want = generate(plain, 0, prompts[size_t(q)], greedy(n_tokens));
    out[size_t(q)].resize(size_t(n_tokens));
    EXPECT_EQ(out[size_t(q)], want.tokens) << "sequence " << q;
    EXPECT_GT(specs[size_t(q)].stats().drafted, 0) << "sequence " << q;
  }
}

TEST(Session, SeveralSequencesReadInSharedStepsAsTransformersDoes) {
  // feed_seqs (drafting for several server slots at once): three sequences read the fixture's ids in
  // chunks of 1, 2 and 5 tokens, all in the same steps of at most 4 tokens (so parts split across
  // steps); the logits after each part are transformers' at that position.
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  auto model = Model::load(shared("fixtures/tiny/llama"));
  const FixtureRef ref = load_fixture_ref(shared("fixtures/tiny/llama"));
  SessionOptions so = session_options(96, 4);
  so.runtime.max_seqs = 3;
  Session s(model, so), greedy_s(model, so);
  float ref_max = 0;
  for (float v : ref.logits) ref_max = std::max(ref_max, std::abs(v));
  const size_t N = ref.ids.size();
  const size_t chunk[3] = {1, 2, 5};
  size_t pos[3] = {0, 0, 0};
  int steps = 0;
  while (pos[0] < N || pos[1] < N || pos[2] < N) {
    std::vector<SeqTokens> parts;
    std::vector<size_t> last;  // the position of each part's last token
    for (int q = 0; q < 3; ++q) {
      if (pos[q] >= N) continue;
      const size_t n = std::min(chunk[q], N - pos[q]);
      parts.push_back({q, std::span<const int32_t>(ref.ids).subspan(pos[q], n)});
      pos[q] += n;
      last.push_back(pos[q] - 1);
    }
    int64_t width = 0;
    const std::vector<float> rows = s.feed_seqs(parts, &width);
    const std::vector<int32_t> ids = greedy_s.feed_seqs_argmax(parts);
    ASSERT_EQ(width, ref.vocab);
    ASSERT_EQ(rows.size(), parts.size() * size_t(width));
    ASSERT_EQ(ids.size(), parts.size());
    for (size_t j = 0; j < parts.size(); ++j) {
      const float* want = ref.logits.data() + last[j] * size_t(ref.vocab);
      float err = 0;
      for (int64_t v = 0; v < width; ++v) err = std::max(err, std::abs(rows[j * size_t(width) + size_t(v)] - want[v]));
      EXPECT_LE(err, 1e-4f * ref_max) << "sequence " << parts[j].seq << ", position " << last[j];
      EXPECT_EQ(ids[j], argmax(std::span<const float>(want, size_t(ref.vocab)))) << "position " << last[j];
    }
    ++steps;
  }
  EXPECT_EQ(steps, int(N));  // one call per token of the slowest reader
  for (int q = 0; q < 3; ++q) EXPECT_EQ(s.n_past(q), int32_t(N));
  const int32_t one[1] = {ref.ids[0]};
  const SeqTokens twice[2] = {{0, one}, {0, one}};
  EXPECT_THROW(s.feed_seqs(twice), Error);  // a sequence once per call: its positions would collide
}

TEST(Speculative, DraftModelsOnOneSessionProposeTogetherAsEachAlone) {
  // The server's slots draft together (DraftModel::propose_together): three draft models on one
  // session, with histories of different lengths, one of them sampling, propose in shared passes what
  // each proposes on a session of its own, over rounds that accept part of the drafts (rollback) and
  // all of them (the next history holds a draft the draft model has not read).
  ELM_REQUIRE_SHARED("models/stories260k/hf");
  auto model = Model::load(shared("models/stories260k/hf"));
  SessionOptions so = session_options(256, 16);
  std::vector<std::vector<int32_t>> histories = {{1, 403, 407, 261, 378}, {1, 286, 261}, {1, 403, 286, 261, 378, 403, 407}};
  std::vector<Sampler> samplers(3, Sampler(greedy(0).sampling));
  GenerateOptions sampled = greedy(0);
  sampled.sampling.temperature = 0.8f;
  samplers[2] = Sampler(sampled.sampling);
  const int ks[2][3] = {{4, 2, 3}, {3, 5, 2}};

  SessionOptions shared_so = so;
  shared_so.runtime.max_seqs = 3;
  auto together_session = std::make_shared<Session>(model, shared_so);
  std::vector<std::unique_ptr<DraftModel>> together, alone;
  for (int q = 0; q < 3; ++q) {
    together.push_back(std::make_unique<DraftModel>(together_session, q, *model, 77 + q));
    alone.push_back(std::make_unique<DraftModel>(std::make_shared<Session>(model, so), 0, *model, 77 + q));
  }
  std::vector<std::vector<int32_t>> h = histories;
  for (int round = 0; round < 2; ++round) {
    std::vector<Draft> a(3), b(3);
    std::vector<DraftSource*> sources;
    std::vector<DraftRequest> requests;
    for (int q = 0; q < 3; ++q) {
      sources.push_back(together[size_t(q)].get());
      requests.push_back({h[size_t(q)], ks[round][q], &samplers[size_t(q)], &b[size_t(q)]});
      alone[size_t(q)]->propose(h[size_t(q)], ks[round][q], samplers[size_t(q)], a[size_t(q)]);
    }
    sources[0]->propose_together(sources, requests);
    for (int q = 0; q < 3; ++q) {
      EXPECT_EQ(b[size_t(q)].tokens, a[size_t(q)].tokens) << "round " << round << ", sequence " << q;
      ASSERT_EQ(b[size_t(q)].size(), size_t(ks[round][q]));
      for (size_t i = 0; i < b[size_t(q)].size(); ++i)
        EXPECT_EQ(b[size_t(q)].q[i], a[size_t(q)].q[i]) << "round " << round << ", sequence " << q;
    }
    // Sequence 0 keeps one draft and a token of its own, 1 keeps all and the bonus token, 2 none.
    h[0].push_back(b[0].tokens[0]), h[0].push_back(9);
    h[1].insert(h[1].end(), b[1].tokens.begin(), b[1].tokens.end()), h[1].push_back(261);
    h[2].push_back(286);
  }
}

TEST(Speculative, SourcesWithOneBatchKeyProposeInOneCall) {
  // Speculator::draft_planned groups sources by batch key: keyed ones in one propose_together call,
  // unkeyed ones (prompt lookup) alone, speculators that planned no draft not at all.
  struct Keyed : DraftSource {
    const void* key;
    std::vector<size_t>* calls;
    int32_t token;
    Keyed(const void* k, std::vector<size_t>* c, int32_t t) : key(k), calls(c), token(t) {}
    std::string name() const override { return "keyed"; }
    const void* batch_key() const override { return key; }
    void propose(std::span<const int32_t>, int n, const Sampler&, Draft& out) override {
      calls->push_back(1);
      out.clear();
      for (int i = 0; i < n; ++i) out.tokens.push_back(token), out.q.emplace_back();
    }
    void propose_together(std::span<DraftSource* const> sources, std::span<const DraftRequest> requests) override {
      calls->push_back(sources.size());
      for (size_t i = 0; i < sources.size(); ++i) {
        Draft& out = *requests[i].out;
        out.clear();
        for (int j = 0; j < requests[i].max_tokens; ++j)
          out.tokens.push_back(static_cast<Keyed*>(sources[i])->token), out.q.emplace_back();
      }
    }
  };
  std::vector<size_t> calls_a, calls_none;
  int key_a = 0;
  std::vector<Speculator> specs;
  specs.emplace_back(std::make_unique<Keyed>(&key_a, &calls_a, 10), SpeculativeOptions{3, false});
  specs.emplace_back(std::make_unique<Keyed>(nullptr, &calls_none, 20), SpeculativeOptions{3, false});
  specs.emplace_back(std::make_unique<Keyed>(&key_a, &calls_a, 30), SpeculativeOptions{3, false});
  specs.emplace_back(std::make_unique<Keyed>(&key_a, &calls_a, 40), SpeculativeOptions{3, false});
  specs.emplace_back(std::make_unique<Keyed>(nullptr, &calls_none, 50), SpeculativeOptions{3, false});
  const int limits[5] = {2, 3, 1, 0, 3};
  std::vector<Speculator*> ptrs;
  const Sampler sampler(greedy(0).sampling);
  std::vector<const Sampler*> samplers(5, &sampler);
  for (size_t i = 0; i < specs.size(); ++i) {
    specs[i].fed(std::vector<int32_t>{1, 2});
    EXPECT_EQ(specs[i].plan(7, limits[i]), limits[i]);
    ptrs.push_back(&specs[i]);
  }
  Speculator::draft_planned(ptrs, samplers);
  EXPECT_EQ(calls_a, std::vector<size_t>({2}));        // 10 and 30 together; 40 planned none
  EXPECT_EQ(calls_none, std::vector<size_t>({1, 1}));  // each alone
  EXPECT_EQ(specs[0].feed(), std::vector<int32_t>({7, 10, 10}));
  EXPECT_EQ(specs[1].feed(), std::vector<int32_t>({7, 20, 20, 20}));
  EXPECT_EQ(specs[2].feed(), std::vector<int32_t>({7, 30}));
  EXPECT_EQ(specs[3].feed(), std::vector<int32_t>({7}));
  EXPECT_EQ(specs[4].feed(), std::vector<int32_t>({7, 50, 50, 50}));
}

TEST(Speculative, RecurrentModelsDraftOnlyAsFarAsTheirSnapshotsReach) {
  // Qwen3.5's recurrent layers roll back only through snapshots of the last tokens of a step
  // (RuntimeConfig::recurrent_snapshots): drafts are capped so that every rollback stays in reach.
  ELM_REQUIRE_SHARED("fixtures/tiny/qwen3_5");
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  auto model = Model::load(shared("fixtures/tiny/qwen3_5"));
  RuntimeConfig rc;
  rc.max_batch = 16;
  EXPECT_EQ(max_draft_tokens(*model, rc), 0);  // no snapshots: decode plainly
  rc.recurrent_snapshots = 3;
  EXPECT_EQ(max_draft_tokens(*model, rc), 2);
  EXPECT_EQ(max_draft_tokens(*Model::load(shared("fixtures/tiny/llama")), rc), 15);

  const std::vector<int32_t> prompt = {5, 9, 300, 17, 5, 9, 300, 17, 5, 9};
  for (int snapshots : {0, 3}) {
    SessionOptions so = session_options(96, 16);
    so.runtime.recurrent_snapshots = snapshots;
    Session plain(model, so), s(model, so);
    const GenerateResult want = generate(plain, 0, prompt, greedy(30));
    auto draft = Model::load(shared("fixtures/tiny/qwen3_5"));
    Speculator spec = with_draft(model, draft, so, 6, false);
    EXPECT_EQ(spec.generate(s, 0, prompt, greedy(30)).tokens, want.tokens) << snapshots;
    EXPECT_EQ(s.n_past(0), plain.n_past(0));
    const SpeculativeStats& st = spec.stats();
    EXPECT_LE(st.drafted, st.rounds * std::max(snapshots - 1, 0)) << snapshots;
    if (snapshots) {
      EXPECT_GT(st.accepted, 0);  // the model drafting for itself
    }
  }
}

TEST(Speculative, RollbackThenRefeedEqualsAFreshPrefix) {
  // truncate() must forget rolled-back positions exactly, also in sliding-window ring caches (gemma3:
  // window 16, ring of window + max_batch slots) when the rollback reaches max_batch + 1 positions, the
  // most speculation ever rolls back.
  for (const char* fixture : {"llama", "gemma3"}) {
    const std::string rel = std::string("fixtures/tiny/") + fixture;
    ELM_REQUIRE_SHARED(rel);
    auto model = Model::load(shared(rel));
    const int max_batch = 4;
    std::vector<int32_t> prefix, junk, cont;
    for (int i = 0; i < 22; ++i) prefix.push_back((i * 37 + 11) % 512);
    for (int i = 0; i < max_batch + 1; ++i) junk.push_back((i * 101 + 7) % 512);
    for (int i = 0; i < 12; ++i) cont.push_back((i * 53 + 29) % 512);

    Session rolled(model, session_options(64, max_batch)), fresh(model, session_options(64, max_batch));
    rolled.feed(0, prefix);
    for (int32_t t : junk) rolled.feed(0, std::span<const int32_t>(&t, 1));  // as a draft model would
    rolled.truncate(0, int32_t(prefix.size()));
    fresh.feed(0, prefix);
    const std::vector<float> a = rolled.feed_all(0, cont), b = fresh.feed_all(0, cont);
    EXPECT_LT(rel_max_err(a.data(), b.data(), b.size()), 1e-6) << fixture;
    // Rolling back a batched pass (as the target does) and re-reading part of it.
    rolled.truncate(0, int32_t(prefix.size() + 3));
    fresh.truncate(0, int32_t(prefix.size() + 3));
    const std::vector<float> c = rolled.feed_all(0, junk), d = fresh.feed_all(0, junk);
    EXPECT_LT(rel_max_err(c.data(), d.data(), d.size()), 1e-6) << fixture;
  }
}

TEST(Speculative, RejectsADraftWithAnotherVocabulary) {
  ELM_REQUIRE_SHARED("models/ref-28m");
  ELM_REQUIRE_SHARED("models/stories260k/hf");
  auto target = Model::load(shared("models/ref-28m"));
  auto draft = Model::load(shared("models/stories260k/hf"));
  try {
    check_draft_compatible(*target, *draft);
    FAIL() << "a 512-token draft was accepted for a 49152-token target";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary has 512 tokens, the target's 49152"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(check_draft_compatible(*target, *Model::load(shared("models/ref-draft-14m"))));
}

TEST(PromptLookup, ProposesWhatFollowedTheLatestLongestMatch) {
  PromptLookup lookup(3);
  Sampler sampler(SamplerConfig{});
  Draft d;
  // Suffix [7 8 9] occurred at 1 (followed by 1 2) and at 6 (followed by 4 5 6): the latest wins.
  const std::vector<int32_t> h = {0, 7, 8, 9, 1, 2, 7, 8, 9, 4, 5, 6, 3, 7, 8, 9};
  lookup.propose(h, 2, sampler, d);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(d.q.size(), 2u);
  EXPECT_TRUE(d.q[0].empty());  // deterministic proposals
  lookup.propose(h, 10, sampler, d);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{4, 5, 6, 3, 7, 8, 9}));  // up to the end of the history
  // Only a 1-gram matches: [.. 5 9] -> 9 was followed by 1 (at 3) and by 4 (at 8).
  const std::vector<int32_t> h2 = {0, 7, 8, 9, 1, 2, 7, 8, 9, 4, 5, 9};
  lookup.propose(h2, 3, sampler, d);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{4, 5, 9}));
  PromptLookup bigrams(3, 2);  // no 1-gram fallback
  bigrams.propose(h2, 3, sampler, d);
  EXPECT_TRUE(d.tokens.empty());
  lookup.propose(std::vector<int32_t>{1, 2, 3, 4}, 3, sampler, d);
  EXPECT_TRUE(d.tokens.empty());
}

TEST(DraftLength, FollowsAcceptanceAndCosts) {
  // GPU-like: a pass costs the same for 1 or 9 tokens, drafting is cheap, drafts are mostly right:
  // draft the most. CPU-reference-like: every verified token costs a full step: decode plainly, but
  // try a draft again every few rounds.
  DraftLength gpu(8);
  for (int i = 0; i < 3; ++i) {  // plain steps first: they measure what drafts must beat (2 warm up)
    EXPECT_EQ(gpu.next(), 0);
    gpu.record(0, 0, 0, 1, 10.0);
  }
  for (int i = 0; i < 30; ++i) {
    const int k = gpu.next();
    ASSERT_GE(k, 1);
    gpu.record(k, i % 10 == 9 ? k / 2 : k, 0.1 * k, k + 1, 10.0);  // one round in ten half-accepted
  }
  EXPECT_EQ(gpu.next(), 8);
  EXPECT_GT(gpu.acceptance(), 0.9);

  DraftLength cpu(8);
  for (int i = 0; i < 3; ++i) cpu.record(0, 0, 0, 1, 10.0);
  for (int i = 0; i < 3; ++i) cpu.record(4, 1, 20.0, 5, 50.0);  // 4 drafts at 5 ms each, 1 accepted; the pass cost 5 steps
  int plain = 0, probes = 0;
  for (int i = 0; i < 24; ++i) {
    const int k = cpu.next();
    (k == 0 ? plain : probes) += 1;
    cpu.record(k, k ? 1 : 0, 5.0 * k, k + 1, 10.0 * (k + 1));
  }
  EXPECT_GE(plain, 20);
  EXPECT_GE(probes, 2);
  EXPECT_NEAR(cpu.plain_step_ms(), 10.0, 0.5);

  DraftLength fixed(5, /*adaptive=*/false);
  fixed.record(5, 0, 50, 6, 60);
  EXPECT_EQ(fixed.next(), 5);
}

// Acceptance in runs: the first draft of a round is right half the time, every later one 90 % of the
// time once the earlier ones were. A pass costs 10 ms + 1 ms a token, a draft token 0.5 ms: by the
// positions' rates 6-8 drafts make the most tokens per second (7: 3.61 tokens in 21.5 ms). A single
// per-token rate fitted to these rounds (about 0.75) predicts too little from long drafts and settles
// near 4 (2.94 tokens in 17 ms by that rate; in truth 2.72).
TEST(DraftLength, LearnsAcceptanceThatComesInRuns) {
  DraftLength d(8);
  std::mt19937 rng(11);
  const auto accepted = [&](int k) {
    int n = 0;
    while (n < k && int(rng() % 1000) < (n == 0 ? 500 : 900)) ++n;
    return n;
  };
  std::vector<int> late;
  for (int i = 0; i < 400; ++i) {
    const int k = d.next();
    if (i >= 300) late.push_back(k);
    d.record(k, accepted(k), 0.5 * k, k + 1, 10.0 + 1.0 * (k + 1));
  }
  std::sort(late.begin(), late.end());
  EXPECT_GE(late[late.size() / 2], 6) << "median draft length of the last 100 rounds";
}

TEST(DraftLength, WarmUpPassesDoNotSkewTheChoice) {
  // The first passes of each width warm up (scratch buffers sized; on a GPU a graph run eagerly, then
  // captured) and the first drafting rounds too: they may take many times a steady pass. The lengths
  // chosen must be those of a run without slow warm-ups, not shorter drafts because wide passes looked
  // expensive.
  auto choices = [](bool slow_warmup) {
    DraftLength d(8);
    std::vector<int> ks, passes(10, 0);
    int drafting_rounds = 0;
    for (int i = 0; i < 40; ++i) {
      const int k = d.next();
      ks.push_back(k);
      double verify = 10.0 + 2.0 * (k + 1), draft = 1.0 * k;  // the best length grows with acceptance
      if (slow_warmup && passes[size_t(k + 1)]++ < 2) verify *= 10;
      if (slow_warmup && k > 0 && drafting_rounds++ < 2) draft *= 10;
      d.record(k, i % 4 == 3 ? k / 2 : k, draft, k + 1, verify);
    }
    return ks;
  };
  const std::vector<int> steady = choices(false);
  EXPECT_EQ(choices(true), steady);
  EXPECT_EQ(steady.back(), 8);
}
