#include "format/convert.h"

#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "format/checksum.h"
#include "format/elm_container.h"
#include "format/gguf_import.h"
#include "format/safetensors.h"
#include "graph/builders/family.h"
#include "quant/calibration.h"
#include "quant/quantize.h"
#include "runtime/perplexity.h"
#include "runtime/self_draft.h"
#include "runtime/model.h"

namespace elm {

namespace fs = std::filesystem;

namespace {

// What a converter reads: the model (graph, info; weights may be descriptions without data), how to
// fetch each weight's bytes, and the tokenizer and chat template as the source stores them.
struct Source {
  std::string format;  // "hf" or "gguf"
  std::shared_ptr<Model> model;
  std::function<TensorView(const std::string& name, std::vector<uint8_t>& buf)> fetch;
  std::string tokenizer_json, tokenizer_config;  // Hugging Face
  std::string tokenizer_gguf;                    // GGUF: tokenizer.* metadata as JSON
  std::string chat_template;
  std::string default_quant;
  std::vector<std::shared_ptr<MappedFile>> mappings;  // the source files the weights are read from
  // Where a tensor's source bytes lie (for release_pages once it is converted).
  std::function<std::pair<const void*, size_t>(const std::string& name, const TensorView& fetched)> source_range;
};

// Drops the pages of [p, p + n) when they lie in one of the source's mappings: clean file pages, read
// again if ever touched. Without this a conversion's resident memory grows to the size of its input.
void release_pages(const Source& s, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (const auto& f : s.mappings) {
    if (p < f->data() || p + n > f->data() + f->size()) continue;
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (uintptr_t(p) + page - 1) / page * page, hi = (uintptr_t(p) + n) / page * page;
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    return;
  }
}

std::string read_if_exists(const fs::path& p) { return fs::exists(p) ? read_text_file(p.string()) : ""; }

// The chat template of an HF directory: chat_template.jinja (transformers 4.43+), else the
// tokenizer_config.json entry (a string, or a list of named templates of which "default" is used).
std::string hf_chat_template(const fs::path& dir, const std::string& tokenizer_config) {
  std::string t = read_if_exists(dir / "chat_template.jinja");
  if (!t.empty() || tokenizer_config.empty()) return t;
  const nlohmann::json j = nlohmann::json::parse(tokenizer_config, nullptr, false);
  ELM_CHECK(!j.is_discarded() && j.is_object(), (dir / "tokenizer_config.json").string(), ": malformed JSON");
  if (!j.contains("chat_template")) return "";
  const auto& c = j["chat_template"];
  if (c.is_string()) return c.get<std::string>();
  if (c.is_array())
    for (const auto& e : c)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return e["template"].get<std::string>();
  return "";
}

// The model is built here rather than by Model::load_hf_dir: the converter stores the tokenizer files
// as they are instead of parsing them, and needs the mappings to release pages it has written.
Source open_hf(const std::string& dir) {
  Source s;
  s.format = "hf";
  s.default_quant = kDefaultQuant;
  const fs::path cfg = fs::path(dir) / "config.json";
  ELM_CHECK(fs::exists(cfg), dir, ": not a Hugging Face model directory (no config.json)");
  const HfConfig config = HfConfig::from_file(cfg.string());
  SafetensorsSet st = SafetensorsSet::open_dir(dir);
  s.model = std::make_shared<Model>();
  Model& m = *s.model;
  for (const auto& [name, view] : st.tensors) m.weights.add(name, view);
  for (auto& f : st.files) m.weights.keep_alive(f);
  s.mappings = st.files;
  s.source_range = [](const std::string&, const TensorView& v) { return std::make_pair(v.data, v.nbytes); };
  try {
    m.graph = build_from_hf(config, m.weights);
  } catch (const Error& e) {
    fail(dir, ": ", e.what());
  }
  m.info = read_hf_model_info(dir, config.json());
  m.info.vocab_size = m.graph.nodes[size_t(m.graph.output)].cols;
  const Model* mp = s.model.get();
  s.fetch = [mp](const std::string& name, std::vector<uint8_t>&) { return mp->weights.get(name); };
  s.tokenizer_json = read_if_exists(fs::path(dir) / "tokenizer.json");
  s.tokenizer_config = read_if_exists(fs::path(dir) / "tokenizer_config.json");
  s.chat_template = hf_chat_template(dir, s.tokenizer_config);
  return s;
}

Source open_gguf(const std::string& path) {
  Source s;
  s.format = "gguf";
  s.default_quant = "keep";
  auto imp = std::make_shared<GgufImport>(GgufImport::open(path));
  s.mappings = {imp->gguf.file};
  s.source_range = [imp](const std::string& name, const TensorView& v) {
    auto it = imp->tensors.find(name);
    if (it == imp->tensors.end() || it->second.src < 0) return std::make_pair(v.data, v.nbytes);
    const GgufTensor& t = imp->gguf.tensors[size_t(it->second.src)];
    return std::make_pair(static_cast<const void*>(t.data), t.nbytes);
  };
  s.model = imp->model(/*with_data=*/false);
  const Model* m = s.model.get();
  // Tensors of the file come through the importer; constants the builder made (RoPE tables) are owned
  // by the model.
  s.fetch = [imp, m](const std::string& name, std::vector<uint8_t>& buf) {
    auto it = imp->tensors.find(name);
    return it != imp->tensors.end() ? imp->materialize(it->second, buf) : m->weights.get(name);
  };
  s.tokenizer_gguf = imp->tokenizer_metadata().dump();
  s.chat_template = s.model->chat_template;
  return s;
}

bool same_format(const TensorView& a, const QuantSpec& s) {
  if (a.dtype != s.type) return false;
  return !is_quantized(a.dtype) || (a.group == s.group && a.scale_dtype == s.scale_dtype);
}

QuantSpec spec_of(const TensorView& v) { return {v.dtype, is_quantized(v.dtype) ? v.group : 0, v.scale_dtype}; }

// The activation statistics of the float model over the calibration text.
ActivationStats calibrate(const std::string& input, const ConvertOptions& o) {
  const std::shared_ptr<Model> model = Model::load(input);
  CalibrationOptions c;
  c.ctx = int(std::min<int64_t>(512, model->info.context_length > 0 ? model->info.context_length : 512));
  std::vector<int32_t> tokens;
  if (o.calib_file == kSelfCalibration) {
    // The model's own samples, one per chunk, decoded 32 at a time (the batch's caches stay small).
    c.ctx = int(std::max<int64_t>(2, std::min<int64_t>(c.ctx, o.calib_tokens)));
    const int64_t sequences = std::max<int64_t>(1, (o.calib_tokens + c.ctx - 1) / c.ctx);
    for (int64_t done = 0; done < sequences; done += 32) {
      const int n = int(std::min<int64_t>(32, sequences - done));
      const std::vector<int32_t> part = sample_calibration_tokens(model, n, c.ctx, 0x5e1f + uint64_t(done), o.threads,
                                                                  o.calib_progress);
      tokens.insert(tokens.end(), part.begin(), part.end());
    }
  } else {
    std::ifstream f(o.calib_file, std::ios::binary);
    ELM_CHECK(f, "cannot open the calibration text ", o.calib_file);
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ELM_CHECK(model->tokenizer, "'", input, "' has no tokenizer to read the calibration text with");
    tokens = model->tokenizer->encode(text, /*add_special=*/true);
    c.bos = chunk_bos(*model);
  }
  c.max_tokens = o.calib_tokens;
  if (!o.calib_gptq) c.max_gptq_cols = 0;
  c.threads = o.threads;
  c.progress = o.calib_progress;
  return collect_activation_stats(model, tokens, c);
}

}  // namespace

ConvertResult convert_to_elm(const std::string& input, const std::string& output, const ConvertOptions& o) {
  ELM_CHECK(fs::exists(input), "'", input, "' does not exist");
  ELM_CHECK(fs::absolute(input) != fs::absolute(output), "the output would overwrite the input");
  const bool is_dir = fs::is_directory(input);
  ELM_CHECK(is_dir || fs::path(input).extension() == ".gguf",
            "'", input, "': convert reads Hugging Face directories and .gguf files");
  Source src = is_dir ? open_hf(input) : open_gguf(input);
  const Model& m = *src.model;
  const Graph& g = m.graph;

  ConvertResult r;
  r.source_format = src.format;
  r.quant = o.quant.empty() ? src.default_quant : o.quant;
  const bool keep = r.quant == "keep";
  const QuantPolicy policy = keep ? QuantPolicy{} : QuantPolicy::parse(r.quant);
  ELM_CHECK(o.calib_file.empty() || !keep, "--calib needs a quantization to calibrate (--quant), not keep");
  const ActivationStats stats = o.calib_file.empty() ? ActivationStats{} : calibrate(input, o);
  r.calib_tokens = stats.tokens;

  // The tensors the graph uses, in the order it first reads them (the file pages in front to back).
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const Node& n : g.nodes)
    if (n.op == Op::Weight && seen.insert(n.name).second) names.push_back(n.name);
  for (const auto& n : names) r.source_bytes += m.weights.get(n).nbytes;

