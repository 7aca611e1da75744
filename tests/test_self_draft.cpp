// Self-drafting: sub-models carved out of a model's graph (fewer layers, FFN neuron prefixes) against
// an independent reference, the same family built by its builder with those layers and with the
// dropped neurons' weights zeroed; slicing of plain and quantized tensors against their dequantized
// sources; greedy speculation with a self-draft equal to plain decoding.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "core/error.h"
#include "elm_test_util.h"
#include "format/convert.h"
#include "graph/builders/family.h"
#include "quant/quantize.h"
#include "runtime/draft_model.h"
#include "runtime/self_draft.h"
#include "runtime/speculative.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

SessionOptions small_session() {
  SessionOptions o;
  o.runtime.n_ctx = 96;
  o.runtime.max_batch = 16;
  o.runtime.threads = 1;
  return o;
}

std::vector<int32_t> some_tokens(size_t n, int vocab) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) t.push_back(int32_t((i * 131 + 17) % size_t(vocab)));
  return t;
}

}  // namespace

TEST(SubModel, EqualsTheFamilyBuiltWithThoseLayersAndZeroedNeurons) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const std::string dir = shared("fixtures/tiny/llama");
  auto target = Model::load(dir);  // 3 layers, FFN width 128
  SubModelSpec spec;
  spec.layers = {0, 2};
  spec.ffn_fraction = 0.5;
  auto draft = make_self_draft(*target, spec);

  // Reference: a 2-layer llama whose layer 1 is the target's layer 2, FFN neurons >= 64 zeroed (gate
  // and up rows, down columns): the neurons a narrowed FFN drops, which then contribute exactly 0.
  const int64_t m = 64, inter = 128;
  WeightStore ref_weights;
  for (const auto& [name, view] : target->weights.all()) {
    if (name.rfind("model.layers.", 0) != 0) {
      if (name.rfind("rope.", 0) != 0) ref_weights.add(name, view);  // the builder adds its own tables
      continue;
    }
    const int64_t l = std::stoll(name.substr(13));
    if (l == 1) continue;
    const std::string rest = name.substr(name.find('.', 13));
    const std::string ref_name = "model.layers." + std::to_string(l == 2 ? 1 : 0) + rest;
    const bool gate_up = rest == ".mlp.gate_proj.weight" || rest == ".mlp.up_proj.weight";
    const bool down = rest == ".mlp.down_proj.weight";
    if (!gate_up && !down) {
      ref_weights.add(ref_name, view);
      continue;
    }
    std::vector<float> w = to_f32(view);
    const int64_t C = view.cols();
    for (int64_t r = 0; r < view.rows(); ++r)
      for (int64_t c = 0; c < C; ++c)
        if ((gate_up && r >= m) || (down && c >= m)) w[size_t(r * C + c)] = 0;
    ASSERT_EQ(gate_up ? view.rows() : C, inter);
    ref_weights.add_owned(ref_name, view.shape, std::move(w));
  }
  nlohmann::json config = HfConfig::from_file(dir + "/config.json").json();
  config["num_hidden_layers"] = 2;
  auto ref = std::make_shared<Model>();
  ref->weights = std::move(ref_weights);
  ref->graph = build_from_hf(HfConfig(config), ref->weights);
  ref->info = target->info;

  const std::vector<int32_t> ids = some_tokens(20, 512);
  Session a(draft, small_session()), b(ref, small_session());
  const std::vector<float> got = a.feed_all(0, ids), want = b.feed_all(0, ids);
  EXPECT_LT(rel_max_err(got.data(), want.data(), want.size()), 1e-6);
  // And the sub-model really is smaller: 2 of 3 layers, half the FFN.
  EXPECT_LT(draft->graph.nodes.size(), target->graph.nodes.size());
  EXPECT_EQ(draft->graph.states.size(), 2u);

  // All layers, all neurons: the target itself.
  auto same = make_self_draft(*target, SubModelSpec{});
  Session c(same, small_session()), d(target, small_session());
  const std::vector<float> x = c.feed_all(0, ids), y = d.feed_all(0, ids);
  EXPECT_EQ(x, y);
}

