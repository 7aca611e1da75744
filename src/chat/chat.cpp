#include "chat/chat.h"

#include "chat/chat_template.h"
#include "core/error.h"

namespace elm {

const char* const kFallbackChatTemplate =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

std::string render_chat(const Model& model, const ChatRequest& r) {
  ELM_CHECK(r.messages.is_array(), "chat messages must be a JSON array");
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  for (auto it = r.extra.begin(); it != r.extra.end(); ++it) vars[it.key()] = it.value();
  vars["add_generation_prompt"] = r.add_generation_prompt;
  vars["tools"] = r.tools;
  if (model.tokenizer) {
    // transformers passes the special tokens that are set, as strings.
    if (!model.tokenizer->bos_token().empty()) vars["bos_token"] = model.tokenizer->bos_token();
    if (!model.tokenizer->eos_token().empty()) vars["eos_token"] = model.tokenizer->eos_token();
  }
  const ChatTemplate t(model.chat_template.empty() ? std::string(kFallbackChatTemplate) : model.chat_template);
  return t.render(r.messages, vars);
}

std::vector<int32_t> tokenize_chat(const Model& model, const ChatRequest& r) {
  ELM_CHECK(model.tokenizer, model.info.name, ": the model has no tokenizer");
  return model.tokenizer->encode(render_chat(model, r), /*add_special=*/model.chat_template.empty());
}

}  // namespace elm
