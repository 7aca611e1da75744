// GGUF vocabularies (Tokenizer::from_gguf) against llama.cpp's tokenizer test vectors
// (shared/tokenizers/llamacpp-vocab-tests: .inp holds the texts separated by
// "\n__ggml_vocab_test__\n", .out one line of space-separated ids per text, encoded without BOS),
// and stories260K.gguf against the Hugging Face tokenizer of the same model.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/mapped_file.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

namespace elm {
namespace {

struct Vector {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Vector> read_vectors(const std::string& base) {
  const std::string inp = read_text_file(base + ".inp"), out = read_text_file(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<Vector> v;
  for (size_t p = 0;;) {
    const size_t q = inp.find(sep, p);
    if (q == std::string::npos) break;
    v.push_back({inp.substr(p, q - p), {}});
    p = q + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  for (size_t k = 0; k < v.size() && std::getline(lines, line); ++k) {
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) v[k].ids.push_back(id);
  }
  return v;
}

// The GGUF metadata llama.cpp's converter writes for a byte-level HF tokenizer.json.
nlohmann::json gguf_meta_from_hf(const std::string& dir, const std::string& pre) {
  const auto j = nlohmann::json::parse(read_text_file(dir + "/tokenizer.json"));
  std::vector<std::string> tokens(j["model"]["vocab"].size());
  for (const auto& [piece, id] : j["model"]["vocab"].items()) tokens[id.get<size_t>()] = piece;
  std::vector<int> types(tokens.size(), 1);
  for (const auto& a : j["added_tokens"]) {
    const size_t id = a["id"].get<size_t>();
    if (id >= tokens.size()) tokens.resize(id + 1), types.resize(id + 1, 1);
    tokens[id] = a["content"].get<std::string>();
    types[id] = a["special"].get<bool>() ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const auto& m : j["model"]["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  return {{"tokenizer.ggml.model", "gpt2"}, {"tokenizer.ggml.pre", pre},     {"tokenizer.ggml.tokens", tokens},
          {"tokenizer.ggml.token_type", types}, {"tokenizer.ggml.merges", merges}};
}

struct VectorCase {
  const char* vectors;  // base name in llamacpp-vocab-tests
  const char* hf_dir;   // "" to use the GGUF next to the vectors
  const char* pre;
};

class LlamaCppVectors : public ::testing::TestWithParam<VectorCase> {};

TEST_P(LlamaCppVectors, Match) {
  const VectorCase c = GetParam();
  const std::string base = "tokenizers/llamacpp-vocab-tests/" + std::string(c.vectors);
  ELM_REQUIRE_SHARED(base + ".inp");
  std::shared_ptr<Tokenizer> tok;
  if (std::string(c.hf_dir).empty()) {
    tok = Tokenizer::from_gguf(GgufFile::open(test::shared(base)).meta);
  } else {
    ELM_REQUIRE_SHARED(c.hf_dir);
    tok = Tokenizer::from_gguf(gguf_meta_from_hf(test::shared(c.hf_dir), c.pre));
  }
  const auto vectors = read_vectors(test::shared(base));
  ASSERT_EQ(vectors.size(), 46u);
  int passed = 0;
  for (const Vector& v : vectors) {
    const auto got = tok->encode(v.text, false);
    EXPECT_EQ(got, v.ids) << c.vectors << " text: '" << v.text << "'";
    passed += got == v.ids;
  }
  std::printf("[ %s%s%s: %d / %zu vectors ]\n", c.vectors, *c.hf_dir ? " via " : "", c.hf_dir, passed, vectors.size());
}

INSTANTIATE_TEST_SUITE_P(
    All, LlamaCppVectors,
    ::testing::Values(VectorCase{"ggml-vocab-llama-spm.gguf", "", ""}, VectorCase{"ggml-vocab-gpt-2.gguf", "", ""},
                      VectorCase{"ggml-vocab-llama-bpe.gguf", "tokenizers/llama3", "llama-bpe"},
                      VectorCase{"ggml-vocab-qwen2.gguf", "tokenizers/qwen3", "qwen2"}));

// The same vectors through the HF tokenizer.json path.
TEST(LlamaCppVectors, HfTokenizerJson) {
  ELM_REQUIRE_SHARED("tokenizers/llamacpp-vocab-tests/ggml-vocab-qwen2.gguf.inp");
  for (const auto& [vec, dir] : {std::pair{"ggml-vocab-llama-bpe.gguf", "tokenizers/llama3"},
                                 std::pair{"ggml-vocab-qwen2.gguf", "tokenizers/qwen3"}}) {
    auto tok = Tokenizer::from_dir(test::shared(dir));
    for (const Vector& v : read_vectors(test::shared(std::string("tokenizers/llamacpp-vocab-tests/") + vec)))
      EXPECT_EQ(tok->encode(v.text, false), v.ids) << vec << " text: '" << v.text << "'";
  }
}

TEST(GgufTokenizer, Stories260kMatchesItsHfTokenizer) {
  ELM_REQUIRE_SHARED("models/stories260k/stories260K.gguf");
  ELM_REQUIRE_SHARED("fixtures/tokenizers/refs.json");
  auto tok = Tokenizer::from_gguf(GgufFile::open(test::shared("models/stories260k/stories260K.gguf")).meta);
  const auto refs = nlohmann::json::parse(read_text_file(test::shared("fixtures/tokenizers/refs.json")));
  const auto& enc = refs["tokenizers"]["stories260k"]["encodings"];
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  for (size_t i = 0; i < enc.size(); ++i) {
    const std::string text = refs["cases"][i].get<std::string>();
    EXPECT_EQ(tok->encode(text, false), enc[i]["ids"].get<std::vector<int32_t>>()) << "case " << i;
    EXPECT_EQ(tok->encode(text, true), enc[i]["ids_with_specials"].get<std::vector<int32_t>>()) << "case " << i;
    EXPECT_EQ(tok->decode(enc[i]["ids"].get<std::vector<int32_t>>()), enc[i]["decoded"].get<std::string>()) << "case " << i;
  }
}

TEST(GgufTokenizer, MalformedMetadataIsAnError) {
  using nlohmann::json;
  const json base = {{"tokenizer.ggml.model", "llama"}, {"tokenizer.ggml.tokens", {"<unk>", "a", "b", "ab"}},
                     {"tokenizer.ggml.scores", {0.0, -1.0, -1.0, -0.5}}};
  EXPECT_NO_THROW(Tokenizer::from_gguf(base));
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"tokenizer.ggml.model", "bert-wordpiece"},
           {"tokenizer.ggml.model", 3},
           {"tokenizer.ggml.tokens", json::array()},
           {"tokenizer.ggml.tokens", {"a", 1}},
           {"tokenizer.ggml.scores", {0.0}},
           {"tokenizer.ggml.token_type", {1, 1}},
           {"tokenizer.ggml.add_bos_token", "yes"},
       }) {
    json m = base;
    m[key] = value;
    EXPECT_THROW(Tokenizer::from_gguf(m), Error) << key << " = " << value.dump();
  }
  EXPECT_THROW(Tokenizer::from_gguf(json::object()), Error);
  json gpt2 = {{"tokenizer.ggml.model", "gpt2"}, {"tokenizer.ggml.tokens", {"a", "b"}}};
  EXPECT_THROW(Tokenizer::from_gguf(gpt2), Error);  // no merges
  gpt2["tokenizer.ggml.merges"] = {"a b"};
  gpt2["tokenizer.ggml.pre"] = "no-such-pre";
  EXPECT_THROW(Tokenizer::from_gguf(gpt2), Error);
}

}  // namespace
}  // namespace elm
