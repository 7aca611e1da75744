// Pre-tokenizers: split normalized text into the words BPE runs on (regex splits, byte-level
// mapping, Metaspace, Digits...).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace elm {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by its sub-pieces, in order.
  virtual void split(std::vector<std::string>& pieces) const = 0;
  static std::unique_ptr<PreTokenizer> from_json(const nlohmann::json& j);  // null JSON gives null
};

// How a Split keeps the delimiters it finds (HF's SplitDelimiterBehavior).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

std::unique_ptr<PreTokenizer> make_regex_split(const std::string& regex, SplitBehavior b, bool invert = false);
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizer> make_digits(bool individual);
std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts);

// GPT-2's word pattern, which ByteLevel(use_regex=true) applies.
extern const char* const kGpt2Pattern;

}  // namespace elm
