// What the server tests share: the stories260k model with its float64 greedy reference, and a
// one-character-per-token tokenizer whose text is easy to predict by hand.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "server/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace elm::test {

// Token id i <-> the character char(33 + i % 90), so ids map to printable ASCII. Special ids: none.
class CharTokenizer : public Tokenizer {
 public:
  static char char_of(int32_t id) { return char(33 + id % 90); }
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids, bool) const override;
  std::string decode_raw(const std::vector<int32_t>& ids, bool skip) const override { return decode(ids, skip); }
  std::string id_to_piece(int32_t id) const override { return std::string(1, char_of(id)); }
  int32_t piece_to_id(std::string_view p) const override { return p.size() == 1 ? int32_t(p[0]) - 33 : -1; }
  int64_t vocab_size() const override { return 512; }
  bool is_special(int32_t) const override { return false; }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  std::string bos_token() const override { return ""; }
  std::string eos_token() const override { return ""; }
  std::string chat_template() const override { return ""; }
  bool lossless() const override { return false; }
};

struct StoriesReference {
  std::vector<int32_t> prompt;  // [BOS]
  std::vector<int32_t> greedy;  // the 100 greedy continuation ids
};
StoriesReference stories_reference();  // from ../shared/models/stories260k/reference_greedy.json

// stories260k (../shared/models/stories260k/hf) with a CharTokenizer in place of its own.
std::shared_ptr<Model> stories_with_char_tokenizer();

// A scheduler of `slots` slots with a 256-token context, on 2 threads.
server::SchedulerOptions scheduler_options(int slots, int max_batch = 64);
// Greedy generation of at most max_tokens tokens, not stopped by EOS.
server::GenerationParams greedy_params(int max_tokens);

}  // namespace elm::test
