#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace elm {

// The window holds one context token (already emitted) followed by the tokens whose text is not
// fully out. Decoders treat the first token of a sequence specially (Strip, Metaspace drop its
// leading space), so the context token keeps every later token from being "first" and its text
// is accounted for in emitted_. Decoding the window and taking the bytes past emitted_ gives
// exactly the bytes the whole-sequence decode adds.
std::string StreamDecoder::push(int32_t id) {
  window_.push_back(id);
  const std::string all = tok_.decode_raw(window_, skip_special_);
  const size_t ready = utf8::complete_prefix(all);
  std::string out;
  if (ready > emitted_) out = utf8::sanitize(std::string_view(all).substr(emitted_, ready - emitted_));
  emitted_ = std::max(emitted_, ready);
  if (ready < all.size()) return out;  // a character is still incomplete: keep the whole window

  // Everything is out: shrink the window to the last token that has text of its own.
  for (size_t k = window_.size(); k-- > 0;) {
    const std::vector<int32_t> ctx{window_[k]};
    const std::string t = tok_.decode_raw(ctx, skip_special_);
    if (!t.empty()) {
      window_ = ctx;
      emitted_ = t.size();
      started_ = true;
      return out;
    }
  }
  if (!started_) window_.clear(), emitted_ = 0;  // only text-less tokens so far: the next one is first
  return out;
}

std::string StreamDecoder::flush() {
  const std::string all = tok_.decode_raw(window_, skip_special_);
  std::string out;
  if (all.size() > emitted_) out = utf8::sanitize(std::string_view(all).substr(emitted_));
  emitted_ = all.size();
  return out;
}

}  // namespace elm
