// Rendering a conversation for a model: what `elm chat` and the server share. Mirrors transformers'
// apply_chat_template: the model's template gets messages, tools, add_generation_prompt, the
// tokenizer's bos_token / eos_token and any extra keyword arguments (enable_thinking...).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace elm {

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{role, content, ...}]
  nlohmann::ordered_json tools;                                        // null: none
  bool add_generation_prompt = true;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();     // e.g. {"enable_thinking": false}
};

// The ChatML layout used when a model has no template of its own (transformers' old class default):
// "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then "<|im_start|>assistant\n".
extern const char* const kFallbackChatTemplate;

// The prompt text. Error when the template fails (e.g. raise_exception on alternating roles).
std::string render_chat(const Model& model, const ChatRequest& request);
// The prompt ids: the rendered text encoded without the post-processor (the template writes BOS
// itself, as with apply_chat_template(tokenize=True)); with the fallback template the tokenizer's
// own BOS is added. Error when the model has no tokenizer.
std::vector<int32_t> tokenize_chat(const Model& model, const ChatRequest& request);

}  // namespace elm
