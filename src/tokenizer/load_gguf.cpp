// Tokenizer::from_gguf: the vocabulary llama.cpp's GGUF files embed, rebuilt as the equivalent
// Hugging Face pipeline.
//   "llama": SentencePiece BPE. Pieces merge by score (the highest-scoring piece that two adjacent
//            symbols spell wins, leftmost on ties), unknown characters fall back to <0xNN> byte
//            tokens, spaces are U+2581 and a leading one is added (add_space_prefix).
//   "gpt2":  byte-level BPE with ranked merges, words split by the regex tokenizer.ggml.pre names.
#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "tokenizer/pipeline_tokenizer.h"
#include "tokenizer/utf8.h"

namespace elm {

namespace {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum TokenType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const nlohmann::json& need(const nlohmann::json& meta, const char* key) {
  ELM_CHECK(meta.contains(key), "GGUF metadata has no ", key);
  return meta[key];
}

bool flag(const nlohmann::json& meta, const char* key, bool def) {
  if (!meta.contains(key)) return def;
  ELM_CHECK(meta[key].is_boolean(), "GGUF metadata ", key, " must be a bool");
  return meta[key].get<bool>();
}

int32_t id_of(const nlohmann::json& meta, const char* key, int64_t n_vocab) {
  if (!meta.contains(key)) return -1;
  ELM_CHECK(meta[key].is_number_integer(), "GGUF metadata ", key, " must be an integer");
  const int64_t v = meta[key].get<int64_t>();
  return v >= 0 && v < n_vocab ? int32_t(v) : -1;
}

// Merges implied by SentencePiece scores: every way a normal piece splits into two pieces is a
// merge, ranked by the piece's score (equal scores share a rank, so position breaks the tie).
PairMap merges_from_scores(const Vocab& vocab, const std::vector<float>& scores, const std::vector<int>& types) {
  std::vector<int32_t> order;
  for (int32_t id = 0; id < int32_t(vocab.size()); ++id)
    if (types[size_t(id)] == kNormal && vocab.piece(id).size() > 1) order.push_back(id);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return scores[size_t(a)] > scores[size_t(b)]; });
  PairMap merges;
  merges.reserve(order.size() * 4);
  int32_t rank = -1;
  float last = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const int32_t id = order[k];
    if (k == 0 || scores[size_t(id)] != last) ++rank, last = scores[size_t(id)];
    const std::string& p = vocab.piece(id);
    for (size_t cut = utf8::seq_len(static_cast<unsigned char>(p[0])); cut < p.size(); cut += utf8::seq_len(static_cast<unsigned char>(p[cut]))) {
      const int32_t l = vocab.find(std::string_view(p).substr(0, cut));
      const int32_t r = vocab.find(std::string_view(p).substr(cut));
      if (l >= 0 && r >= 0) merges.add(l, r, {rank, id});
    }
  }
  return merges;
}

std::unique_ptr<PreTokenizer> pre_tokenizer_for(const std::string& pre, BpeOptions& bpe) {
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  if (pre.empty() || pre == "default" || pre == "gpt2" || pre == "gpt-2") {
    return make_byte_level(false, true);
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    parts.push_back(make_regex_split(kLlama3Pattern, SplitBehavior::Isolated));
    bpe.ignore_merges = true;  // Llama 3 emits a word that is a token as is
  } else if (pre == "qwen2" || pre == "qwen3") {
    parts.push_back(make_regex_split(kQwen2Pattern, SplitBehavior::Isolated));
  } else if (pre == "smollm") {
    parts.push_back(make_digits(true));
    parts.push_back(make_byte_level(false, true));
    return make_sequence_pre_tokenizer(std::move(parts));
  } else {
    fail("unsupported GGUF pre-tokenizer tokenizer.ggml.pre = '", pre, "'");
  }
  parts.push_back(make_byte_level(false, false));
  return make_sequence_pre_tokenizer(std::move(parts));
}

