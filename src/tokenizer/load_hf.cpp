// Tokenizer::from_json / from_dir: Hugging Face tokenizer.json (+ tokenizer_config.json).
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/json_reader.h"
#include "tokenizer/pipeline_tokenizer.h"

namespace elm {

namespace {

// tokenizer.json with model.vocab and model.merges streamed into the tables (they are 99% of the
// bytes); everything else as JSON.
struct RawTokenizerJson {
  nlohmann::json doc = nlohmann::json::object();  // without model.vocab / model.merges
  nlohmann::json model = nlohmann::json::object();
  Vocab vocab;
  bool has_vocab = false;
  std::vector<std::pair<std::string, std::string>> merges;
  bool has_merges = false;
};

void read_merges(JsonReader& r, RawTokenizerJson& t) {
  r.expect('[');
  bool first = true;
  std::string a, b;
  while (r.next_item(first)) {
    if (r.peek() == '[') {  // ["a", "b"] (tokenizers >= 0.20)
      r.expect('[');
      bool f2 = true;
      ELM_CHECK(r.next_item(f2), "a merge must have two parts");
      r.string(a);
      ELM_CHECK(r.next_item(f2), "a merge must have two parts");
      r.string(b);
      if (r.next_item(f2)) r.error("a merge must have two parts");
    } else {  // "a b"
      std::string s;
      r.string(s);
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) r.error("a merge must be 'a b'");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    }
    t.merges.emplace_back(std::move(a), std::move(b));
  }
  t.has_merges = true;
}

RawTokenizerJson read_tokenizer_json(std::string_view text) {
  RawTokenizerJson t;
  JsonReader r(text, "tokenizer.json");
  r.expect('{');
  bool first = true;
  std::string key;
  while (r.next_key(key, first)) {
    if (key != "model" || r.peek() != '{') {
      t.doc[key] = r.value();
      continue;
    }
    r.expect('{');
    bool mfirst = true;
    std::string mkey;
    while (r.next_key(mkey, mfirst)) {
      if (mkey == "vocab" && r.peek() == '{') {  // BPE / WordPiece: {"piece": id, ...}
        r.expect('{');
        bool vfirst = true;
        std::string piece;
        t.vocab.reserve(1 << 16);
        while (r.next_key(piece, vfirst)) {
          const int64_t id = r.integer();
          if (id < 0 || id >= (int64_t(1) << 24)) r.error("token id out of range");
          if (t.vocab.has_id(int32_t(id))) r.error("two tokens share one id");
          t.vocab.set(int32_t(id), piece);
        }
        t.has_vocab = true;
      } else if (mkey == "merges" && r.peek() == '[') {
        read_merges(r, t);
      } else {
        t.model[mkey] = r.value();
      }
    }
  }
  r.end();
  return t;
}

std::string token_content(const nlohmann::json& v) {  // "x" or {"content": "x", ...}
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

std::string chat_template_of(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {  // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
    for (const auto& e : v)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template")) return e["template"].get<std::string>();
  }
  return "";
}

// The ids a post-processor puts before and after a single sequence.
void read_post_processor(const nlohmann::json& j, TokenizerParts& p) {
  if (j.is_null()) return;
  const std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") return;  // only moves offsets
  if (type == "Sequence") {
    for (const auto& q : j.at("processors")) read_post_processor(q, p);
    return;
  }
  if (type == "TemplateProcessing") {
    const auto& specials = j.at("special_tokens");
    bool after = false;
    for (const auto& item : j.at("single")) {
      if (item.contains("Sequence")) {
        after = true;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      ELM_CHECK(specials.contains(name), "TemplateProcessing: special token '", name, "' is not defined");
      for (const auto& id : specials[name].at("ids")) (after ? p.suffix : p.prefix).push_back(id.get<int32_t>());
    }
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {  // [CLS] A [SEP]
    p.prefix.push_back(j.at("cls").at(1).get<int32_t>());
    p.suffix.push_back(j.at("sep").at(1).get<int32_t>());
    return;
  }
  fail("unsupported post-processor type '", type, "'");
}

bool is_byte_level_lossless(const RawTokenizerJson& t) {
  // Byte-level BPE without a normalizer and without a prefix space round-trips any text.
  const auto& pre = t.doc.value("pre_tokenizer", nlohmann::json());
  const auto& dec = t.doc.value("decoder", nlohmann::json());
  if (!t.doc.value("normalizer", nlohmann::json()).is_null()) return false;
  if (dec.is_null() || dec.value("type", "") != "ByteLevel") return false;
  const std::string pre_text = pre.dump();
  return pre_text.find("\"ByteLevel\"") != std::string::npos && pre_text.find("\"add_prefix_space\":true") == std::string::npos;
}

std::shared_ptr<Tokenizer> build(RawTokenizerJson t, std::string_view config_json) {
  TokenizerParts p;
  const std::string type = t.model.value("type", "BPE");
  ELM_CHECK(type == "BPE", "unsupported tokenizer model type '", type, "' (elm supports BPE)");
  ELM_CHECK(t.has_vocab, "the model has no vocab object");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto& v = t.model.value(k, nlohmann::json());
    ELM_CHECK(v.is_null() || v.get<std::string>().empty(), "BPE ", k, " is not supported");
  }
  ELM_CHECK(t.model.value("dropout", nlohmann::json()).is_null() || t.model["dropout"].get<double>() == 0.0,
            "BPE dropout is not supported");
  p.vocab = std::move(t.vocab);
  p.bpe.byte_fallback = t.model.value("byte_fallback", false);
  p.bpe.fuse_unk = t.model.value("fuse_unk", false);
  p.bpe.ignore_merges = t.model.value("ignore_merges", false);
  const auto& unk = t.model.value("unk_token", nlohmann::json());
  if (unk.is_string()) p.bpe.unk_id = p.vocab.find(unk.get<std::string>());

  p.merges.reserve(t.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < t.merges.size(); ++rank) {
    const auto& [a, b] = t.merges[rank];
    const int32_t ia = p.vocab.find(a), ib = p.vocab.find(b);
    joined.assign(a).append(b);
    const int32_t ij = p.vocab.find(joined);
    ELM_CHECK(ia >= 0 && ib >= 0 && ij >= 0, "merge '", a, " ", b, "' uses a token that is not in the vocab");
    p.merges.add(ia, ib, {int32_t(rank), ij});
  }

  if (t.doc.contains("added_tokens")) {
    for (const auto& a : t.doc["added_tokens"]) {
      AddedToken at;
      at.id = a.at("id").get<int32_t>();
      at.content = a.at("content").get<std::string>();
      at.special = a.value("special", false);
      at.lstrip = a.value("lstrip", false);
      at.rstrip = a.value("rstrip", false);
      at.single_word = a.value("single_word", false);
      at.normalized = a.value("normalized", !at.special);
      p.added.push_back(std::move(at));
    }
  }
  p.normalizer = Normalizer::from_json(t.doc.value("normalizer", nlohmann::json()));
  p.pre_tokenizer = PreTokenizer::from_json(t.doc.value("pre_tokenizer", nlohmann::json()));
  p.decoder = Decoder::from_json(t.doc.value("decoder", nlohmann::json()));
  read_post_processor(t.doc.value("post_processor", nlohmann::json()), p);
  p.lossless = is_byte_level_lossless(t);

  if (!config_json.empty()) {
    const nlohmann::json c = nlohmann::json::parse(config_json, nullptr, false);
    ELM_CHECK(!c.is_discarded() && c.is_object(), "tokenizer_config.json: malformed JSON");
    p.bos_token = token_content(c.value("bos_token", nlohmann::json()));
    p.eos_token = token_content(c.value("eos_token", nlohmann::json()));
    p.chat_template = chat_template_of(c.value("chat_template", nlohmann::json()));
  }
  return std::make_shared<PipelineTokenizer>(std::move(p));
}

}  // namespace

std::shared_ptr<Tokenizer> Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json) {
  try {
    return build(read_tokenizer_json(tokenizer_json), config_json);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer.json: unexpected structure: ", e.what());
  }
}

std::shared_ptr<Tokenizer> Tokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path tj = fs::path(dir) / "tokenizer.json";
  ELM_CHECK(fs::exists(tj), dir, ": no tokenizer.json");
  const fs::path cfg = fs::path(dir) / "tokenizer_config.json";
  const std::string config = fs::exists(cfg) ? read_text_file(cfg.string()) : std::string();
  try {
    return from_json(read_text_file(tj.string()), config);
  } catch (const Error& e) {
    fail(dir, ": ", e.what());
  }
}

}  // namespace elm
