// Tokenizer: Hugging Face tokenizer.json (+ tokenizer_config.json) implemented natively, producing
// exactly the ids the `tokenizers` library produces.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace elm {

class Tokenizer {
 public:
  // tokenizer_json: the text of tokenizer.json; config_json: the text of tokenizer_config.json, or
  // empty. Throws elm::Error on malformed or unsupported input.
  static std::shared_ptr<Tokenizer> from_json(std::string_view tokenizer_json, std::string_view config_json = "");
  // Reads tokenizer.json and, when present, tokenizer_config.json from a directory.
  static std::shared_ptr<Tokenizer> from_dir(const std::string& dir);
  // The vocabulary a GGUF file embeds, given its metadata (GgufFile::meta: tokenizer.ggml.model "llama" =
  // SentencePiece-style BPE by scores with byte fallback, "gpt2" = byte-level BPE with merges, the
  // tokens/scores/token_type/merges arrays, special ids, tokenizer.chat_template). .elm files store
  // these keys for GGUF-sourced models.
  static std::shared_ptr<Tokenizer> from_gguf(const nlohmann::json& gguf_metadata);

  virtual ~Tokenizer() = default;

  // Text -> ids. add_special applies the post-processor (e.g. BOS), like HF's add_special_tokens.
  // Invalid UTF-8 in `text` is replaced by U+FFFD before encoding.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false) const = 0;
  // Ids -> text through the decoder chain; skip_special drops special tokens.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  // Like decode, but bytes that are not (yet) valid UTF-8 stay as they are instead of becoming
  // U+FFFD: what StreamDecoder needs to hold back a character split across tokens.
  virtual std::string decode_raw(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual std::string id_to_piece(int32_t id) const = 0;          // the vocabulary string
  virtual int32_t piece_to_id(std::string_view piece) const = 0;  // -1 when absent
  virtual int64_t vocab_size() const = 0;
  virtual bool is_special(int32_t id) const = 0;

  virtual int32_t bos_id() const = 0;  // -1 when the tokenizer has none
  virtual int32_t eos_id() const = 0;
  virtual std::string bos_token() const = 0;  // strings chat templates use ("" when none)
  virtual std::string eos_token() const = 0;
  virtual std::string chat_template() const = 0;  // from tokenizer_config.json ("" when none)
  // True when decode(encode(text)) == text for every valid UTF-8 text (byte-level BPE without a
  // normalizer); fuzzing and tests use it to know which round trips to expect.
  virtual bool lossless() const = 0;
};

// Turns a stream of generated ids into text pieces as soon as they are complete UTF-8, with the same
// result as decoding the whole sequence at once (for output that is valid UTF-8; invalid bytes
// become U+FFFD either way, possibly grouped differently). Work per token is bounded: it decodes
// only a short window of recent ids, never the whole history.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true) : tok_(tok), skip_special_(skip_special) {}
  std::string push(int32_t id);  // the new text since the previous push (may be empty)
  std::string flush();           // whatever is held back (an incomplete UTF-8 tail)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool started_ = false;       // a token has been emitted before the window (decoders treat the first specially)
  std::vector<int32_t> window_;  // recent ids: one of context, then those whose text is not all out yet
  size_t emitted_ = 0;           // bytes of decode_raw(window_) already returned
};

}  // namespace elm
