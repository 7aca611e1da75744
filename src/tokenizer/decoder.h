// Decoders: turn the pieces of a list of ids back into text (ByteLevel, Metaspace, ByteFallback,
// Fuse, Strip, Replace, WordPiece, Sequence).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace elm {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (some decoders fuse them into one). With raw, byte tokens
  // stay raw bytes even when they do not form valid UTF-8 (the streaming decoder completes them
  // later); otherwise invalid bytes become U+FFFD the way HF does.
  virtual void decode(std::vector<std::string>& tokens, bool raw) const = 0;
  static std::unique_ptr<Decoder> from_json(const nlohmann::json& j);  // null JSON gives null
};

std::unique_ptr<Decoder> make_byte_level_decoder();
std::unique_ptr<Decoder> make_replace_decoder(const std::string& from, const std::string& to);
std::unique_ptr<Decoder> make_byte_fallback_decoder();
std::unique_ptr<Decoder> make_fuse_decoder();
std::unique_ptr<Decoder> make_strip_decoder(const std::string& content, int start, int stop);
std::unique_ptr<Decoder> make_sequence_decoder(std::vector<std::unique_ptr<Decoder>> parts);

}  // namespace elm
