// A chat conversation -> the prompt tokens for a model. Models with a chat template render it
// (chat/chat.h, shared with `elm chat`); models without one (base models such as the bundled
// stories260k) get a plain transcript rather than chat.h's ChatML fallback, whose markup a base model
// has never seen:
//
//   <system text>\n\n            (when there is a system/developer message)
//   User: <text>\n
//   Assistant: <text>\n
//   ...
//   Assistant:
//
// which any text model continues sensibly, with "\nUser:" as a stop string so it does not write the
// user's next turn itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "server/request.h"

namespace elm::server {

struct ChatPrompt {
  std::vector<int32_t> ids;
  std::vector<std::string> stop;  // stop strings the format adds to the request's
  std::string format;             // "template" or "transcript"
};

// The transcript text of the fallback format (without BOS).
std::string transcript_prompt(const std::vector<ChatMessage>& messages);

// Throws ApiError 400 when the model has no tokenizer.
ChatPrompt build_chat_prompt(const Model& model, const std::vector<ChatMessage>& messages);

}  // namespace elm::server
