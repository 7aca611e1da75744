#include "gguf_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "format/safetensors.h"
#include "graph/builders/hf_config.h"

namespace elm::test {

namespace {

template <class T>
void append(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

void append_str(std::vector<uint8_t>& out, const std::string& s) {
  append<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

constexpr size_t kAlign = 32;

}  // namespace

std::vector<uint8_t> gguf_string(const std::string& s) {
  std::vector<uint8_t> out;
  append_str(out, s);
  return out;
}

void GgufWriter::kv(const std::string& key, uint32_t type, const std::vector<uint8_t>& payload) {
  append_str(kv_, key);
  append<uint32_t>(kv_, type);
  kv_.insert(kv_.end(), payload.begin(), payload.end());
  ++n_kv_;
}

void GgufWriter::u32(const std::string& key, uint32_t v) {
  std::vector<uint8_t> p;
  append(p, v);
  kv(key, 4, p);
}
void GgufWriter::i32(const std::string& key, int32_t v) {
  std::vector<uint8_t> p;
  append(p, v);
  kv(key, 5, p);
}
void GgufWriter::f32(const std::string& key, float v) {
  std::vector<uint8_t> p;
  append(p, v);
  kv(key, 6, p);
}
void GgufWriter::str(const std::string& key, const std::string& v) { kv(key, 8, gguf_string(v)); }
void GgufWriter::boolean(const std::string& key, bool v) { kv(key, 7, {uint8_t(v)}); }

void GgufWriter::strings(const std::string& key, const std::vector<std::string>& v) {
  std::vector<uint8_t> p;
  append<uint32_t>(p, 8);
  append<uint64_t>(p, v.size());
  for (const auto& s : v) append_str(p, s);
  kv(key, 9, p);
}
void GgufWriter::floats(const std::string& key, const std::vector<float>& v) {
  std::vector<uint8_t> p;
  append<uint32_t>(p, 6);
  append<uint64_t>(p, v.size());
  for (float f : v) append(p, f);
  kv(key, 9, p);
}
void GgufWriter::ints(const std::string& key, const std::vector<int32_t>& v) {
  std::vector<uint8_t> p;
  append<uint32_t>(p, 5);
  append<uint64_t>(p, v.size());
  for (int32_t i : v) append(p, i);
  kv(key, 9, p);
}

void GgufWriter::tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type,
                        std::vector<uint8_t> data) {
  tensors_.push_back({name, shape, type, std::move(data)});
}

std::vector<uint8_t> GgufWriter::bytes() const {
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  append<uint32_t>(out, 3);
  append<uint64_t>(out, tensors_.size());
  append<uint64_t>(out, n_kv_);
  out.insert(out.end(), kv_.begin(), kv_.end());
  uint64_t off = 0;
  for (const T& t : tensors_) {
    append_str(out, t.name);
    append<uint32_t>(out, uint32_t(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) append<uint64_t>(out, uint64_t(*it));
    append<uint32_t>(out, uint32_t(t.type));
    append<uint64_t>(out, off);
    off = (off + t.data.size() + kAlign - 1) / kAlign * kAlign;
  }
  out.resize((out.size() + kAlign - 1) / kAlign * kAlign, 0);
  for (const T& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize((out.size() + kAlign - 1) / kAlign * kAlign, 0);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const std::vector<uint8_t> b = bytes();
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// ---- ggml blocks, from the layout table: Q8_0 {f16 d; i8 q[32]}, Q4_0 {f16 d; u8 qs[16]},
// Q4_1 {f16 d; f16 m; u8 qs[16]}; nibbles: element j low of qs[j], element j + 16 high.

std::vector<uint8_t> ggml_quantize(GgmlType type, const float* x, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out;
  auto put_f16 = [&](float v) { append<uint16_t>(out, f32_to_f16(v)); };
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < cols / 32; ++b) {
      const float* v = x + r * cols + b * 32;
      float lo = v[0], hi = v[0], amax = 0, signed_max = 0;
      for (int j = 0; j < 32; ++j) {
        lo = std::min(lo, v[j]), hi = std::max(hi, v[j]);
        if (std::fabs(v[j]) > amax) amax = std::fabs(v[j]), signed_max = v[j];
      }
      if (type == GgmlType::Q8_0) {
        const float d = amax / 127;
        put_f16(d);
        for (int j = 0; j < 32; ++j) out.push_back(uint8_t(int8_t(d ? std::lround(v[j] / d) : 0)));
      } else if (type == GgmlType::Q4_0) {
        const float d = signed_max / -8;
        put_f16(d);
        uint8_t q[32];
        for (int j = 0; j < 32; ++j) q[j] = uint8_t(std::clamp(d ? std::lround(v[j] / d + 8) : 8l, 0l, 15l));
        for (int j = 0; j < 16; ++j) out.push_back(uint8_t(q[j] | q[j + 16] << 4));
      } else if (type == GgmlType::Q4_1) {
        const float d = (hi - lo) / 15;
        put_f16(d);
        put_f16(lo);
        uint8_t q[32];
        for (int j = 0; j < 32; ++j) q[j] = uint8_t(std::clamp(d ? std::lround((v[j] - lo) / d) : 0l, 0l, 15l));
        for (int j = 0; j < 16; ++j) out.push_back(uint8_t(q[j] | q[j + 16] << 4));
      } else {
        fail("ggml_quantize: unsupported type");
      }
    }
  return out;
}

std::vector<float> ggml_decode_row(GgmlType type, const uint8_t* data, int64_t r, int64_t cols) {
  const size_t block = type == GgmlType::Q8_0 ? 34 : type == GgmlType::Q4_0 ? 18 : 20;
  const uint8_t* p = data + size_t(r * cols / 32) * block;
  auto f16 = [](const uint8_t* q) {
    uint16_t h;
    std::memcpy(&h, q, 2);
    return f16_to_f32(h);
  };
  std::vector<float> out(static_cast<size_t>(cols));
  for (int64_t b = 0; b < cols / 32; ++b, p += block) {
    const float d = f16(p);
    for (int j = 0; j < 32; ++j) {
      float x;
      if (type == GgmlType::Q8_0) {
        x = d * float(int8_t(p[2 + j]));
      } else {
        const uint8_t* qs = p + (type == GgmlType::Q4_0 ? 2 : 4);
        const int q = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
        x = type == GgmlType::Q4_0 ? d * float(q - 8) : d * float(q) + f16(p + 2);
      }
      out[size_t(b * 32 + j)] = x;
    }
  }
  return out;
}

// ---- Hugging Face -> GGUF ----

namespace {

std::string gguf_name(const std::string& hf, bool gemma) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::string pre = "model.layers.";
  ELM_CHECK(hf.rfind(pre, 0) == 0, "hf_to_gguf: unexpected tensor ", hf);
  const size_t dot = hf.find('.', pre.size());
  const std::string layer = hf.substr(pre.size(), dot - pre.size()), rest = hf.substr(dot + 1);
  const std::vector<std::pair<std::string, std::string>> map = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"post_attention_layernorm.weight", gemma ? "post_attention_norm.weight" : "ffn_norm.weight"},
      {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
      {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
  };
  for (const auto& [h, g] : map)
    if (rest == h) return "blk." + layer + "." + g;
  fail("hf_to_gguf: unexpected tensor ", hf);
}

// llama.cpp's permutation of Q/K rows: per head, HF row (half, i) goes to row (i, half).
std::vector<float> permute_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t heads) {
  std::vector<float> out(w.size());
  const int64_t D = rows / heads;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t half = 0; half < 2; ++half)
      for (int64_t i = 0; i < D / 2; ++i)
        std::copy_n(w.begin() + (h * D + half * D / 2 + i) * cols, cols, out.begin() + (h * D + 2 * i + half) * cols);
  return out;
}

std::vector<uint8_t> as_bytes(const std::vector<float>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return {p, p + v.size() * 4};
}

}  // namespace

void hf_to_gguf(const std::string& dir, const std::string& out, GgmlType matrix_type, bool decoded) {
  const HfConfig c = HfConfig::from_file(dir + "/config.json");
  const std::string type = c.model_type();
  const std::string arch = type == "gemma3_text" ? "gemma3" : type;
  const bool gemma = arch == "gemma3";
  const int64_t heads = c.i("num_attention_heads"), kv_heads = c.i("num_key_value_heads"), layers = c.i("num_hidden_layers");
  const int64_t head_dim = c.i("head_dim", c.i("hidden_size") / heads);

  GgufWriter w;
  w.str("general.architecture", arch);
  w.str("general.name", "tiny-" + type);
  w.u32(arch + ".context_length", uint32_t(c.i("max_position_embeddings")));
  w.u32(arch + ".embedding_length", uint32_t(c.i("hidden_size")));
  w.u32(arch + ".block_count", uint32_t(layers));
  w.u32(arch + ".feed_forward_length", uint32_t(c.i("intermediate_size")));
  w.u32(arch + ".attention.head_count", uint32_t(heads));
  w.u32(arch + ".attention.head_count_kv", uint32_t(kv_heads));
  w.u32(arch + ".attention.key_length", uint32_t(head_dim));
  w.u32(arch + ".attention.value_length", uint32_t(head_dim));
  w.u32(arch + ".rope.dimension_count", uint32_t(head_dim));
  w.f32(arch + ".attention.layer_norm_rms_epsilon", float(c.f("rms_norm_eps")));
  const RopeParams rope = c.rope(gemma ? "full_attention" : "");
  w.f32(arch + ".rope.freq_base", float(rope.theta));
  if (gemma) {
    w.u32(arch + ".attention.sliding_window", uint32_t(c.i("sliding_window")));
    std::vector<uint8_t> pattern;  // array of bools: true = sliding
    const auto types = c.strings("layer_types");
    pattern.resize(4);
    const uint32_t bool_type = 7;
    std::memcpy(pattern.data(), &bool_type, 4);
    append<uint64_t>(pattern, types.size());
    for (const auto& t : types) pattern.push_back(t == "sliding_attention");
    w.kv(arch + ".attention.sliding_window_pattern", 9, pattern);
  }
  // A placeholder vocabulary: ids only matter here.
  const int64_t vocab = c.i("vocab_size");
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < vocab; ++i) tokens.push_back("<t" + std::to_string(i) + ">");
  w.str("tokenizer.ggml.model", "llama");
  w.strings("tokenizer.ggml.tokens", tokens);
  w.floats("tokenizer.ggml.scores", std::vector<float>(size_t(vocab), 0.f));
  w.ints("tokenizer.ggml.token_type", std::vector<int32_t>(size_t(vocab), 1));
  w.u32("tokenizer.ggml.bos_token_id", uint32_t(c.i("bos_token_id", 1)));
  w.u32("tokenizer.ggml.eos_token_id", uint32_t(c.i("eos_token_id", 2)));
  w.str("tokenizer.chat_template", "{{ messages }}");

