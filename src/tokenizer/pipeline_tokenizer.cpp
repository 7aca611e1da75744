#include "tokenizer/pipeline_tokenizer.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace elm {

PipelineTokenizer::PipelineTokenizer(TokenizerParts parts) : p_(std::move(parts)) {
  bpe_ = std::make_unique<Bpe>(p_.vocab, std::move(p_.merges), p_.bpe);
  vocab_size_ = p_.vocab.size();
  for (size_t k = 0; k < p_.added.size(); ++k) {
    const AddedToken& t = p_.added[k];
    ELM_CHECK(t.id >= 0, "added token '", t.content, "' has a negative id");
    added_by_id_[t.id] = k;
    vocab_size_ = std::max<int64_t>(vocab_size_, int64_t(t.id) + 1);
    (t.normalized ? normalized_matcher_ : raw_matcher_).add(t);
  }
  bos_id_ = p_.bos_token.empty() ? -1 : piece_to_id(p_.bos_token);
  eos_id_ = p_.eos_token.empty() ? -1 : piece_to_id(p_.eos_token);
}

std::vector<int32_t> PipelineTokenizer::encode(std::string_view text, bool add_special) const {
  std::string clean;
  if (!utf8::is_valid(text)) {
    clean = utf8::sanitize(text);
    text = clean;
  }
  std::vector<int32_t> out;
  if (add_special) out = p_.prefix;
  std::vector<AddedTokenMatcher::Segment> segs;
  raw_matcher_.split(text, segs);
  for (const auto& s : segs) {
    if (s.id >= 0) out.push_back(s.id);
    else encode_normalized_run(text.substr(s.begin, s.end - s.begin), out);
  }
  if (add_special) out.insert(out.end(), p_.suffix.begin(), p_.suffix.end());
  return out;
}

// Normalizes a run of plain text, then splits it on the added tokens that match normalized text.
void PipelineTokenizer::encode_normalized_run(std::string_view text, std::vector<int32_t>& out) const {
  std::string n(text);
  if (p_.normalizer) p_.normalizer->normalize(n);
  if (normalized_matcher_.empty()) return encode_words(std::move(n), out);
  std::vector<AddedTokenMatcher::Segment> segs;
  normalized_matcher_.split(n, segs);
  for (const auto& s : segs) {
    if (s.id >= 0) out.push_back(s.id);
    else encode_words(n.substr(s.begin, s.end - s.begin), out);
  }
}

void PipelineTokenizer::encode_words(std::string text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  if (!p_.pre_tokenizer) return bpe_->encode(text, out);
  std::vector<std::string> pieces;
  pieces.push_back(std::move(text));
  p_.pre_tokenizer->split(pieces);
  for (const std::string& w : pieces) bpe_->encode(w, out);
}

std::string PipelineTokenizer::decode_impl(const std::vector<int32_t>& ids, bool skip_special, bool raw) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    const auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) tokens.push_back(p_.added[it->second].content);
    else if (p_.vocab.has_id(id)) tokens.push_back(p_.vocab.piece(id));
    // Ids outside the vocabulary (models pad their embedding past it) decode to nothing.
  }
  std::string out;
  if (p_.decoder) {
    p_.decoder->decode(tokens, raw);
    for (const std::string& t : tokens) out += t;
  } else {
    for (size_t k = 0; k < tokens.size(); ++k) out += (k ? " " : "") + tokens[k];
  }
  return raw ? out : utf8::sanitize(out);
}

std::string PipelineTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return decode_impl(ids, skip_special, false);
}
std::string PipelineTokenizer::decode_raw(const std::vector<int32_t>& ids, bool skip_special) const {
  return decode_impl(ids, skip_special, true);
}

std::string PipelineTokenizer::id_to_piece(int32_t id) const {
  const auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return p_.added[it->second].content;
  return p_.vocab.has_id(id) ? p_.vocab.piece(id) : std::string();
}

int32_t PipelineTokenizer::piece_to_id(std::string_view piece) const {
  for (const AddedToken& t : p_.added)
    if (t.content == piece) return t.id;
  return p_.vocab.find(piece);
}

bool PipelineTokenizer::is_special(int32_t id) const {
  const auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && p_.added[it->second].special;
}

bool PipelineTokenizer::lossless() const { return p_.lossless; }

}  // namespace elm
