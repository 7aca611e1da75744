// Parsing and validation of the OpenAI-style request bodies (/v1/chat/completions, /v1/completions).
// Everything a client can get wrong ends in an ApiError (400) naming the field, before any work starts.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/model.h"
#include "runtime/sampler.h"

namespace elm::server {

// The generation controls both endpoints share. Absent fields stay empty and fall back to the
// model's generation_config.json, then to elm's defaults (resolve_sampling).
struct GenerationRequest {
  std::optional<float> temperature, top_p, min_p, repeat_penalty;
  std::optional<int> top_k;
  std::optional<uint64_t> seed;
  std::optional<int> max_tokens;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a final chunk with the usage
};

struct ChatMessage {
  std::string role;  // system, developer, user, assistant, tool
  std::string content;
};

struct ChatRequest {
  std::string model;  // "" when not given: the server picks its default model
  std::vector<ChatMessage> messages;
  GenerationRequest gen;
};

struct CompletionRequest {
  std::string model;
  std::string prompt;               // text, or
  std::vector<int32_t> prompt_ids;  // token ids (the API also accepts an array of integers)
  GenerationRequest gen;
};

// Byte offset of the first invalid UTF-8 sequence (overlong forms and surrogates included), or npos.
size_t find_invalid_utf8(std::string_view s);

// The body as a JSON object; ApiError 400 for invalid UTF-8, malformed JSON or a non-object.
nlohmann::json parse_body(std::string_view body);

ChatRequest parse_chat_request(std::string_view body);
CompletionRequest parse_completion_request(std::string_view body);

// Request values over the model's generation_config.json defaults over elm's. A missing seed is drawn
// at random, so two identical requests differ unless the client pins it.
SamplerConfig resolve_sampling(const GenerationRequest& g, const ModelInfo& info);

}  // namespace elm::server
