#include "server/request.h"

#include <cmath>
#include <random>

#include "server/api_error.h"

namespace elm::server {

using nlohmann::json;

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c >> 5) == 0x6) len = 2, cp = c & 0x1F;
    else if ((c >> 4) == 0xE) len = 3, cp = c & 0x0F;
    else if ((c >> 3) == 0x1E) len = 4, cp = c & 0x07;
    else return i;  // a continuation byte or 0xF8..0xFF as a lead
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const uint32_t min_cp = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;  // overlong, too big, surrogate
    i += len;
  }
  return std::string_view::npos;
}

json parse_body(std::string_view body) {
  const size_t bad = find_invalid_utf8(body);
  if (bad != std::string_view::npos)
    throw ApiError(400, cat("the request body is not valid UTF-8 (first bad byte at offset ", bad, ")"));
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // syntax errors, and numbers too large for a double
    throw ApiError(400, cat("the request body is not valid JSON: ", e.what()));
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

namespace {

const char* type_name(const json& v) { return v.type_name(); }

// A present, non-null field, or null.
const json* field(const json& o, const char* key) {
  auto it = o.find(key);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number(const json& o, const char* key, double lo, double hi) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw ApiError(400, cat("'", key, "' must be a number, not ", type_name(*v)), key);
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) throw ApiError(400, cat("'", key, "' must be between ", lo, " and ", hi, ", got ", x), key);
  return x;
}

std::optional<int64_t> integer(const json& o, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  int64_t x;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    x = u > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(u);
  } else if (v->is_number_integer()) {
    x = v->get<int64_t>();
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
             std::fabs(v->get<double>()) < 9e15) {
    x = int64_t(v->get<double>());
  } else {
    throw ApiError(400, cat("'", key, "' must be an integer, not ", v->is_number() ? "a fraction" : type_name(*v)), key);
  }
  if (x < lo || x > hi) throw ApiError(400, cat("'", key, "' must be between ", lo, " and ", hi, ", got ", x), key);
  return x;
}

std::optional<bool> boolean(const json& o, const char* key) {
  const json* v = field(o, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw ApiError(400, cat("'", key, "' must be true or false, not ", type_name(*v)), key);
  return v->get<bool>();
}

std::string string_field(const json& o, const char* key) {
  const json* v = field(o, key);
  if (!v) return "";
  if (!v->is_string()) throw ApiError(400, cat("'", key, "' must be a string, not ", type_name(*v)), key);
  return v->get<std::string>();
}

constexpr int kMaxStops = 16;
constexpr int kMaxTokensLimit = 1 << 20;

GenerationRequest parse_generation(const json& j, const char* max_tokens_key) {
  GenerationRequest g;
  if (auto t = number(j, "temperature", 0, 2)) g.temperature = float(*t);
  if (auto t = number(j, "top_p", 0, 1)) g.top_p = float(*t);
  if (auto t = number(j, "min_p", 0, 1)) g.min_p = float(*t);
  if (auto t = number(j, "repeat_penalty", 0.01, 100)) g.repeat_penalty = float(*t);
  if (auto t = integer(j, "top_k", 0, INT32_MAX)) g.top_k = int(*t);
  if (auto t = integer(j, "seed", INT64_MIN, INT64_MAX)) g.seed = uint64_t(*t);
  // max_completion_tokens is the newer name of max_tokens in the chat API.
  for (const char* key : {"max_tokens", max_tokens_key})
    if (auto t = integer(j, key, 1, kMaxTokensLimit)) g.max_tokens = int(*t);
  // Accepted for compatibility, ignored: they have no effect on a single-choice greedy/sampled decode.
  number(j, "presence_penalty", -2, 2);
  number(j, "frequency_penalty", -2, 2);
  if (auto n = integer(j, "n", 1, INT32_MAX); n && *n != 1)
    throw ApiError(400, "only n = 1 is supported (one choice per request)", "n");
  if (const json* s = field(j, "stop")) {
    if (s->is_string()) {
      g.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (s->size() > size_t(kMaxStops)) throw ApiError(400, cat("'stop' holds at most ", kMaxStops, " strings"), "stop");
      for (const json& e : *s) {
        if (!e.is_string()) throw ApiError(400, cat("'stop' entries must be strings, not ", type_name(e)), "stop");
        g.stop.push_back(e.get<std::string>());
      }
    } else {
      throw ApiError(400, cat("'stop' must be a string or an array of strings, not ", type_name(*s)), "stop");
    }
  }
  g.stream = boolean(j, "stream").value_or(false);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) throw ApiError(400, "'stream_options' must be an object", "stream_options");
    g.include_usage = boolean(*so, "include_usage").value_or(false);
  }
  return g;
}

