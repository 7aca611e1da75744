// The one Tokenizer implementation: HF's pipeline (added tokens -> normalizer -> pre-tokenizer ->
// BPE -> post-processor, and the decoder chain back). tokenizer.json and GGUF vocabularies both
// become a TokenizerParts and then this.
#pragma once
#include <memory>
#include <unordered_map>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace elm {

struct TokenizerParts {
  Vocab vocab;  // the model's vocabulary (added tokens may repeat entries of it)
  PairMap merges;
  BpeOptions bpe;
  std::vector<AddedToken> added;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  std::vector<int32_t> prefix, suffix;  // what add_special puts around the ids (e.g. BOS)
  std::string bos_token, eos_token, chat_template;
  bool lossless = false;  // decode(encode(text)) == text for all valid UTF-8 (byte-level, no normalizer)
};

class PipelineTokenizer final : public Tokenizer {
 public:
  explicit PipelineTokenizer(TokenizerParts parts);

  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  std::string decode_raw(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  std::string id_to_piece(int32_t id) const override;
  int32_t piece_to_id(std::string_view piece) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  bool is_special(int32_t id) const override;
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  std::string bos_token() const override { return p_.bos_token; }
  std::string eos_token() const override { return p_.eos_token; }
  std::string chat_template() const override { return p_.chat_template; }
  bool lossless() const override;

 private:
  void encode_normalized_run(std::string_view text, std::vector<int32_t>& out) const;
  void encode_words(std::string text, std::vector<int32_t>& out) const;
  std::string decode_impl(const std::vector<int32_t>& ids, bool skip_special, bool raw) const;

  TokenizerParts p_;
  std::unique_ptr<Bpe> bpe_;
  AddedTokenMatcher raw_matcher_, normalized_matcher_;
  std::unordered_map<int32_t, size_t> added_by_id_;  // id -> index into p_.added
  int64_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1;
};

}  // namespace elm
