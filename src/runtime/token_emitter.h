// Generated tokens -> the caller's text stream: incremental detokenization, EOS, stop strings, and
// holding back text that could still be the start of a stop string. generate() and speculative
// generation share it, so both stop at exactly the same token.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/generate.h"

namespace elm {

class TokenEmitter {
 public:
  // Fills r.tokens, r.text and r.reason; on_text as in generate().
  TokenEmitter(const Model& m, const GenerateOptions& o, GenerateResult& r,
               const std::function<bool(const std::string& text)>& on_text);

  // Appends one generated token. Returns false when generation ends with it: r.reason is then Eos
  // (the token is dropped), StopString (r.text cut at the stop string) or Cancelled.
  bool push(int32_t token);
  // Passes whatever text is still held back to on_text (call once, after the last push).
  void finish();

 private:
  size_t held_back() const;
  const Model& m_;
  const GenerateOptions& o_;
  GenerateResult& r_;
  const std::function<bool(const std::string&)>& on_text_;
  std::unique_ptr<StreamDecoder> stream_;
  size_t emitted_ = 0;  // bytes of r.text already passed to on_text
};

}  // namespace elm
