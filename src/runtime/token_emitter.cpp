#include "runtime/token_emitter.h"

namespace elm {

TokenEmitter::TokenEmitter(const Model& m, const GenerateOptions& o, GenerateResult& r,
                           const std::function<bool(const std::string&)>& on_text)
    : m_(m), o_(o), r_(r), on_text_(on_text), text_(m.tokenizer.get(), o.stop) {}

bool TokenEmitter::push(int32_t tok) {
  if (o_.stop_at_eos && m_.info.is_eos(tok)) {
    r_.reason = StopReason::Eos;
    return false;
  }
  r_.tokens.push_back(tok);
  if (text_.push(tok)) {
    r_.reason = StopReason::StopString;
    return false;  // the text before the stop string goes out in finish()
  }
  const std::string piece = text_.take();
  if (on_text_ && !piece.empty() && !on_text_(piece)) {
    r_.reason = StopReason::Cancelled;
    return false;
  }
  return true;
}

void TokenEmitter::finish() {
  if (r_.reason != StopReason::Cancelled) {
    text_.finish();
    const std::string rest = text_.take();
    if (on_text_ && !rest.empty()) on_text_(rest);
  }
  r_.text = text_.text();
}

}  // namespace elm
