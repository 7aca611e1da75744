#include "format/gguf_import.h"

#include <cstring>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/half.h"
#include "format/ggml_blocks.h"
#include "graph/builder.h"
#include "graph/builders/family.h"
#include "runtime/model.h"

namespace elm {

namespace {

// GGUF architecture -> the HF model_type whose builder makes its graph.
const std::map<std::string, std::string>& architectures() {
  static const std::map<std::string, std::string> a = {
      {"llama", "llama"}, {"qwen2", "qwen2"}, {"qwen3", "qwen3"}, {"gemma3", "gemma3_text"}};
  return a;
}

// Per-layer tensor names: GGUF suffix after "blk.N." -> HF suffix after "model.layers.N.".
std::map<std::string, std::string> layer_names(const std::string& arch) {
  std::map<std::string, std::string> m = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_q_norm.weight", "self_attn.q_norm.weight"},
      {"attn_k_norm.weight", "self_attn.k_norm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
  };
  if (arch == "gemma3") {  // four norms per layer
    m["ffn_norm.weight"] = "pre_feedforward_layernorm.weight";
    m["post_attention_norm.weight"] = "post_attention_layernorm.weight";
    m["post_ffw_norm.weight"] = "post_feedforward_layernorm.weight";
  }
  return m;
}

// Shape in PyTorch order (GGUF stores innermost first).
Shape hf_shape(const GgufTensor& t) { return Shape(t.dims.rbegin(), t.dims.rend()); }

// The elm format a ggml type becomes.
TensorView elm_desc(const GgufTensor& t, const std::string& name) {
  TensorView v;
  v.shape = hf_shape(t);
  switch (GgmlType(t.type)) {
    case GgmlType::F32: v.dtype = DType::F32; break;
    case GgmlType::F16: v.dtype = DType::F16; break;
    case GgmlType::BF16: v.dtype = DType::BF16; break;
    case GgmlType::Q8_0: v.dtype = DType::Q8; break;
    case GgmlType::Q4_0: v.dtype = DType::Q4; break;
    case GgmlType::Q4_1: v.dtype = DType::Q4M; break;
    default:
      // Formats elm has no lossless counterpart for are decoded; F16 keeps their values to about
      // 1e-3 relative (far inside their own quantization error) at a quarter of F32's size.
      ELM_CHECK(ggml_can_decode(t.type), "GGUF tensor '", t.name, "' (", name, ") has type ", ggml_type_name(t.type),
                ", which elm does not import yet (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, "
                "Q6_K, IQ4_NL, IQ4_XS are)");
      v.dtype = DType::F16;
  }
  if (is_quantized(v.dtype)) {
    v.group = 32;
    v.scale_dtype = DType::F16;
    ELM_CHECK(v.shape.size() == 2, "GGUF tensor '", t.name, "': quantized tensors must be matrices");
  }
  v.nbytes = tensor_nbytes(v.dtype, v.shape, v.group, v.scale_dtype);
  return v;
}

// HF row r of a Q or K projection was stored by llama.cpp at this row: per head of D rows, HF order
// [first half, second half] became interleaved pairs.
int64_t permuted_row(int64_t r, int64_t rows, int64_t heads) {
  const int64_t D = rows / heads, h = r / D, w = r % D;
  return h * D + 2 * (w % (D / 2)) + w / (D / 2);
}

// Repacks row `src_row` of a Q8_0 / Q4_0 / Q4_1 tensor into row `dst_row` of an elm Q8 / Q4 / Q4M
// tensor: quants to the quants plane, block scales (and mins) to their planes, bits unchanged.
void repack_row(const GgufTensor& t, int64_t src_row, int64_t dst_row, int64_t cols, const QuantLayout& l,
                uint8_t* dst) {
  const int64_t nb = cols / 32;
  const size_t row_bytes = ggml_nbytes(t.type, uint64_t(cols));
  const uint8_t* p = t.data + size_t(src_row) * row_bytes;
  for (int64_t b = 0; b < nb; ++b) {
    const size_t si = size_t(dst_row * nb + b);
    switch (GgmlType(t.type)) {
      case GgmlType::Q8_0:
        std::memcpy(dst + l.scales_offset + si * 2, p, 2);
        std::memcpy(dst + size_t(dst_row * cols + b * 32), p + 2, 32);
        p += 34;
        break;
      case GgmlType::Q4_0:
        std::memcpy(dst + l.scales_offset + si * 2, p, 2);
        std::memcpy(dst + size_t(dst_row * cols + b * 32) / 2, p + 2, 16);
        p += 18;
        break;
      case GgmlType::Q4_1:
        std::memcpy(dst + l.scales_offset + si * 2, p, 2);
        std::memcpy(dst + l.mins_offset + si * 2, p + 2, 2);
        std::memcpy(dst + size_t(dst_row * cols + b * 32) / 2, p + 4, 16);
        p += 20;
        break;
      default: fail("cannot repack ggml type ", ggml_type_name(t.type));
    }
  }
}

class ConfigReader {
 public:
  ConfigReader(const GgufFile& g, const std::string& arch) : g_(g), arch_(arch) {}
  std::string key(const std::string& k) const { return arch_ + "." + k; }
  bool has(const std::string& k) const { return g_.has(key(k)); }
  // A per-model integer; llama.cpp writes some as per-layer arrays, which must then be uniform here.
  int64_t i(const std::string& k) const {
    const std::string full = key(k);
    ELM_CHECK(g_.has(full), "GGUF metadata has no '", full, "'");
    const auto& v = g_.meta[full];
    if (v.is_array() && !v.empty()) {
      for (const auto& e : v)
        ELM_CHECK(e.is_number_integer() && e == v[0], "GGUF metadata '", full,
                  "' varies per layer, which elm does not support for ", arch_);
      return v[0].get<int64_t>();
    }
    return g_.get_int(full);
  }
  int64_t i(const std::string& k, int64_t def) const { return has(k) ? i(k) : def; }
  double f(const std::string& k, double def) const { return g_.get_float(key(k), def); }
  std::string s(const std::string& k, const std::string& def) const { return g_.get_string(key(k), def); }

