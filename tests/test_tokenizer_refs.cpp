// Tokenizers against the Hugging Face `tokenizers` library: every case of
// shared/fixtures/tokenizers/refs.json (ids without and with special tokens, and decode(ids)).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

namespace elm {
namespace {

const nlohmann::json& refs() {
  static const nlohmann::json j = nlohmann::json::parse(read_text_file(test::shared("fixtures/tokenizers/refs.json")));
  return j;
}

std::string tokenizer_dir(const std::string& name) {
  return name == "stories260k" ? test::shared("models/stories260k/hf") : test::shared("tokenizers/" + name);
}

// First index where two id lists differ, for a readable failure.
std::string first_diff(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  return "first difference at " + std::to_string(i) + " (got " + (i < got.size() ? std::to_string(got[i]) : "end") +
         ", want " + (i < want.size() ? std::to_string(want[i]) : "end") + ") of " + std::to_string(want.size());
}

class TokenizerRefs : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerRefs, MatchesHuggingFace) {
  ELM_REQUIRE_SHARED("fixtures/tokenizers/refs.json");
  const std::string name = GetParam();
  auto tok = Tokenizer::from_dir(tokenizer_dir(name));
  const auto& cases = refs()["cases"];
  const auto& enc = refs()["tokenizers"][name]["encodings"];
  ASSERT_EQ(cases.size(), enc.size());
  EXPECT_EQ(tok->vocab_size(), refs()["tokenizers"][name]["vocab_size"].get<int64_t>());
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = cases[i].get<std::string>();
    const auto want = enc[i]["ids"].get<std::vector<int32_t>>();
    const auto want_sp = enc[i]["ids_with_specials"].get<std::vector<int32_t>>();
    const auto got = tok->encode(text, false);
    const auto got_sp = tok->encode(text, true);
    const std::string dec = tok->decode(want);
    const bool ok = got == want && got_sp == want_sp && dec == enc[i]["decoded"].get<std::string>();
    EXPECT_EQ(got, want) << name << " case " << i << ": " << first_diff(got, want) << " text: " << text.substr(0, 80);
    EXPECT_EQ(got_sp, want_sp) << name << " case " << i;
    EXPECT_EQ(dec, enc[i]["decoded"].get<std::string>()) << name << " case " << i;
    passed += ok;
  }
  RecordProperty("passed", passed);
  std::printf("[ %s: %d / %zu cases identical ]\n", name.c_str(), passed, cases.size());
}

INSTANTIATE_TEST_SUITE_P(All, TokenizerRefs,
                         ::testing::Values("smollm2", "qwen3", "gemma3", "llama3", "llama2", "stories260k"));

}  // namespace
}  // namespace elm
