// A compiled PCRE2 pattern (UTF + Unicode properties, JIT-compiled) for the pre-tokenizers' splits.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace elm {

class Regex {
 public:
  // Throws elm::Error with PCRE2's message when the pattern does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(begin, end) for each non-overlapping match in s (valid UTF-8), left to right.
  // Empty matches are skipped, as the Hugging Face splitters skip them.
  void for_each_match(std::string_view s, const std::function<void(size_t, size_t)>& on_match) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

}  // namespace elm
