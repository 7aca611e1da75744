// UTF-8 helpers the tokenizer needs: validation with replacement, code point iteration, and the
// GPT-2 byte <-> printable character mapping of byte-level BPE.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace elm::utf8 {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid or truncated.
size_t valid_seq_len(std::string_view s, size_t i);
bool is_valid(std::string_view s);
// s with every ill-formed subsequence replaced by U+FFFD, one per maximal subpart (the Unicode
// recommendation that Python's and Rust's lossy decoders follow).
std::string sanitize(std::string_view s);
// Length of the longest prefix of s that does not end inside a UTF-8 sequence that may still be
// completed by more bytes.
size_t complete_prefix(std::string_view s);

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i.
inline uint32_t next(std::string_view s, size_t& i) {
  const auto b = [&](size_t k) { return uint32_t(static_cast<unsigned char>(s[i + k])); };
  const uint32_t c = b(0);
  uint32_t cp;
  size_t n;
  if (c < 0x80) cp = c, n = 1;
  else if (c < 0xE0) cp = ((c & 0x1F) << 6) | (b(1) & 0x3F), n = 2;
  else if (c < 0xF0) cp = ((c & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F), n = 3;
  else cp = ((c & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F), n = 4;
  i += n;
  return cp;
}
// Byte length of the sequence a lead byte starts (1 for bytes that cannot lead).
inline size_t seq_len(unsigned char lead) {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 1;
}
void append(std::string& out, uint32_t cp);

// GPT-2's byte-level alphabet: every byte maps to a printable code point (bytes that are printable
// Latin-1 map to themselves, the rest to U+0100 onwards in byte order).
uint32_t byte_to_cp(uint8_t b);
int byte_from_cp(uint32_t cp);  // -1 for code points outside the alphabet

}  // namespace elm::utf8