TEST(SubModel, ExplainsWhatItCannotCarve) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  ELM_REQUIRE_SHARED("fixtures/tiny/phi3");
  auto llama = Model::load(shared("fixtures/tiny/llama"));
  auto phi3 = Model::load(shared("fixtures/tiny/phi3"));
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { make_self_draft(*llama, SubModelSpec::parse("layers=0,7")); }).find("layer 7 does not exist (the model has layers 0-2)"),
            std::string::npos);
  // Phi-3 fuses gate and up into one projection: layers can be skipped, FFNs not narrowed.
  EXPECT_NE(message([&] { make_self_draft(*phi3, SubModelSpec::parse("ffn=0.5")); }).find("no 'gate' projection"),
            std::string::npos);
  EXPECT_NO_THROW(make_self_draft(*phi3, SubModelSpec::parse("layers=0-1")));
  // Gemma 3n's layers 4 and 5 attend over the KV caches of layers 3 and 2.
  if (have_shared("fixtures/tiny/gemma3n")) {
    auto gemma3n = Model::load(shared("fixtures/tiny/gemma3n"));
    EXPECT_NE(message([&] { make_self_draft(*gemma3n, SubModelSpec::parse("layers=0,1,4,5")); })
                  .find("shares the KV cache of a skipped layer"),
              std::string::npos);
  }
  for (const char* bad : {"layers=a", "layers=3-1", "ffn=0", "ffn=1.5", "ffn=x", "depth=2", "layers"})
    EXPECT_THROW(SubModelSpec::parse(bad), Error) << bad;
  const SubModelSpec s = SubModelSpec::parse("layers=0-2,5;ffn=0.25");
  EXPECT_EQ(s.layers, (std::vector<int64_t>{0, 1, 2, 5}));
  EXPECT_DOUBLE_EQ(s.ffn_fraction, 0.25);
}

// A narrowed output layer scores the first `vocab` token ids exactly as the whole model does, whatever
// sits between the product and the logits (gemma3's soft-cap) and whether the weight is the embedding
// table too (tied: ids past the prefix still embed); the reference is the unsliced model.
TEST(SubModel, NarrowedVocabularyScoresTheFirstTokensAsTheWholeModel) {
  for (const char* fixture : {"llama", "gemma3", "mistral"}) {  // mistral: an untied lm_head
    const std::string rel = std::string("fixtures/tiny/") + fixture;
    SCOPED_TRACE(rel);
    ELM_REQUIRE_SHARED(rel);
    auto target = Model::load(shared(rel));
    const int64_t V = target->graph.nodes[size_t(target->graph.output)].cols, N = 96;
    auto narrow = make_self_draft(*target, SubModelSpec::parse("vocab=96"));
    ASSERT_EQ(narrow->graph.nodes[size_t(narrow->graph.output)].cols, N);
    // Every weight of the narrowed graph is read (an untied head's whole matrix is not kept).
    const Graph& ng = narrow->graph;
    for (size_t i = 0; i < ng.nodes.size(); ++i) {
      if (ng.nodes[i].op != Op::Weight) continue;
      bool read = false;
      for (const Node& n : ng.nodes) read = read || std::count(n.inputs.begin(), n.inputs.end(), int32_t(i)) > 0;
      EXPECT_TRUE(read) << ng.nodes[i].name << " is not read";
    }
    std::vector<int32_t> ids = some_tokens(16, int(V));
    ids.push_back(int32_t(V - 1));  // a token past the prefix is still read
    Session a(narrow, small_session()), b(target, small_session());
    const std::vector<float> got = a.feed_all(0, ids), all = b.feed_all(0, ids);
    for (size_t t = 0; t < ids.size(); ++t)
      for (int64_t c = 0; c < N; ++c)
        ASSERT_NEAR(got[t * size_t(N) + size_t(c)], all[t * size_t(V) + size_t(c)], 1e-5) << t << "," << c;
    // With fewer layers too; and a prefix as wide as the vocabulary is the whole layer.
    EXPECT_NO_THROW(make_self_draft(*target, SubModelSpec::parse("layers=0;vocab=64")));
    auto whole = make_self_draft(*target, SubModelSpec::parse("vocab=" + std::to_string(V)));
    EXPECT_EQ(whole->graph.nodes[size_t(whole->graph.output)].cols, V);
  }
  const SubModelSpec s = SubModelSpec::parse("layers=0-1;vocab=16384");
  EXPECT_EQ(s.vocab, 16384);
  EXPECT_EQ(SubModelSpec::parse(s.to_string()).vocab, 16384);
  for (const char* bad : {"vocab=0", "vocab=-3", "vocab=1k", "vocab="}) EXPECT_THROW(SubModelSpec::parse(bad), Error) << bad;
}

TEST(SubModel, SlicesQuantizedTensorsAsTheirDequantizedPrefix) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  const int64_t R = 6, C = 128;
  std::vector<float> x(size_t(R * C));
  for (float& v : x) v = nd(rng);
  for (DType t : {DType::Q8, DType::Q4, DType::Q4M, DType::BF16, DType::F32}) {
    TensorView src;
    std::vector<uint8_t> data = quantize_matrix(x.data(), R, C, {t, is_quantized(t) ? 32 : 0, DType::F16}, &src);
    src.data = data.data();
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{4, 64}, {6, 128}, {2, 32}}) {
      std::vector<uint8_t> bytes;
      const TensorView s = slice_tensor(src, rows, cols, bytes);
      ASSERT_EQ(s.shape, (Shape{rows, cols}));
      std::vector<float> want(static_cast<size_t>(C)), got(static_cast<size_t>(cols));
      for (int64_t r = 0; r < rows; ++r) {
        dequantize_row(src, r, want.data());
        dequantize_row(s, r, got.data());
        for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(got[size_t(c)], want[size_t(c)]) << dtype_name(t) << " " << r << "," << c;
      }
    }
    std::vector<uint8_t> bytes;
    if (is_quantized(t)) {
      EXPECT_THROW(slice_tensor(src, 2, 48, bytes), Error);  // not a whole group
    }
  }
}

