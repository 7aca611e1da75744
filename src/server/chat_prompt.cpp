#include "server/chat_prompt.h"

#include "chat/chat.h"
#include "server/api_error.h"

namespace elm::server {

std::string transcript_prompt(const std::vector<ChatMessage>& messages) {
  std::string system, turns;
  for (const ChatMessage& m : messages) {
    if (m.role == "system" || m.role == "developer") {
      if (!system.empty()) system += "\n";
      system += m.content;
    } else {
      turns += m.role == "assistant" ? "Assistant: " : m.role == "tool" ? "Tool: " : "User: ";
      turns += m.content;
      turns += "\n";
    }
  }
  std::string out;
  if (!system.empty()) out = system + "\n\n";
  return out + turns + "Assistant:";
}

ChatPrompt build_chat_prompt(const Model& model, const std::vector<ChatMessage>& messages) {
  if (!model.tokenizer)
    throw ApiError(400, cat("model '", model.info.name,
                            "' has no tokenizer, so it cannot chat: send token ids to /v1/completions"),
                   "model");
  ChatPrompt p;
  if (!model.chat_template.empty()) {
    elm::ChatRequest r;
    for (const ChatMessage& m : messages) r.messages.push_back({{"role", m.role}, {"content", m.content}});
    p.format = "template";
    p.ids = tokenize_chat(model, r);  // template errors (e.g. roles out of order) are elm::Error: 400
    return p;
  }
  p.format = "transcript";
  p.ids = model.tokenizer->encode(transcript_prompt(messages), /*add_special=*/true);
  p.stop = {"\nUser:"};
  return p;
}

}  // namespace elm::server
