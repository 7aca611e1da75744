// Generated tokens -> a GenerateResult and the caller's text callback: EOS, stop strings and
// cancellation on top of TextStream (incremental detokenization, stop-string hold-back). generate()
// and speculative generation share it, so both stop at exactly the same token.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "runtime/generate.h"
#include "runtime/text_stream.h"

namespace elm {

class TokenEmitter {
 public:
  // Fills r.tokens, r.text and r.reason; on_text as in generate().
  TokenEmitter(const Model& m, const GenerateOptions& o, GenerateResult& r,
               const std::function<bool(const std::string& text)>& on_text);

  // Appends one generated token. Returns false when generation ends with it: r.reason is then Eos
  // (the token is dropped), StopString (the text cut before the stop string) or Cancelled.
  bool push(int32_t token);
  // Passes whatever text is still held back to on_text and sets r.text (call once, at the end).
  void finish();

 private:
  const Model& m_;
  const GenerateOptions& o_;
  GenerateResult& r_;
  const std::function<bool(const std::string&)>& on_text_;
  TextStream text_;
};

}  // namespace elm
