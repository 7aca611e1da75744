// Request bodies as an attacker sends them: parsing must end in a parsed request or an ApiError (a
// 4xx), never a crash, a hang or another exception type.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/api_error.h"
#include "server/chat_prompt.h"
#include "server/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (int endpoint = 0; endpoint < 2; ++endpoint) {
    try {
      if (endpoint == 0) {
        elm::server::ChatRequest r = elm::server::parse_chat_request(body);
        elm::server::resolve_sampling(r.gen, {});
        elm::server::transcript_prompt(r.messages);
      } else {
        elm::server::parse_completion_request(body);
      }
    } catch (const elm::server::ApiError& e) {
      if (e.status() < 400 || e.status() >= 500) __builtin_trap();
    }
  }
  return 0;
}
