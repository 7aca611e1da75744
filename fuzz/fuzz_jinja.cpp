// Fuzzes the chat template interpreter: arbitrary bytes as a template, parsed and rendered with a
// small conversation. Every failure must be a clean elm::Error (no crash, hang or unbounded output).
#include <cstdint>
#include <string>

#include "chat/chat_template.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string src(reinterpret_cast<const char*>(data), size);
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(
      R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
          {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}])");
  static const nlohmann::ordered_json vars = {{"add_generation_prompt", true}, {"bos_token", "<s>"},
                                              {"tools", nlohmann::ordered_json::array({{{"type", "function"}}})}};
  try {
    elm::ChatTemplate t(src);
    t.render(messages, vars);
  } catch (const elm::Error&) {
  }
  return 0;
}