TEST(SelfDraft, GreedySpeculationEqualsPlainDecoding) {
  // gemma3n: AltUp streams, Laurel, per-layer inputs, KV sharing by the last two layers (dropped here,
  // with their sources kept), activation sparsity (GaussianTopK) in narrowed FFNs; and gemma3n
  // skipping an AltUp layer. gemma3: sliding windows, sandwich norms. qwen3_5: recurrent layers (with
  // snapshots to roll back). llama quantized to int8 (sliced quantization groups), and with a draft
  // that scores only the first 64 of 512 token ids (it never proposes the others).
  struct Case {
    const char* fixture;
    const char* spec;
  };
  for (const Case& c : {Case{"gemma3n", "layers=0-3;ffn=0.5"}, Case{"gemma3n", "layers=0,2,3"},
                        Case{"gemma3", "layers=0-1;ffn=0.5"}, Case{"qwen3_5", "layers=0-2;ffn=0.5"},
                        Case{"llama", "layers=0-1;ffn=0.5"}, Case{"llama", "layers=0-1;vocab=64"}}) {
    const std::string fixture = c.fixture, rel = "fixtures/tiny/" + fixture;
    SCOPED_TRACE(fixture + " " + c.spec);
    ELM_REQUIRE_SHARED(rel);
    std::shared_ptr<Model> target = Model::load(shared(rel));
    if (fixture == "llama") quantize_weights(*target, QuantPolicy::parse("int8"));
    auto draft = make_self_draft(*target, SubModelSpec::parse(c.spec));
    SessionOptions so = small_session();
    so.runtime.recurrent_snapshots = 4;
    GenerateOptions g;
    g.max_tokens = 40;
    g.sampling.temperature = 0;
    g.stop_at_eos = false;
    const std::vector<int32_t> prompt = some_tokens(12, 512);
    Session plain(target, so), s(target, so);
    const GenerateResult want = generate(plain, 0, prompt, g);
    auto draft_session = std::make_shared<Session>(draft, so);
    Speculator spec(std::make_unique<DraftModel>(draft_session, 0, *target, 3), {3, false});
    const GenerateResult got = spec.generate(s, 0, prompt, g);
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_EQ(s.n_past(0), plain.n_past(0));
    EXPECT_GT(spec.stats().drafted, 0);
    EXPECT_LT(draft->graph.nodes.size(), target->graph.nodes.size());
  }
}

// `elm convert --self-draft`: the sub-model sliced into the .elm file (gemma3n, 4-bit, so quantized
// groups are sliced) gives the same logits as the one carved at run time from the same file converted
// without it, `--self-draft stored` (or its spec) picks it, and greedy speculation with it equals plain
// decoding. A file without one says so.
TEST(SelfDraft, StoredInTheElmFileEqualsTheOneCarvedAtRunTime) {
  ELM_REQUIRE_SHARED("fixtures/tiny/gemma3n");
  const std::string src = shared("fixtures/tiny/gemma3n"), spec_text = "layers=0-3;ffn=0.5";
  ConvertOptions o;
  o.quant = "int4";
  const std::string plain_path = temp_dir() + "/gemma3n-int4.elm", with_path = temp_dir() + "/gemma3n-int4-draft.elm";
  convert_to_elm(src, plain_path, o);
  o.self_draft = spec_text;
  convert_to_elm(src, with_path, o);

  std::shared_ptr<Model> target = Model::load(with_path), plain = Model::load(plain_path);
  ASSERT_TRUE(target->self_draft.has_value());
  EXPECT_EQ(target->self_draft->spec, SubModelSpec::parse(spec_text).to_string());
  EXPECT_FALSE(plain->self_draft.has_value());
  auto stored = self_draft_for(*target, "stored");
  auto carved = make_self_draft(*plain, SubModelSpec::parse(spec_text));
  EXPECT_EQ(self_draft_for(*target, spec_text)->graph.nodes.size(), stored->graph.nodes.size());
  const std::vector<int32_t> ids = some_tokens(20, 512);
  EXPECT_EQ(model_logits(stored, ids), model_logits(carved, ids));
  EXPECT_THROW(self_draft_for(*plain, "stored"), Error);

  SessionOptions so = small_session();
  GenerateOptions g;
  g.max_tokens = 30;
  g.sampling.temperature = 0;
  g.stop_at_eos = false;
  Session p(target, so), s(target, so);
  const GenerateResult want = generate(p, 0, ids, g);
  Speculator spec(std::make_unique<DraftModel>(std::make_shared<Session>(stored, so), 0, *target, 3), {3, false});
  EXPECT_EQ(spec.generate(s, 0, ids, g).tokens, want.tokens);
  EXPECT_GT(spec.stats().accepted, 0);
}
