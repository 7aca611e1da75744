#include "tokenizer/json_reader.h"

#include <charconv>
#include <cstring>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace elm {

namespace {
constexpr int kMaxDepth = 256;  // deeper nesting is hostile input, not a tokenizer
}

void JsonReader::error(std::string_view what) const {
  size_t line = 1, col = 1;
  for (size_t k = 0; k < i_ && k < s_.size(); ++k) {
    if (s_[k] == '\n') ++line, col = 1;
    else ++col;
  }
  fail(label_, ": malformed JSON at line ", line, ", column ", col, ": ", what);
}

void JsonReader::skip_ws() {
  while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
}

char JsonReader::peek() {
  skip_ws();
  return i_ < s_.size() ? s_[i_] : 0;
}

void JsonReader::expect(char c) {
  if (peek() != c) error(std::string("expected '") + c + "'");
  ++i_;
}

void JsonReader::end() {
  if (peek() != 0) error("unexpected data after the end");
}

bool JsonReader::next_key(std::string& key, bool& first) {
  const char c = peek();
  if (c == '}') return ++i_, false;
  if (!first) {
    if (c != ',') error("expected ',' or '}'");
    ++i_;
  }
  first = false;
  string(key);
  expect(':');
  return true;
}

bool JsonReader::next_item(bool& first) {
  const char c = peek();
  if (c == ']') return ++i_, false;
  if (!first) {
    if (c != ',') error("expected ',' or ']'");
    ++i_;
  }
  first = false;
  return true;
}

uint32_t JsonReader::hex4() {
  if (i_ + 4 > s_.size()) error("truncated \\u escape");
  uint32_t v = 0;
  for (int k = 0; k < 4; ++k) {
    const char c = s_[i_++];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
    else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
    else error("bad \\u escape");
  }
  return v;
}

void JsonReader::string(std::string& out) {
  if (peek() != '"') error("expected a string");
  ++i_;
  out.clear();
  for (;;) {
    // Copy the run up to the next quote or backslash in one go.
    size_t j = i_;
    while (j < s_.size() && s_[j] != '"' && s_[j] != '\\') {
      if (static_cast<unsigned char>(s_[j]) < 0x20) i_ = j, error("control character in a string");
      ++j;
    }
    out.append(s_.data() + i_, j - i_);
    i_ = j;
    if (i_ >= s_.size()) error("unterminated string");
    if (s_[i_++] == '"') break;
    if (i_ >= s_.size()) error("unterminated string");
    const char e = s_[i_++];
    switch (e) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        uint32_t cp = hex4();
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair spells one code point
          if (i_ + 2 <= s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
            i_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) error("unpaired surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else {
            error("unpaired surrogate");
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          error("unpaired surrogate");
        }
        utf8::append(out, cp);
        break;
      }
      default: error("bad escape");
    }
  }
  if (!utf8::is_valid(out)) error("invalid UTF-8 in a string");
}

int64_t JsonReader::integer() {
  skip_ws();
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s_.data() + i_, s_.data() + s_.size(), v);
  if (ec != std::errc() || p == s_.data() + i_) error("expected an integer");
  i_ = size_t(p - s_.data());
  if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) error("expected an integer");
  return v;
}

nlohmann::json JsonReader::value() { return value_at(0); }

nlohmann::json JsonReader::value_at(int depth) {
  if (depth > kMaxDepth) error("nesting too deep");
  const char c = peek();
  if (c == '{') {
    ++i_;
    nlohmann::json o = nlohmann::json::object();
    std::string key;
    bool first = true;
    while (next_key(key, first)) o[key] = value_at(depth + 1);
    return o;
  }
  if (c == '[') {
    ++i_;
    nlohmann::json a = nlohmann::json::array();
    bool first = true;
    while (next_item(first)) a.push_back(value_at(depth + 1));
    return a;
  }
  if (c == '"') {
    std::string str;
    string(str);
    return str;
  }
  const auto word = [&](const char* w) {
    const size_t n = std::strlen(w);
    if (s_.substr(i_, n) != w) return false;
    i_ += n;
    return true;
  };
  if (word("true")) return true;
  if (word("false")) return false;
  if (word("null")) return nullptr;
  if (c == '-' || (c >= '0' && c <= '9')) {
    size_t j = i_ + (c == '-');
    bool is_float = false;
    while (j < s_.size() && ((s_[j] >= '0' && s_[j] <= '9') || s_[j] == '.' || s_[j] == 'e' || s_[j] == 'E' ||
                             s_[j] == '+' || s_[j] == '-')) {
      is_float |= s_[j] == '.' || s_[j] == 'e' || s_[j] == 'E';
      ++j;
    }
    const char* b = s_.data() + i_;
    const char* e = s_.data() + j;
    if (!is_float) {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(b, e, v);
      if (ec == std::errc() && p == e) return i_ = j, nlohmann::json(v);
    }
    double d = 0;
    auto [p, ec] = std::from_chars(b, e, d);
    if (ec != std::errc() || p != e) error("bad number");
    i_ = j;
    return d;
  }
  error(c == 0 ? "unexpected end of input" : "unexpected character");
}

}  // namespace elm