  if (rope.type == "llama3") {  // llama.cpp's rope_freqs: one divisor per frequency
    const auto& p = rope.raw;
    const double factor = p["factor"], lo = p["low_freq_factor"], hi = p["high_freq_factor"],
                 old_ctx = p["original_max_position_embeddings"];
    std::vector<float> div;
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      const double freq = 1.0 / std::pow(rope.theta, double(2 * i) / double(head_dim));
      const double wavelen = 2 * M_PI / freq;
      if (wavelen < old_ctx / hi) div.push_back(1.f);
      else if (wavelen > old_ctx / lo) div.push_back(float(factor));
      else {
        const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
        div.push_back(float(1 / ((1 - smooth) / factor + smooth)));
      }
    }
    w.tensor("rope_freqs.weight", {int64_t(div.size())}, GgmlType::F32, as_bytes(div));
  } else {
    ELM_CHECK(rope.type == "default", "hf_to_gguf: RoPE type ", rope.type);
  }

  const SafetensorsFile st = SafetensorsFile::open(dir + "/model.safetensors");
  for (const auto& [name, view] : st.tensors()) {
    std::vector<float> v = to_f32(view);
    const std::string g = gguf_name(name, gemma);
    if (gemma && name.size() > 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0)
      for (float& x : v) x += 1.f;  // llama.cpp stores Gemma's (1 + w)
    if (view.shape.size() == 2) {
      const int64_t rows = view.shape[0], cols = view.shape[1];
      if (arch == "llama" && name.find("q_proj.weight") != std::string::npos) v = permute_rows(v, rows, cols, heads);
      if (arch == "llama" && name.find("k_proj.weight") != std::string::npos) v = permute_rows(v, rows, cols, kv_heads);
      if (decoded && matrix_type != GgmlType::F32) {
        const std::vector<uint8_t> q = ggml_quantize(matrix_type, v.data(), rows, cols);
        for (int64_t r = 0; r < rows; ++r) {
          const std::vector<float> d = ggml_decode_row(matrix_type, q.data(), r, cols);
          std::copy(d.begin(), d.end(), v.begin() + r * cols);
        }
        w.tensor(g, view.shape, GgmlType::F32, as_bytes(v));
      } else if (matrix_type == GgmlType::F32) {
        w.tensor(g, view.shape, GgmlType::F32, as_bytes(v));
      } else if (matrix_type == GgmlType::F16) {
        std::vector<uint8_t> b;
        for (float x : v) append<uint16_t>(b, f32_to_f16(x));
        w.tensor(g, view.shape, GgmlType::F16, b);
      } else {
        w.tensor(g, view.shape, matrix_type, ggml_quantize(matrix_type, v.data(), rows, cols));
      }
    } else {
      w.tensor(g, view.shape, GgmlType::F32, as_bytes(v));
    }
  }
  w.write(out);
}

}  // namespace elm::test