 private:
  const GgufFile& g_;
  std::string arch_;
};

void put_id(nlohmann::json& cfg, const GgufFile& g, const char* gguf_key, const char* hf_key) {
  if (!g.has(gguf_key) || !g.meta[gguf_key].is_number_integer()) return;
  const int64_t v = g.meta[gguf_key].get<int64_t>();
  if (v >= 0 && v < (int64_t(1) << 31)) cfg[hf_key] = v;  // llama.cpp writes 2^32 - 1 for "none"
}

}  // namespace

GgufImport GgufImport::open(const std::string& path) {
  try {
    return from(GgufFile::open(path));
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    fail(path, ": ", msg);
  }
}

GgufImport GgufImport::from(GgufFile gguf) {
  GgufImport imp;
  imp.gguf = std::move(gguf);
  const GgufFile& g = imp.gguf;
  imp.architecture = g.get_string("general.architecture", "");
  const std::string& arch = imp.architecture;
  auto type_it = architectures().find(arch);
  if (type_it == architectures().end()) {
    std::string known;
    for (const auto& [k, v] : architectures()) known += (known.empty() ? "" : ", ") + k;
    fail("GGUF architecture '", arch, "' is not supported (elm imports: ", known, ")");
  }
  const ConfigReader c(g, arch);

  // Tensor names and formats.
  const std::map<std::string, std::string> per_layer = layer_names(arch);
  const std::regex blk(R"(blk\.(\d+)\.(.+))");
  const GgufTensor* rope_freqs = nullptr;
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const GgufTensor& t = g.tensors[i];
    std::string hf;
    std::smatch m;
    if (t.name == "token_embd.weight") hf = "model.embed_tokens.weight";
    else if (t.name == "output_norm.weight") hf = "model.norm.weight";
    else if (t.name == "output.weight") hf = "lm_head.weight";
    else if (t.name == "rope_freqs.weight") {
      rope_freqs = &t;
      continue;
    } else if (std::regex_match(t.name, m, blk) && per_layer.count(m[2].str())) {
      hf = "model.layers." + m[1].str() + "." + per_layer.at(m[2].str());
    } else {
      fail("GGUF tensor '", t.name, "' has no counterpart in elm's ", arch, " graph");
    }
    Tensor e;
    e.src = int64_t(i);
    e.desc = elm_desc(t, hf);
    // Gemma's RMSNorm scales by (1 + w); llama.cpp stores 1 + w so its norm is plain: undo it.
    if (arch == "gemma3" && hf.size() > 11 && hf.compare(hf.size() - 11, 11, "norm.weight") == 0) {
      e.add = -1.f;
      e.desc.dtype = DType::F32;
      e.desc.group = 0;
      e.desc.nbytes = tensor_nbytes(DType::F32, e.desc.shape);
    }
    imp.tensors.emplace(hf, std::move(e));
  }
  ELM_CHECK(imp.tensors.count("model.embed_tokens.weight"), "GGUF file has no token_embd.weight");

