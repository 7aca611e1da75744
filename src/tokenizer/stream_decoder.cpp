#include "tokenizer/tokenizer.h"

namespace elm {

namespace {
// Length of the longest prefix of s that does not end inside a UTF-8 sequence.
size_t complete_utf8_prefix(const std::string& s) {
  size_t n = s.size();
  size_t i = n;
  // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
  size_t back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i, ++back;
  if (i == 0) return n;
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  size_t need = lead < 0x80 ? 1 : (lead >> 5) == 6 ? 2 : (lead >> 4) == 14 ? 3 : (lead >> 3) == 30 ? 4 : 1;
  return back + 1 >= need ? n : i - 1;
}
}  // namespace

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  const std::string all = tok_.decode(ids_, skip_special_);
  const size_t ready = complete_utf8_prefix(all);
  if (ready <= emitted_) return {};
  std::string out = all.substr(emitted_, ready - emitted_);
  emitted_ = ready;
  return out;
}

std::string StreamDecoder::flush() {
  const std::string all = tok_.decode(ids_, skip_special_);
  if (all.size() <= emitted_) return {};
  std::string out = all.substr(emitted_);
  emitted_ = all.size();
  return out;
}

}  // namespace elm