std::shared_ptr<Tokenizer> build(const nlohmann::json& meta) {
  ELM_CHECK(meta.is_object(), "GGUF metadata must be an object");
  const nlohmann::json& model_j = need(meta, "tokenizer.ggml.model");
  ELM_CHECK(model_j.is_string(), "tokenizer.ggml.model must be a string");
  const std::string model = model_j.get<std::string>();
  ELM_CHECK(model == "llama" || model == "gpt2", "unsupported GGUF tokenizer model '", model,
            "' (elm supports llama and gpt2)");

  const nlohmann::json& tokens = need(meta, "tokenizer.ggml.tokens");
  ELM_CHECK(tokens.is_array() && !tokens.empty(), "tokenizer.ggml.tokens must be a non-empty array");
  const int64_t n = int64_t(tokens.size());
  ELM_CHECK(n < (int64_t(1) << 24), "tokenizer.ggml.tokens is too large");
  std::vector<int> types(size_t(n), kNormal);
  if (meta.contains("tokenizer.ggml.token_type")) {
    const auto& t = meta["tokenizer.ggml.token_type"];
    ELM_CHECK(t.is_array() && int64_t(t.size()) == n, "tokenizer.ggml.token_type must have one entry per token");
    for (size_t i = 0; i < size_t(n); ++i) {
      ELM_CHECK(t[i].is_number_integer(), "tokenizer.ggml.token_type must hold integers");
      types[i] = t[i].get<int>();
    }
  }

  TokenizerParts p;
  p.vocab.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    ELM_CHECK(tokens[size_t(i)].is_string(), "tokenizer.ggml.tokens[", i, "] is not a string");
    std::string piece = tokens[size_t(i)].get<std::string>();
    ELM_CHECK(utf8::is_valid(piece), "tokenizer.ggml.tokens[", i, "] is not valid UTF-8");
    const int ty = types[size_t(i)];
    if (ty == kControl || ty == kUserDefined || ty == kUnknown) {
      AddedToken a;
      a.content = piece;
      a.id = int32_t(i);
      a.special = ty != kUserDefined;
      p.added.push_back(a);
    }
    p.vocab.set(int32_t(i), std::move(piece));
  }

  const int32_t bos = id_of(meta, "tokenizer.ggml.bos_token_id", n);
  const int32_t eos = id_of(meta, "tokenizer.ggml.eos_token_id", n);
  const int32_t unk = id_of(meta, "tokenizer.ggml.unknown_token_id", n);
  if (bos >= 0) p.bos_token = p.vocab.piece(bos);
  if (eos >= 0) p.eos_token = p.vocab.piece(eos);
  if (meta.contains("tokenizer.chat_template") && meta["tokenizer.chat_template"].is_string())
    p.chat_template = meta["tokenizer.chat_template"].get<std::string>();

  if (model == "llama") {
    std::vector<float> scores(size_t(n), 0.0f);
    if (meta.contains("tokenizer.ggml.scores")) {
      const auto& s = meta["tokenizer.ggml.scores"];
      ELM_CHECK(s.is_array() && int64_t(s.size()) == n, "tokenizer.ggml.scores must have one entry per token");
      for (size_t i = 0; i < size_t(n); ++i) {
        ELM_CHECK(s[i].is_number(), "tokenizer.ggml.scores must hold numbers");
        scores[i] = s[i].get<float>();
      }
    }
    p.merges = merges_from_scores(p.vocab, scores, types);
    p.bpe.byte_fallback = true;
    p.bpe.fuse_unk = true;
    p.bpe.unk_id = unk >= 0 ? unk : p.vocab.find("<unk>");
    const bool space_prefix = flag(meta, "tokenizer.ggml.add_space_prefix", true);
    std::vector<std::unique_ptr<Normalizer>> norm;
    if (space_prefix) norm.push_back(make_prepend_normalizer("\u2581"));
    norm.push_back(make_replace_normalizer(" ", "\u2581"));
    p.normalizer = make_sequence_normalizer(std::move(norm));
    std::vector<std::unique_ptr<Decoder>> dec;
    dec.push_back(make_replace_decoder("\u2581", " "));
    dec.push_back(make_byte_fallback_decoder());
    dec.push_back(make_fuse_decoder());
    if (space_prefix) dec.push_back(make_strip_decoder(" ", 1, 0));
    p.decoder = make_sequence_decoder(std::move(dec));
    if (flag(meta, "tokenizer.ggml.add_bos_token", true) && bos >= 0) p.prefix.push_back(bos);
  } else {
    const nlohmann::json& merges = need(meta, "tokenizer.ggml.merges");
    ELM_CHECK(merges.is_array(), "tokenizer.ggml.merges must be an array");
    p.merges.reserve(merges.size());
    std::string a, b;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      ELM_CHECK(merges[rank].is_string(), "tokenizer.ggml.merges[", rank, "] is not a string");
      const std::string& m = merges[rank].get_ref<const std::string&>();
      const size_t sp = m.find(' ');
      ELM_CHECK(sp != std::string::npos, "tokenizer.ggml.merges[", rank, "] is not 'a b'");
      const std::string_view l = std::string_view(m).substr(0, sp), r = std::string_view(m).substr(sp + 1);
      const int32_t il = p.vocab.find(l), ir = p.vocab.find(r);
      std::string joined(l);
      joined += r;
      const int32_t ij = p.vocab.find(joined);
      if (il >= 0 && ir >= 0 && ij >= 0) p.merges.add(il, ir, {int32_t(rank), ij});
    }
    const std::string pre = meta.contains("tokenizer.ggml.pre") && meta["tokenizer.ggml.pre"].is_string()
                                ? meta["tokenizer.ggml.pre"].get<std::string>()
                                : "";
    p.pre_tokenizer = pre_tokenizer_for(pre, p.bpe);
    p.decoder = make_byte_level_decoder();
    p.lossless = true;
    if (flag(meta, "tokenizer.ggml.add_bos_token", false) && bos >= 0) p.prefix.push_back(bos);
  }
  if (flag(meta, "tokenizer.ggml.add_eos_token", false) && eos >= 0) p.suffix.push_back(eos);
  return std::make_shared<PipelineTokenizer>(std::move(p));
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::from_gguf(const nlohmann::json& meta) {
  try {
    return build(meta);
  } catch (const nlohmann::json::exception& e) {
    fail("GGUF tokenizer metadata: ", e.what());
  }
}

}  // namespace elm