  ElmWriter w(output);
  nlohmann::json meta = {{"info", m.info.to_json()},
                         {"convert", {{"quant", r.quant}, {"source_format", src.format}, {"source", input}}}};
  // The self-draft's slices are cut from each source tensor right after it is written.
  std::map<std::string, std::vector<TensorSlice>> slices_of;
  if (!o.self_draft.empty()) {
    const SubModelSpec spec = SubModelSpec::parse(o.self_draft);
    SubModel sm = carve_submodel(g, m.weights.shapes(), spec);
    for (const TensorSlice& s : sm.slices) slices_of[s.source].push_back(s);
    meta["self_draft"] = {{"spec", spec.to_string()}, {"graph", sm.graph.to_json()}};
  }
  if (stats.tokens)
    meta["convert"]["calibration"] = {{"file", o.calib_file}, {"tokens", stats.tokens},
                                      {"method", stats.second_moment.empty() ? "weighted scales" : "gptq"}};
  w.add_text(SectionKind::Meta, meta.dump());
  w.add_text(SectionKind::Graph, g.to_json().dump());
  if (!src.tokenizer_json.empty()) w.add_text(SectionKind::TokenizerJson, src.tokenizer_json);
  if (!src.tokenizer_config.empty()) w.add_text(SectionKind::TokenizerConfig, src.tokenizer_config);
  if (!src.tokenizer_gguf.empty()) w.add_text(SectionKind::TokenizerGguf, src.tokenizer_gguf);
  if (!src.chat_template.empty()) w.add_text(SectionKind::ChatTemplate, src.chat_template);