  // config.json.
  nlohmann::json& cfg = imp.config;
  cfg["model_type"] = type_it->second;
  const int64_t hidden = c.i("embedding_length"), heads = c.i("attention.head_count");
  const int64_t kv_heads = c.i("attention.head_count_kv", heads);
  ELM_CHECK(hidden > 0 && heads > 0 && kv_heads > 0 && heads % kv_heads == 0, "GGUF: inconsistent attention sizes");
  const int64_t head_dim = c.i("attention.key_length", hidden / heads);
  ELM_CHECK(c.i("attention.value_length", head_dim) == head_dim, "GGUF: value_length != key_length is not supported");
  // Bounds far above any real model, so that a hostile file cannot make the builders allocate absurdly.
  const int64_t layers = c.i("block_count"), ffn = c.i("feed_forward_length"), ctx = c.i("context_length", 4096);
  ELM_CHECK(layers > 0 && layers <= 1024, "GGUF: block_count ", layers, " is out of range");
  ELM_CHECK(hidden <= (1 << 20) && ffn > 0 && ffn <= (1 << 22) && heads <= 4096 && head_dim > 0 && head_dim <= 4096,
            "GGUF: model sizes out of range");
  ELM_CHECK(ctx > 0 && ctx <= (int64_t(1) << 24), "GGUF: context_length ", ctx, " is out of range");
  cfg["hidden_size"] = hidden;
  cfg["intermediate_size"] = ffn;
  cfg["num_hidden_layers"] = layers;
  cfg["num_attention_heads"] = heads;
  cfg["num_key_value_heads"] = kv_heads;
  cfg["head_dim"] = head_dim;
  cfg["vocab_size"] = imp.tensors.at("model.embed_tokens.weight").desc.shape.at(0);
  cfg["max_position_embeddings"] = ctx;
  cfg["rms_norm_eps"] = c.f("attention.layer_norm_rms_epsilon", 1e-6);
  cfg["rope_theta"] = c.f("rope.freq_base", 10000.0);
  cfg["tie_word_embeddings"] = !imp.tensors.count("lm_head.weight");
  cfg["hidden_act"] = arch == "gemma3" ? "gelu_pytorch_tanh" : "silu";
  const int64_t rot = c.i("rope.dimension_count", head_dim);
  ELM_CHECK(rot > 0 && rot <= head_dim && rot % 2 == 0, "GGUF: rope.dimension_count ", rot, " with head dim ", head_dim);
  if (rot != head_dim) cfg["partial_rotary_factor"] = double(rot) / double(head_dim);
  const std::string scaling = c.s("rope.scaling.type", "none");
  if (scaling == "linear") {
    cfg["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.f("rope.scaling.factor", 1.0)}};
  } else if (scaling == "yarn") {
    cfg["rope_scaling"] = {{"rope_type", "yarn"},
                           {"factor", c.f("rope.scaling.factor", 1.0)},
                           {"original_max_position_embeddings", c.i("rope.scaling.original_context_length")},
                           {"beta_fast", c.f("rope.scaling.yarn_beta_fast", 32.0)},
                           {"beta_slow", c.f("rope.scaling.yarn_beta_slow", 1.0)}};
  } else {
    ELM_CHECK(scaling == "none", "GGUF: RoPE scaling '", scaling, "' is not supported");
  }
  if (arch == "gemma3") {
    // llama.cpp's Gemma 3: local layers use theta 10000; every 6th layer is global unless the file says
    // otherwise; queries scale by head_dim^-0.5 except in the 27B model (62 layers): (hidden/heads)^-0.5.
    cfg["rope_local_base_freq"] = 10000.0;
    const int64_t window = c.i("attention.sliding_window", 4096);
    ELM_CHECK(window > 0 && window <= ctx, "GGUF: sliding_window ", window, " is out of range");
    cfg["sliding_window"] = window;
    const std::string pk = c.key("attention.sliding_window_pattern");
    if (g.has(pk) && g.meta[pk].is_array()) {
      std::vector<std::string> types;
      for (const auto& e : g.meta[pk]) {
        ELM_CHECK(e.is_boolean(), "GGUF: '", pk, "' must hold booleans");
        types.push_back(e.get<bool>() ? "sliding_attention" : "full_attention");
      }
      cfg["layer_types"] = types;
    } else {
      cfg["sliding_window_pattern"] = c.i("attention.sliding_window_pattern", 6);
    }
    cfg["query_pre_attn_scalar"] = cfg["num_hidden_layers"] == 62 ? hidden / heads : head_dim;
  }
  put_id(cfg, g, "tokenizer.ggml.bos_token_id", "bos_token_id");
  put_id(cfg, g, "tokenizer.ggml.eos_token_id", "eos_token_id");

  // llama.cpp keeps the Q and K rows of "llama" models permuted for its interleaved-pair RoPE.
  if (arch == "llama") {
    for (auto& [name, t] : imp.tensors) {
      const bool q = name.find("self_attn.q_proj.weight") != std::string::npos;
      const bool k = name.find("self_attn.k_proj.weight") != std::string::npos;
      if (!q && !k) continue;
      t.permute_heads = q ? heads : kv_heads;
      ELM_CHECK(t.desc.shape[0] % t.permute_heads == 0 && (t.desc.shape[0] / t.permute_heads) % 2 == 0, "GGUF tensor '",
                g.tensors[size_t(t.src)].name, "' does not split into ", t.permute_heads, " heads");
    }
  }
  // llama3-style RoPE scaling arrives as per-frequency divisors; the decoder builder takes the
  // resulting tables as the constants "rope.inv_freq.<layer>" when they exist already.
  if (rope_freqs) {
    ELM_CHECK(rope_freqs->type == uint32_t(GgmlType::F32) && rope_freqs->numel() == uint64_t(rot / 2),
              "GGUF: rope_freqs.weight must be F32 with ", rot / 2, " values");
    std::vector<float> inv = rope_inv_freq(cfg["rope_theta"].get<double>(), rot);
    for (size_t i = 0; i < inv.size(); ++i) {
      float div;
      std::memcpy(&div, rope_freqs->data + 4 * i, 4);
      inv[i] /= div;
    }
    for (int64_t l = 0; l < cfg["num_hidden_layers"].get<int64_t>(); ++l) {
      Tensor e;
      e.values = inv;
      e.desc.dtype = DType::F32;
      e.desc.shape = {int64_t(inv.size())};
      e.desc.nbytes = inv.size() * 4;
      imp.tensors.emplace("rope.inv_freq." + std::to_string(l), std::move(e));
    }
  }
  return imp;
}

TensorView GgufImport::materialize(const Tensor& t, std::vector<uint8_t>& buf) const {
  TensorView v = t.desc;
  if (t.src < 0) {
    v.data = t.values.data();
    return v;
  }
  const GgufTensor& s = gguf.tensors.at(size_t(t.src));
  const int64_t cols = v.cols(), rows = v.rows();
  auto src_row = [&](int64_t r) { return t.permute_heads ? permuted_row(r, rows, t.permute_heads) : r; };
  const bool same_type = (s.type == uint32_t(GgmlType::F32) && v.dtype == DType::F32) ||
                         (s.type == uint32_t(GgmlType::F16) && v.dtype == DType::F16) ||
                         (s.type == uint32_t(GgmlType::BF16) && v.dtype == DType::BF16);
  if (same_type && !t.permute_heads && t.add == 0) {
    v.data = s.data;  // used in place
    return v;
  }
  buf.assign(v.nbytes, 0);
  if (same_type && t.add == 0) {
    const size_t row_bytes = size_t(cols) * dtype_size(v.dtype);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(buf.data() + size_t(r) * row_bytes, s.data + size_t(src_row(r)) * row_bytes, row_bytes);
  } else if (is_quantized(v.dtype)) {
    const QuantLayout l = v.quant();
    for (int64_t r = 0; r < rows; ++r) repack_row(s, src_row(r), r, cols, l, buf.data());
  } else {  // decoded: to F32 (values changed by `add`) or F16
    ELM_CHECK(v.dtype == DType::F32 || v.dtype == DType::F16, "GGUF import: cannot produce ", dtype_name(v.dtype));
    const size_t row_bytes = ggml_nbytes(s.type, uint64_t(cols));
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      ggml_decode_row(s.type, s.data + size_t(src_row(r)) * row_bytes, cols, row.data());
      for (float& x : row) x += t.add;
      if (v.dtype == DType::F32) {
        std::memcpy(buf.data() + size_t(r * cols) * 4, row.data(), size_t(cols) * 4);
      } else {
        auto* out = reinterpret_cast<uint16_t*>(buf.data()) + r * cols;
        for (int64_t c = 0; c < cols; ++c) out[c] = f32_to_f16(row[size_t(c)]);
      }
    }
  }
  v.data = buf.data();
  return v;
}

