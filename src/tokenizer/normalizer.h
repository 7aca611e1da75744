// Normalizers: the text rewrites tokenizer.json applies before pre-tokenization (Unicode forms,
// Replace, Prepend, Lowercase, Strip...). Offsets are not tracked: elm only needs ids.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace elm {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;  // s is valid UTF-8 and stays so
  // Builds one from its tokenizer.json object; null JSON gives null. Error for unknown types.
  static std::unique_ptr<Normalizer> from_json(const nlohmann::json& j);
};

// Concrete ones other code builds directly (GGUF vocabularies).
std::unique_ptr<Normalizer> make_replace_normalizer(const std::string& from, const std::string& to);
std::unique_ptr<Normalizer> make_prepend_normalizer(const std::string& prefix);
std::unique_ptr<Normalizer> make_sequence_normalizer(std::vector<std::unique_ptr<Normalizer>> parts);

// Unicode normalization form of s ("NFC", "NFD", "NFKC", "NFKD") through utf8proc.
std::string unicode_normalize(const std::string& s, const std::string& form);

}  // namespace elm
