#include "server_fixtures.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "util.h"

namespace elm::test {

std::vector<int32_t> CharTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special) ids.push_back(bos_id());
  for (char c : text) ids.push_back(int32_t(static_cast<unsigned char>(c)) >= 33 ? int32_t(c) - 33 : 0);
  return ids;
}

std::string CharTokenizer::decode(const std::vector<int32_t>& ids, bool) const {
  std::string s;
  for (int32_t id : ids) s += char_of(id);
  return s;
}

StoriesReference stories_reference() {
  std::ifstream f(shared("models/stories260k/reference_greedy.json"));
  const nlohmann::json j = nlohmann::json::parse(f);
  return {j["prompt_ids"].get<std::vector<int32_t>>(), j["greedy_ids"].get<std::vector<int32_t>>()};
}

std::shared_ptr<Model> stories_with_char_tokenizer() {
  auto m = Model::load(shared("models/stories260k/hf"));
  m->tokenizer = std::make_shared<CharTokenizer>();
  return m;
}

server::SchedulerOptions scheduler_options(int slots, int max_batch) {
  server::SchedulerOptions o;
  o.runtime.max_seqs = slots;
  o.runtime.n_ctx = 256;
  o.runtime.max_batch = max_batch;
  o.runtime.threads = 2;
  return o;
}

server::GenerationParams greedy_params(int max_tokens) {
  server::GenerationParams p;
  p.sampling.temperature = 0;
  p.max_tokens = max_tokens;
  p.stop_at_eos = false;
  return p;
}

}  // namespace elm::test
