// Errors a request can end in, carried to the client in OpenAI's JSON error shape:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// ApiError is an elm::Error, so everything that already throws elm::Error for bad input (the
// tokenizer, the loaders) still reaches the client with its message; the HTTP layer maps a plain
// elm::Error to 400 and anything else to 500.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace elm::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string code = "")
      : Error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, code_;
};

// OpenAI's error types by HTTP status: 400/413/422 invalid_request_error, 401
// authentication_error, 404 not_found_error, 409/429 and 503 server busy kinds, >= 500 server_error.
inline const char* error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 429: return "rate_limit_error";
    case 501: return "not_implemented_error";
    case 503: return "unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

inline nlohmann::json error_json(int status, const std::string& message, const std::string& param = "",
                                 const std::string& code = "") {
  nlohmann::json e = {{"message", message}, {"type", error_type(status)}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

inline nlohmann::json error_json(const ApiError& e) { return error_json(e.status(), e.what(), e.param(), e.code()); }

}  // namespace elm::server
