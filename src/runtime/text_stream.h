// Generated token ids -> the text a user may be shown so far. Decodes incrementally (only complete
// UTF-8 is released), cuts the text at the first stop string, and holds back a tail that could still
// grow into a stop string, so a stop string never reaches the user even when it spans tokens.
// Used by generate() and by the server's scheduler, one per sequence.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace elm {

class TextStream {
 public:
  // tok may be null (a model without a tokenizer): the text then stays empty.
  TextStream(const Tokenizer* tok, std::vector<std::string> stop);

  // Appends a generated token. Returns true when a stop string appeared: the text is cut before it
  // and everything up to there is released.
  bool push(int32_t id);
  // The end of generation for another reason (EOS, length, context): releases the held-back tail and
  // any incomplete UTF-8 bytes.
  void finish();

  // Released text not returned by an earlier take().
  std::string take();
  const std::string& text() const { return text_; }  // everything decoded so far (after a cut)
  bool stopped() const { return stopped_; }

 private:
  size_t held_back() const;  // bytes at the end of text_ that could start a stop string
  std::unique_ptr<StreamDecoder> decoder_;
  std::vector<std::string> stop_;
  std::string text_;
  size_t ready_ = 0;  // bytes of text_ released
  size_t taken_ = 0;  // bytes of text_ returned by take()
  bool stopped_ = false;
};

}  // namespace elm
