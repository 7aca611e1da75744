// elm tokenize: text -> token ids and pieces, for checking a tokenizer against another implementation.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/error.h"
#include "format/gguf.h"
#include "runtime/model.h"

namespace elm::cli {

namespace {
struct TokenizeArgs {
  std::string model;
  std::string text;
  bool specials = false;
  bool json = false;
};

// A tokenizer directory (tokenizer.json, with or without weights) or a GGUF file loads just the
// vocabulary; anything else loads the model.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  ELM_CHECK(fs::exists(path), "'", path, "' does not exist");
  if (fs::is_directory(path)) return Tokenizer::from_dir(path);
  if (fs::path(path).extension() == ".gguf") return Tokenizer::from_gguf(GgufFile::open(path).meta);
  std::shared_ptr<Model> m = Model::load(path);
  ELM_CHECK(m->tokenizer, path, " has no tokenizer");
  return m->tokenizer;
}

int run(const TokenizeArgs& a) {
  ELM_CHECK(!a.model.empty(), "give the model or tokenizer directory with -m");
  std::string text = a.text;
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  const std::shared_ptr<Tokenizer> tok = load_tokenizer(a.model);
  const std::vector<int32_t> ids = tok->encode(text, a.specials);
  if (a.json) {
    nlohmann::json j = {{"ids", ids}, {"pieces", nlohmann::json::array()}};
    for (int32_t id : ids) j["pieces"].push_back(tok->id_to_piece(id));
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  for (int32_t id : ids) {
    // The piece as a JSON string: spaces, newlines and control bytes stay visible.
    const std::string piece = nlohmann::json(tok->id_to_piece(id)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%d\t%s\n", id, piece.c_str());
  }
  return 0;
}
}  // namespace

void register_tokenize(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* sub = app.add_subcommand("tokenize", "print the token ids and pieces of a text");
  sub->add_option("-m,--model", a->model, "model (HF directory, .elm, .gguf) or a directory with tokenizer.json")->required();
  sub->add_flag("--specials", a->specials, "apply the post-processor (e.g. add BOS), like HF's add_special_tokens");
  sub->add_flag("--json", a->json, "print one JSON object {\"ids\": [...], \"pieces\": [...]}");
  sub->add_option("text", a->text, "the text, or - to read it from standard input")->required();
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