  std::vector<TensorEntry> table;
  const int layers = layer_count(g);
  w.begin_section(SectionKind::Weights, uint32_t(kElmPageAlign));
  uint64_t done = 0;
  for (const std::string& name : names) {
    std::vector<uint8_t> buf, quantized;
    const TensorView in = src.fetch(name, buf);
    ELM_CHECK(in.data, "convert: no data for tensor '", name, "'");
    const QuantSpec spec = keep ? spec_of(in) : policy.spec_for(weight_role(g, name), in.shape, weight_layer(name), layers);
    TensorEntry e;
    e.name = name;
    if (same_format(in, spec)) {
      e.view = in;
    } else {
      const std::vector<float> f = to_f32(in);
      quantized = quantize_matrix(f.data(), in.rows(), in.cols(), spec, &e.view, stats.for_matrix(name, in.cols()));
      e.view.shape = in.shape;
      e.view.data = quantized.data();
    }
    ELM_CHECK(e.view.nbytes == tensor_nbytes(e.view.dtype, e.view.shape, e.view.group, e.view.scale_dtype),
              "convert: tensor '", name, "' has ", e.view.nbytes, " bytes for its format");
    w.pad_to(kElmTensorAlign);
    e.offset = w.section_pos();
    e.crc = crc32c(e.view.data, e.view.nbytes);
    w.write(e.view.data, e.view.nbytes);
    r.weight_bytes += e.view.nbytes;
    for (const TensorSlice& s : slices_of[name]) {
      std::vector<uint8_t> bytes;
      TensorEntry se;
      se.name = s.name;
      se.view = slice_tensor(e.view, s.rows, s.cols, bytes);
      w.pad_to(kElmTensorAlign);
      se.offset = w.section_pos();
      se.crc = crc32c(se.view.data, se.view.nbytes);
      w.write(se.view.data, se.view.nbytes);
      r.weight_bytes += se.view.nbytes;
      se.view.data = nullptr;
      table.push_back(std::move(se));
    }
    e.view.data = nullptr;
    table.push_back(std::move(e));
    const auto [source, source_bytes] = src.source_range(name, in);
    release_pages(src, source, source_bytes);
    done += in.nbytes;
    if (o.progress) o.progress(done, r.source_bytes, name);
  }
  w.end_section();
  w.add_section(SectionKind::Tensors, encode_tensor_table(table));
  w.finish();
  r.tensors = table.size();
  r.file_bytes = fs::file_size(output);
  return r;
}

}  // namespace elm