nlohmann::json GgufImport::tokenizer_metadata() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : gguf.meta.items())
    if (k.rfind("tokenizer.", 0) == 0) j[k] = v;
  return j;
}

std::shared_ptr<Model> GgufImport::model(bool with_data) const {
  auto m = std::make_shared<Model>();
  for (const auto& [name, t] : tensors) {
    if (!with_data) {
      m->weights.add(name, t.desc);
      continue;
    }
    std::vector<uint8_t> buf;
    TensorView v = materialize(t, buf);
    if (v.data == buf.data()) m->weights.add_owned_bytes(name, v, std::move(buf));
    else if (t.src < 0) m->weights.add_owned(name, v.shape, t.values);
    else m->weights.add(name, v);
  }
  if (gguf.file) m->weights.keep_mapped(gguf.file);
  const std::string label = gguf.file ? gguf.file->path() : "GGUF";
  const HfConfig config(this->config);
  try {
    m->graph = build_from_hf(config, m->weights);
  } catch (const Error& e) {
    fail(label, ": ", e.what());
  }
  ModelInfo& info = m->info;
  info.family = config.model_type();
  info.name = gguf.get_string("general.name", std::filesystem::path(label).stem().string());
  info.source = label;
  info.vocab_size = m->graph.nodes[size_t(m->graph.output)].cols;
  info.context_length = config.i("max_position_embeddings");
  info.bos_token_id = int32_t(config.i("bos_token_id", -1));
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (!gguf.has(k) || !gguf.meta[k].is_number_integer()) continue;
    const int64_t id = gguf.meta[k].get<int64_t>();
    if (id >= 0 && id < info.vocab_size && !info.is_eos(int32_t(id))) info.eos_token_ids.push_back(int32_t(id));
  }
  m->chat_template = gguf.get_string("tokenizer.chat_template", "");
  if (gguf.has("tokenizer.ggml.model")) {
    try {
      m->tokenizer = Tokenizer::from_gguf(gguf.meta);
    } catch (const Error& e) {
      fail(label, ": vocabulary: ", e.what());
    }
  }
  return m;
}

std::shared_ptr<Model> load_gguf(const std::string& path) { return GgufImport::open(path).model(true); }

}  // namespace elm
