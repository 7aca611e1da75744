// Tokenizer behaviour beyond the reference corpora: invalid UTF-8, malformed tokenizer.json,
// added-token matching rules, streaming decode, round trips, model loading with and without a
// tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "runtime/model.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util.h"

namespace elm {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<Tokenizer> load(const std::string& name) {
  static std::map<std::string, std::shared_ptr<Tokenizer>> cache;
  auto& t = cache[name];
  if (!t) t = Tokenizer::from_dir(name == "stories260k" ? test::shared("models/stories260k/hf") : test::shared("tokenizers/" + name));
  return t;
}

TEST(Utf8, SanitizeReplacesMaximalSubparts) {
  // The Unicode recommendation (what Python's and Rust's lossy decoders do).
  EXPECT_EQ(utf8::sanitize("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(utf8::sanitize("\xE4\xBD"), "\xEF\xBF\xBD");            // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(utf8::sanitize("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: two
  EXPECT_EQ(utf8::sanitize("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8::sanitize("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(utf8::complete_prefix("ab\xE4\xBD"), 2u);
  EXPECT_EQ(utf8::complete_prefix("ab\xFF"), 3u);  // invalid, not incomplete: nothing to wait for
}

TEST(Tokenizer, InvalidUtf8IsReplaced) {
  ELM_REQUIRE_SHARED("tokenizers/qwen3");
  for (const char* name : {"qwen3", "llama2"}) {
    auto t = load(name);
    EXPECT_EQ(t->encode("ok \xFF\xFE then \xE4\xBD"), t->encode("ok \xEF\xBF\xBD\xEF\xBF\xBD then \xEF\xBF\xBD")) << name;
    EXPECT_TRUE(utf8::is_valid(t->decode(t->encode(std::string("\x80\x80\xC3", 3))))) << name;
  }
}

TEST(Tokenizer, DecodeOfInvalidBytesIsValidUtf8) {
  ELM_REQUIRE_SHARED("tokenizers/llama2");
  auto t = load("llama2");
  // <0xE4> alone is a broken character: HF's ByteFallback gives U+FFFD.
  EXPECT_EQ(t->decode({t->piece_to_id("<0xE4>")}), "\xEF\xBF\xBD");
  auto q = load("qwen3");
  EXPECT_TRUE(utf8::is_valid(q->decode({q->piece_to_id("\xC3\xA4")})));  // 'ä' is byte 0xE4 in byte-level
}

TEST(Tokenizer, LosslessRoundTrip) {
  ELM_REQUIRE_SHARED("tokenizers/llama3");
  const std::string text = "Tabs\tand\nnewlines\r\n  spaces, emoji \xF0\x9F\x98\x80, <|begin_of_text|> and \xE4\xBD\xA0\xE5\xA5\xBD";
  for (const char* name : {"llama3", "smollm2"}) {
    auto t = load(name);
    EXPECT_TRUE(t->lossless()) << name;
    EXPECT_EQ(t->decode(t->encode(text)), text) << name;
  }
  EXPECT_FALSE(load("qwen3")->lossless());  // NFC
  EXPECT_FALSE(load("llama2")->lossless());
}

TEST(Tokenizer, SpecialTokens) {
  ELM_REQUIRE_SHARED("tokenizers/qwen3");
  auto q = load("qwen3");
  EXPECT_EQ(q->eos_token(), "<|im_end|>");
  EXPECT_EQ(q->eos_id(), 151645);
  EXPECT_EQ(q->bos_id(), -1);
  EXPECT_TRUE(q->is_special(151644));
  EXPECT_FALSE(q->is_special(9707));
  const auto ids = q->encode("<|im_start|>hi<|im_end|>");
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(q->decode(ids, /*skip_special=*/true), "hi");
  auto g = load("gemma3");
  EXPECT_EQ(g->bos_id(), 2);
  EXPECT_EQ(g->encode("hi", true).front(), 2);
  EXPECT_EQ(g->decode({2, 1}, true), "");
}

TEST(Tokenizer, StreamDecoderMatchesWholeDecode) {
  ELM_REQUIRE_SHARED("fixtures/tokenizers/refs.json");
  const std::vector<std::string> texts = {
      " Hello world, how are you?", "emoji: \xF0\x9F\x98\x80 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x87\xAF\xF0\x9F\x87\xB5",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C", "  leading spaces\n\nand lines  ",
      "<|im_start|>user\nhi<|im_end|>", "<s>[INST] x [/INST]"};
  for (const char* name : {"qwen3", "llama2", "gemma3", "llama3", "stories260k"}) {
    auto t = load(name);
    for (const std::string& text : texts) {
      const auto ids = t->encode(text, true);
      for (bool skip : {true, false}) {
        StreamDecoder s(*t, skip);
        std::string streamed;
        for (int32_t id : ids) streamed += s.push(id);
        streamed += s.flush();
        EXPECT_EQ(streamed, t->decode(ids, skip)) << name << " skip=" << skip << " text: " << text;
      }
    }
  }
}

TEST(Tokenizer, StreamDecoderHoldsBackSplitCharacters) {
  ELM_REQUIRE_SHARED("tokenizers/llama2");
  auto t = load("llama2");
  StreamDecoder s(*t);
  // U+4F60 (你) as three byte-fallback tokens: nothing until the last byte arrives.
  EXPECT_EQ(s.push(t->piece_to_id("<0xE4>")), "");
  EXPECT_EQ(s.push(t->piece_to_id("<0xBD>")), "");
  EXPECT_EQ(s.push(t->piece_to_id("<0xA0>")), "\xE4\xBD\xA0");
  EXPECT_EQ(s.push(t->piece_to_id("<0xE4>")), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");  // never completed
}

// A hand-made tokenizer.json: character vocabulary, merges, added tokens with matching options.
std::string tiny_tokenizer_json(const nlohmann::json& added) {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (const char* p : {"a", "b", "c", " ", "ab", "abc", "<", ">", "m", "k", "x", "_"}) vocab[p] = id++;
  return nlohmann::json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "ab c"}}}},
                        {"added_tokens", added},
                        {"normalizer", nullptr},
                        {"pre_tokenizer", nullptr},
                        {"decoder", nullptr}}
      .dump();
}

TEST(Tokenizer, AddedTokenOptions) {
  const auto tok = [](bool lstrip, bool rstrip, bool single_word) {
    return Tokenizer::from_json(tiny_tokenizer_json(nlohmann::json::array({{{"id", 100}, {"content", "<mk>"}, {"special", true},
                                                                              {"lstrip", lstrip}, {"rstrip", rstrip},
                                                                              {"single_word", single_word}, {"normalized", false}}})));
  };
  const std::vector<int32_t> plain = tok(false, false, false)->encode("ab <mk> c");
  EXPECT_EQ(plain, (std::vector<int32_t>{4, 3, 100, 3, 2}));
  EXPECT_EQ(tok(true, false, false)->encode("ab  <mk> c"), (std::vector<int32_t>{4, 100, 3, 2}));  // spaces before absorbed
  EXPECT_EQ(tok(false, true, false)->encode("ab <mk>  c"), (std::vector<int32_t>{4, 3, 100, 2}));  // spaces after absorbed
  // single_word: only when not inside a word.
  EXPECT_EQ(tok(false, false, true)->encode("a<mk>"), (std::vector<int32_t>{0, 6, 8, 9, 7}));
  EXPECT_EQ(tok(false, false, true)->encode("a <mk>"), (std::vector<int32_t>{0, 3, 100}));
  // Merges apply lowest rank first; "abc" needs "ab" first.
  EXPECT_EQ(tok(false, false, false)->encode("abcab"), (std::vector<int32_t>{5, 4}));
  EXPECT_EQ(tok(false, false, false)->vocab_size(), 101);
}

TEST(Tokenizer, MalformedTokenizerJsonIsAnError) {
  const std::string good = tiny_tokenizer_json(nlohmann::json::array());
  EXPECT_NO_THROW(Tokenizer::from_json(good));
  const std::vector<std::string> bad = {
      "",
      "{",
      good.substr(0, good.size() / 2),
      "[1, 2]",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})",           // shared id
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a z"]}})",               // unknown token
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["abc"]}})",               // not "a b"
      R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})",                          // unsupported model
      R"({"model": {"type": "BPE", "vocab": {"a": -4}, "merges": []}})",                   // negative id
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Nope"}})",
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "decoder": 7})",
      R"({"model": {"type": "BPE", "vocab": {"a\ud800": 0}, "merges": []}})",            // lone surrogate
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"content": "x"}]})",
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\xFF\": 0}, \"merges\": []}}",       // invalid UTF-8
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}} trailing)",
  };
  for (const std::string& j : bad) EXPECT_THROW(Tokenizer::from_json(j), Error) << j;
  EXPECT_THROW(Tokenizer::from_json(good, "{not json"), Error);
}

TEST(Tokenizer, ModelDirectoryWithoutOrWithBrokenTokenizer) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  const fs::path dir = fs::path(test::temp_dir()) / "tok_model";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(test::shared("fixtures/tiny/llama")))
    if (e.path().filename() != "tokenizer.json" && e.path().filename() != "tokenizer_config.json")
      fs::copy_file(e.path(), dir / e.path().filename(), fs::copy_options::overwrite_existing);
  EXPECT_EQ(Model::load(dir.string())->tokenizer, nullptr);  // no tokenizer.json: a model without one
  std::ofstream(dir / "tokenizer.json") << "{\"model\": {\"type\": \"BPE\", \"vocab\": {";
  try {
    Model::load(dir.string());
    ADD_FAILURE() << "a broken tokenizer.json must not load";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Tokenizer, FromDirNeedsTokenizerJson) {
  EXPECT_THROW(Tokenizer::from_dir(test::temp_dir()), Error);
}

}  // namespace
}  // namespace elm