std::string message_content(const json& m, size_t i) {
  const std::string where = cat("messages[", i, "].content");
  const json* c = field(m, "content");
  if (!c) return "";
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) throw ApiError(400, cat("'", where, "' must be a string or an array of parts"), where);
  std::string text;
  for (const json& part : *c) {
    if (!part.is_object() || string_field(part, "type") != "text")
      throw ApiError(400, cat("'", where, "': only text parts ({\"type\": \"text\", \"text\": ...}) are supported"),
                     where);
    text += string_field(part, "text");
  }
  return text;
}

}  // namespace

ChatRequest parse_chat_request(std::string_view body) {
  const json j = parse_body(body);
  ChatRequest r;
  r.model = string_field(j, "model");
  const json* msgs = field(j, "messages");
  if (!msgs) throw ApiError(400, "'messages' is required", "messages");
  if (!msgs->is_array()) throw ApiError(400, cat("'messages' must be an array, not ", type_name(*msgs)), "messages");
  if (msgs->empty()) throw ApiError(400, "'messages' is empty: send at least one message", "messages");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string where = cat("messages[", i, "]");
    if (!m.is_object()) throw ApiError(400, cat("'", where, "' must be an object"), where);
    ChatMessage cm;
    const json* role = field(m, "role");
    if (!role || !role->is_string()) throw ApiError(400, cat("'", where, ".role' must be a string"), where + ".role");
    cm.role = role->get<std::string>();
    if (cm.role != "system" && cm.role != "developer" && cm.role != "user" && cm.role != "assistant" &&
        cm.role != "tool")
      throw ApiError(400, cat("'", where, ".role' is '", cm.role, "': use system, developer, user, assistant or tool"),
                     where + ".role");
    cm.content = message_content(m, i);
    r.messages.push_back(std::move(cm));
  }
  r.gen = parse_generation(j, "max_completion_tokens");
  return r;
}

CompletionRequest parse_completion_request(std::string_view body) {
  const json j = parse_body(body);
  CompletionRequest r;
  r.model = string_field(j, "model");
  const json* p = field(j, "prompt");
  if (!p) throw ApiError(400, "'prompt' is required", "prompt");
  // The API allows a string, an array of one string, or an array of token ids.
  if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) p = &(*p)[0];
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
    if (r.prompt.empty()) throw ApiError(400, "'prompt' is empty", "prompt");
  } else if (p->is_array() && !p->empty()) {
    for (const json& e : *p) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX)
        throw ApiError(400, "'prompt' must be a string or an array of token ids (batches of prompts are not supported)",
                       "prompt");
      r.prompt_ids.push_back(e.get<int32_t>());
    }
  } else {
    throw ApiError(400, "'prompt' must be a non-empty string or an array of token ids", "prompt");
  }
  if (field(j, "suffix")) throw ApiError(400, "'suffix' (fill-in-the-middle) is not supported", "suffix");
  r.gen = parse_generation(j, "max_tokens");
  if (!r.gen.max_tokens) r.gen.max_tokens = 16;  // the completions API's documented default
  return r;
}

SamplerConfig resolve_sampling(const GenerationRequest& g, const ModelInfo& info) {
  SamplerConfig c;
  const json& d = info.generation;
  auto model_default = [&](const char* key, auto& out) {
    if (d.contains(key) && d[key].is_number()) out = d[key].get<std::decay_t<decltype(out)>>();
  };
  model_default("temperature", c.temperature);
  model_default("top_p", c.top_p);
  model_default("top_k", c.top_k);
  model_default("min_p", c.min_p);
  model_default("repetition_penalty", c.repeat_penalty);
  if (d.contains("do_sample") && d["do_sample"].is_boolean() && !d["do_sample"].get<bool>()) c.temperature = 0;
  if (g.temperature) c.temperature = *g.temperature;
  if (g.top_p) c.top_p = *g.top_p;
  if (g.top_k) c.top_k = *g.top_k;
  if (g.min_p) c.min_p = *g.min_p;
  if (g.repeat_penalty) c.repeat_penalty = *g.repeat_penalty;
  c.seed = g.seed ? *g.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull + std::random_device{}();
  return c;
}

}  // namespace elm::server
