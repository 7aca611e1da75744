// Errors: everything that can go wrong with user input (files, configs, prompts, requests) throws
// elm::Error with a message a user can act on. Front ends catch it, print it and exit non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace elm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Concatenates its arguments with operator<< into one message.
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(cat(std::forward<Args>(args)...));
}

}  // namespace elm

// ELM_CHECK(cond, parts...): throw elm::Error built from parts when cond is false.
#define ELM_CHECK(cond, ...)                        \
  do {                                              \
    if (!(cond)) ::elm::fail(__VA_ARGS__);          \
  } while (0)
