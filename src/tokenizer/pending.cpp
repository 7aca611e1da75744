// Placeholder until the tokenizer.json implementation lands (issue #4); removed by it.
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace elm {

std::shared_ptr<Tokenizer> Tokenizer::from_json(std::string_view, std::string_view) {
  fail("tokenizers are not supported yet");
}
std::shared_ptr<Tokenizer> Tokenizer::from_dir(const std::string& dir) {
  fail(dir, ": tokenizers are not supported yet");
}

}  // namespace elm

namespace elm {

std::shared_ptr<Tokenizer> Tokenizer::from_gguf(const nlohmann::json&) {
  fail("GGUF vocabularies are not supported yet");
}

}  // namespace elm
