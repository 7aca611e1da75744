#include "server/openai_json.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

namespace elm::server {

using nlohmann::json;

ResponseContext make_response_context(bool chat, const std::string& model) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t boot = std::random_device{}();
  char id[48];
  std::snprintf(id, sizeof id, "%s-%08llx%06llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)(boot & 0xffffffff),
                (unsigned long long)(++counter));
  ResponseContext c;
  c.chat = chat;
  c.id = id;
  c.model = model;
  c.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return c;
}

json usage_json(const JobStats& s) {
  return {{"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"total_tokens", s.prompt_tokens + s.completion_tokens}};
}

json timings_json(const JobStats& s) {
  json j = {{"queue_ms", s.queue_ms},
            {"prompt_ms", s.prompt_ms},
            {"ttft_ms", s.ttft_ms},
            {"generation_ms", s.gen_ms},
            {"prompt_tokens_per_s", s.prompt_tokens_per_s()},
            {"tokens_per_s", s.tokens_per_s()},
            {"prompt_tokens", s.prompt_tokens},
            {"completion_tokens", s.completion_tokens}};
  if (s.speculative) {
    // llama.cpp's server names for the counts, and elm's whole record (SpeculativeStats::to_json).
    j["draft_n"] = s.speculative->drafted;
    j["draft_n_accepted"] = s.speculative->accepted;
    j["speculative"] = s.speculative->to_json();
  }
  return j;
}

namespace {
json envelope(const ResponseContext& c, bool chunk) {
  return {{"id", c.id},
          {"object", c.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", c.created},
          {"model", c.model},
          {"system_fingerprint", "elm"}};
}

json finish_reason(const Job& job) {
  const FinishReason r = job.reason();
  if (r == FinishReason::Stop || r == FinishReason::Length) return finish_reason_name(r);
  return nullptr;
}
}  // namespace

json completion_json(const ResponseContext& c, const Job& job) {
  json j = envelope(c, false);
  json choice = {{"index", 0}, {"finish_reason", finish_reason(job)}, {"logprobs", nullptr}};
  if (c.chat)
    choice["message"] = {{"role", "assistant"}, {"content", job.text()}};
  else
    choice["text"] = job.text();
  j["choices"] = json::array({choice});
  j["usage"] = usage_json(job.stats());
  j["timings"] = timings_json(job.stats());
  return j;
}

json text_chunk_json(const ResponseContext& c, const std::string& text, bool first) {
  json j = envelope(c, true);
  json choice = {{"index", 0}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
  if (c.chat) {
    choice["delta"] = {{"content", text}};
    if (first) choice["delta"]["role"] = "assistant";
  } else {
    choice["text"] = text;
  }
  j["choices"] = json::array({choice});
  return j;
}

json final_chunk_json(const ResponseContext& c, const Job& job) {
  json j = envelope(c, true);
  json choice = {{"index", 0}, {"finish_reason", finish_reason(job)}, {"logprobs", nullptr}};
  if (c.chat)
    choice["delta"] = json::object();
  else
    choice["text"] = "";
  j["choices"] = json::array({choice});
  j["timings"] = timings_json(job.stats());
  return j;
}

json usage_chunk_json(const ResponseContext& c, const Job& job) {
  json j = envelope(c, true);
  j["choices"] = json::array();
  j["usage"] = usage_json(job.stats());
  return j;
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

}  // namespace elm::server
