#include "tokenizer/utf8.h"

#include <array>

namespace elm::utf8 {

namespace {
// Number of continuation bytes a lead byte needs and the allowed range of the first one (the
// narrower ranges exclude overlong forms, surrogates and code points past U+10FFFF).
struct Lead {
  int n;
  unsigned char lo, hi;
};
Lead lead_info(unsigned char c) {
  if (c < 0x80) return {0, 0, 0};
  if (c >= 0xC2 && c <= 0xDF) return {1, 0x80, 0xBF};
  if (c == 0xE0) return {2, 0xA0, 0xBF};
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return {2, 0x80, 0xBF};
  if (c == 0xED) return {2, 0x80, 0x9F};
  if (c == 0xF0) return {3, 0x90, 0xBF};
  if (c >= 0xF1 && c <= 0xF3) return {3, 0x80, 0xBF};
  if (c == 0xF4) return {3, 0x80, 0x8F};
  return {-1, 0, 0};
}
// How many bytes from s[i] are a valid start of a sequence (the maximal subpart); sets complete.
size_t scan(std::string_view s, size_t i, bool& complete) {
  const Lead l = lead_info(static_cast<unsigned char>(s[i]));
  complete = false;
  if (l.n < 0) return 0;
  if (l.n == 0) return complete = true, 1;
  size_t k = 1;
  for (; k <= size_t(l.n); ++k) {
    if (i + k >= s.size()) return k;  // truncated: a prefix that more bytes could complete
    const unsigned char c = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (c >= l.lo && c <= l.hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return k;
  }
  complete = true;
  return k;
}
}  // namespace

size_t valid_seq_len(std::string_view s, size_t i) {
  bool complete;
  const size_t n = scan(s, i, complete);
  return complete ? n : 0;
}

bool is_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = valid_seq_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    bool complete;
    const size_t n = scan(s, i, complete);
    if (complete) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += n == 0 ? 1 : n;
    }
  }
  return out;
}

size_t complete_prefix(std::string_view s) {
  // Only the last (at most 3) bytes can be an unfinished sequence.
  const size_t from = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = from; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    bool complete;
    const size_t n = scan(s, i, complete);
    if (!complete && n > 0 && i + n == s.size()) return i;
  }
  return s.size();
}

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

namespace {
bool printable(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int, 256 + 68> from_cp{};  // 68 bytes are not printable, so code points stay below 324
  ByteMap() {
    from_cp.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      to_cp[size_t(b)] = printable(b) ? uint32_t(b) : next++;
      from_cp[to_cp[size_t(b)]] = b;
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

uint32_t byte_to_cp(uint8_t b) { return byte_map().to_cp[b]; }

int byte_from_cp(uint32_t cp) { return cp < byte_map().from_cp.size() ? byte_map().from_cp[cp] : -1; }

}  // namespace elm::utf8
