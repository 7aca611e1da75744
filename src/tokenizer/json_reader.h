// A small strict JSON reader for tokenizer.json. nlohmann's DOM parser takes ~2 s on Gemma 3's 33 MB
// file; this one streams the huge vocab and merges straight into the tokenizer's tables and builds
// nlohmann values only for the small rest. Errors name the file and line.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace elm {

class JsonReader {
 public:
  JsonReader(std::string_view text, std::string label) : s_(text), label_(std::move(label)) {}

  nlohmann::json value();        // any value, as nlohmann::json
  void string(std::string& out);  // a string value (escapes decoded)
  int64_t integer();
  char peek();                   // next non-space character, 0 at the end
  void expect(char c);
  // Objects and arrays, streamed: begin with expect('{') / expect('['), then call next_key /
  // next_item until they return false.
  bool next_key(std::string& key, bool& first);
  bool next_item(bool& first);
  void end();  // only whitespace may follow
  [[noreturn]] void error(std::string_view what) const;

 private:
  void skip_ws();
  nlohmann::json value_at(int depth);
  uint32_t hex4();
  std::string_view s_;
  size_t i_ = 0;
  std::string label_;
};

}  // namespace elm
