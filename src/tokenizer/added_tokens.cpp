#include "tokenizer/added_tokens.h"

#include <utf8proc.h>

#include "tokenizer/utf8.h"

namespace elm {

int32_t AddedTokenMatcher::child(int32_t node, uint8_t b) const {
  for (const auto& [c, n] : nodes_[size_t(node)].next)
    if (c == b) return n;
  return -1;
}

void AddedTokenMatcher::add(const AddedToken& t) {
  if (t.content.empty()) return;
  int32_t node = 0;
  for (char ch : t.content) {
    const uint8_t b = static_cast<uint8_t>(ch);
    int32_t n = child(node, b);
    if (n < 0) {
      n = int32_t(nodes_.size());
      nodes_[size_t(node)].next.emplace_back(b, n);
      nodes_.emplace_back();
    }
    node = n;
  }
  first_byte_[static_cast<uint8_t>(t.content[0])] = true;
  if (nodes_[size_t(node)].token < 0) {  // the first definition of a string wins
    nodes_[size_t(node)].token = int32_t(tokens_.size());
    tokens_.push_back(t);
  }
}

namespace {
// Rust's char::is_whitespace (Unicode White_Space).
bool is_ws(uint32_t c) {
  return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
// A word character for single_word: alphanumeric or underscore.
bool is_word(uint32_t c) {
  if (c == '_') return true;
  const auto cat = utf8proc_category(utf8proc_int32_t(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}
uint32_t cp_before(std::string_view s, size_t pos, size_t& start) {
  start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return utf8::next(s, i);
}
}  // namespace

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  size_t plain = 0;  // start of the current plain run
  size_t i = 0;
  while (i < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[i])]) {
      ++i;
      continue;
    }
    // Longest token starting at i.
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t j = i; j < text.size(); ++j) {
      node = child(node, static_cast<uint8_t>(text[j]));
      if (node < 0) break;
      if (nodes_[size_t(node)].token >= 0) best = nodes_[size_t(node)].token, best_end = j + 1;
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[size_t(best)];
    if (t.single_word) {
      size_t st;
      const bool word_before = i > 0 && is_word(cp_before(text, i, st));
      size_t k = best_end;
      const bool word_after = best_end < text.size() && utf8::valid_seq_len(text, best_end) > 0 && is_word(utf8::next(text, k));
      if (word_before || word_after) {
        ++i;
        continue;
      }
    }
    size_t b = i, e = best_end;
    if (t.lstrip) {
      while (b > plain) {
        size_t st;
        if (!is_ws(cp_before(text, b, st))) break;
        b = st;
      }
    }
    if (t.rstrip) {
      while (e < text.size()) {
        size_t k = e;
        if (utf8::valid_seq_len(text, e) == 0 || !is_ws(utf8::next(text, k))) break;
        e = k;
      }
    }
    if (b > plain) out.push_back({plain, b, -1});
    out.push_back({b, e, t.id});
    plain = i = e;
  }
  if (plain < text.size()) out.push_back({plain, text.size(), -1});
}

}  // namespace elm
