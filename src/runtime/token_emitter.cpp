#include "runtime/token_emitter.h"

#include <algorithm>

namespace elm {

TokenEmitter::TokenEmitter(const Model& m, const GenerateOptions& o, GenerateResult& r,
                           const std::function<bool(const std::string&)>& on_text)
    : m_(m), o_(o), r_(r), on_text_(on_text) {
  if (m.tokenizer) stream_ = std::make_unique<StreamDecoder>(*m.tokenizer);
}

// The longest tail of the text that is a proper prefix of some stop string.
size_t TokenEmitter::held_back() const {
  const std::string& text = r_.text;
  size_t hold = 0;
  for (const auto& st : o_.stop)
    for (size_t k = std::min(st.size() - 1, text.size()); k > 0; --k)
      if (text.compare(text.size() - k, k, st, 0, k) == 0) {
        hold = std::max(hold, k);
        break;
      }
  return hold;
}

bool TokenEmitter::push(int32_t tok) {
  if (o_.stop_at_eos && m_.info.is_eos(tok)) {
    r_.reason = StopReason::Eos;
    return false;
  }
  r_.tokens.push_back(tok);
  if (stream_) r_.text += stream_->push(tok);
  bool stopped = false;
  for (const auto& st : o_.stop) {
    const size_t from = emitted_ > st.size() ? emitted_ - st.size() : 0;
    const size_t at = st.empty() ? std::string::npos : r_.text.find(st, from);
    if (at != std::string::npos) {
      r_.text.resize(at);
      stopped = true;
    }
  }
  if (stopped) {
    r_.reason = StopReason::StopString;
    return false;
  }
  const size_t ready = r_.text.size() - held_back();
  if (on_text_ && ready > emitted_) {
    const bool go_on = on_text_(r_.text.substr(emitted_, ready - emitted_));
    emitted_ = ready;
    if (!go_on) {
      r_.reason = StopReason::Cancelled;
      return false;
    }
  }
  return true;
}

void TokenEmitter::finish() {
  if (stream_ && r_.reason != StopReason::StopString) r_.text += stream_->flush();
  if (on_text_ && r_.text.size() > emitted_ && r_.reason != StopReason::Cancelled) on_text_(r_.text.substr(emitted_));
}

}  // namespace elm
