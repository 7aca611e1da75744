#include "runtime/text_stream.h"

#include <algorithm>

namespace elm {

TextStream::TextStream(const Tokenizer* tok, std::vector<std::string> stop) {
  if (tok) decoder_ = std::make_unique<StreamDecoder>(*tok);
  for (auto& s : stop)
    if (!s.empty()) stop_.push_back(std::move(s));
}

size_t TextStream::held_back() const {
  size_t hold = 0;
  for (const auto& st : stop_)
    for (size_t k = std::min(st.size() - 1, text_.size()); k > hold; --k)
      if (text_.compare(text_.size() - k, k, st, 0, k) == 0) {
        hold = k;
        break;
      }
  return hold;
}

bool TextStream::push(int32_t id) {
  if (stopped_ || !decoder_) return stopped_;
  const size_t before = text_.size();
  text_ += decoder_->push(id);
  // A stop string can only end in the new text; it may start up to its length - 1 bytes earlier.
  size_t cut = std::string::npos;
  for (const auto& st : stop_) {
    const size_t from = before >= st.size() ? before - st.size() + 1 : 0;
    const size_t at = text_.find(st, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    text_.resize(cut);
    ready_ = text_.size();
    stopped_ = true;
    return true;
  }
  ready_ = std::max(ready_, text_.size() - held_back());
  return false;
}

void TextStream::finish() {
  if (!stopped_ && decoder_) text_ += decoder_->flush();
  ready_ = text_.size();
}

std::string TextStream::take() {
  const size_t end = std::min(ready_, text_.size());
  if (end <= taken_) return {};
  std::string out = text_.substr(taken_, end - taken_);
  taken_ = end;
  return out;
}

}  // namespace elm
