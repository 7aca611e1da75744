// Chat templates against transformers' apply_chat_template: every rendering (text and ids) in
// shared/fixtures/tokenizers/chat_refs.json for the qwen3, gemma3 and llama3 templates.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

namespace elm {
namespace {

class ChatRefs : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatRefs, RendersLikeTransformers) {
  ELM_REQUIRE_SHARED("fixtures/tokenizers/chat_refs.json");
  const std::string name = GetParam();
  const auto refs = nlohmann::ordered_json::parse(read_text_file(test::shared("fixtures/tokenizers/chat_refs.json")));
  auto tok = Tokenizer::from_dir(test::shared("tokenizers/" + name));
  ASSERT_FALSE(tok->chat_template().empty());
  const ChatTemplate tmpl(tok->chat_template());
  int passed = 0, total = 0;
  for (const auto& r : refs["templates"][name]) {
    const auto& conv = refs["conversations"][r["conversation"].get<size_t>()];
    nlohmann::ordered_json vars = r["kwargs"];
    vars["add_generation_prompt"] = r["add_generation_prompt"];
    vars["tools"] = conv.contains("tools") ? conv["tools"] : nlohmann::ordered_json();
    vars["bos_token"] = tok->bos_token();
    vars["eos_token"] = tok->eos_token();
    const std::string text = tmpl.render(conv["messages"], vars);
    const std::vector<int32_t> ids = tok->encode(text, false);
    EXPECT_EQ(text, r["text"].get<std::string>()) << name << " conversation " << r["conversation"] << " " << r["kwargs"];
    EXPECT_EQ(ids, r["ids"].get<std::vector<int32_t>>()) << name << " conversation " << r["conversation"];
    passed += text == r["text"].get<std::string>() && ids == r["ids"].get<std::vector<int32_t>>();
    ++total;
  }
  std::printf("[ %s: %d / %d renderings identical ]\n", name.c_str(), passed, total);
}

INSTANTIATE_TEST_SUITE_P(All, ChatRefs, ::testing::Values("qwen3", "gemma3", "llama3"));

}  // namespace
}  // namespace elm
