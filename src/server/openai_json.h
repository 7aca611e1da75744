// The JSON objects of OpenAI's chat and text completion responses, whole and as stream chunks, plus
// elm's extra `timings` field. Text is written with invalid UTF-8 replaced by U+FFFD (a model may
// generate byte tokens that do not form valid UTF-8).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "server/scheduler.h"

namespace elm::server {

// Which API a response belongs to: /v1/chat/completions or /v1/completions.
struct ResponseContext {
  bool chat = true;
  std::string id;     // chatcmpl-... / cmpl-...
  std::string model;  // the model id the client asked for (or the default)
  int64_t created = 0;
};
ResponseContext make_response_context(bool chat, const std::string& model);

nlohmann::json usage_json(const JobStats& s);
// elm's extension: where the time went, for clients that show speed (the web GUI does); with
// speculative decoding also draft_n, draft_n_accepted (as llama.cpp's server) and `speculative`.
nlohmann::json timings_json(const JobStats& s);

// The non-streamed response of a finished job.
nlohmann::json completion_json(const ResponseContext& c, const Job& job);
// A stream chunk carrying `text` (chat: as delta content; the first chunk also carries the role).
nlohmann::json text_chunk_json(const ResponseContext& c, const std::string& text, bool first);
// The chunk closing the stream: finish_reason, and the timings extension (which carries the token
// counts too, for clients that do not ask for the usage chunk).
nlohmann::json final_chunk_json(const ResponseContext& c, const Job& job);
// The usage-only chunk stream_options.include_usage asks for.
nlohmann::json usage_chunk_json(const ResponseContext& c, const Job& job);

// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& j);
std::string dump_json(const nlohmann::json& j);

}  // namespace elm::server
