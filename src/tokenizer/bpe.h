// Byte-pair encoding of one pre-tokenized word, as Hugging Face's BPE model does it: start from
// characters (or their bytes, with byte fallback), then repeatedly apply the lowest-ranked merge,
// leftmost first. SentencePiece-style vocabularies (merge by score) use the same code with ranks
// derived from the scores.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace elm {

struct BpeOptions {
  bool byte_fallback = false;  // unknown characters become <0xNN> byte tokens
  bool fuse_unk = false;       // consecutive unknowns become one unk token
  bool ignore_merges = false;  // a word that is itself a token is emitted whole (Llama 3)
  int32_t unk_id = -1;         // -1: unknown characters are dropped, as HF does without unk_token
};

class Bpe {
 public:
  Bpe(const Vocab& vocab, PairMap merges, BpeOptions options);
  void encode(std::string_view word, std::vector<int32_t>& out) const;
  const PairMap& merges() const { return merges_; }

 private:
  int32_t char_id(std::string_view ch, uint32_t cp) const;
  const Vocab& vocab_;
  PairMap merges_;
  BpeOptions opt_;
  std::vector<int32_t> bmp_ids_;       // id of each single-code-point token below U+10000, or -1
  std::array<int32_t, 256> byte_ids_;  // <0xNN> tokens, -1 when absent
};

}  // namespace elm
