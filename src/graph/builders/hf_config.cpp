#include "graph/builders/hf_config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/mapped_file.h"
#include "graph/builder.h"

namespace elm {

HfConfig::HfConfig(nlohmann::json j) : j_(std::move(j)) {
  ELM_CHECK(j_.is_object(), "config.json must hold a JSON object");
  // Multimodal checkpoints (e.g. Gemma 3 4B) keep the language model's settings in text_config.
  if (j_.contains("text_config") && j_["text_config"].is_object() && !j_.contains("num_hidden_layers")) {
    nlohmann::json text = j_["text_config"];
    for (const char* k : {"tie_word_embeddings", "bos_token_id", "eos_token_id"})
      if (!text.contains(k) && j_.contains(k)) text[k] = j_[k];
    j_ = std::move(text);
  }
}

HfConfig HfConfig::from_file(const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(read_text_file(path), nullptr, false);
  ELM_CHECK(!j.is_discarded(), path, ": malformed JSON");
  ELM_CHECK(j.is_object(), path, ": expected a JSON object");
  return HfConfig(std::move(j));
}

std::string HfConfig::model_type() const {
  ELM_CHECK(j_.contains("model_type") && j_["model_type"].is_string(), "config.json has no model_type");
  return j_["model_type"].get<std::string>();
}

bool HfConfig::has(const std::string& k) const { return j_.contains(k) && !j_[k].is_null(); }

const nlohmann::json& HfConfig::get(const std::string& k) const {
  ELM_CHECK(has(k), "config.json: missing '", k, "'");
  return j_[k];
}

int64_t HfConfig::i(const std::string& k) const {
  const auto& v = get(k);
  ELM_CHECK(v.is_number_integer(), "config.json: '", k, "' must be an integer");
  return v.get<int64_t>();
}
int64_t HfConfig::i(const std::string& k, int64_t def) const { return has(k) ? i(k) : def; }

double HfConfig::f(const std::string& k) const {
  const auto& v = get(k);
  ELM_CHECK(v.is_number(), "config.json: '", k, "' must be a number");
  return v.get<double>();
}
double HfConfig::f(const std::string& k, double def) const { return has(k) ? f(k) : def; }

bool HfConfig::b(const std::string& k, bool def) const {
  if (!has(k)) return def;
  ELM_CHECK(j_[k].is_boolean(), "config.json: '", k, "' must be true or false");
  return j_[k].get<bool>();
}

std::string HfConfig::s(const std::string& k, const std::string& def) const {
  if (!has(k)) return def;
  ELM_CHECK(j_[k].is_string(), "config.json: '", k, "' must be a string");
  return j_[k].get<std::string>();
}

std::vector<std::string> HfConfig::strings(const std::string& k) const {
  if (!has(k)) return {};
  ELM_CHECK(j_[k].is_array(), "config.json: '", k, "' must be a list");
  std::vector<std::string> out;
  for (const auto& e : j_[k]) {
    ELM_CHECK(e.is_string(), "config.json: '", k, "' must hold strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<int64_t> HfConfig::ints(const std::string& k) const {
  if (!has(k)) return {};
  ELM_CHECK(j_[k].is_array(), "config.json: '", k, "' must be a list");
  std::vector<int64_t> out;
  for (const auto& e : j_[k]) {
    ELM_CHECK(e.is_number_integer() || e.is_boolean(), "config.json: '", k, "' must hold integers");
    out.push_back(e.is_boolean() ? int64_t(e.get<bool>()) : e.get<int64_t>());
  }
  return out;
}

RopeParams HfConfig::rope(const std::string& layer_type) const {
  RopeParams r;
  nlohmann::json p = nlohmann::json::object();
  if (has("rope_parameters") && j_["rope_parameters"].is_object()) {
    p = j_["rope_parameters"];
    if (!layer_type.empty() && p.contains(layer_type) && p[layer_type].is_object()) p = p[layer_type];
  } else if (has("rope_scaling") && j_["rope_scaling"].is_object()) {
    p = j_["rope_scaling"];
  }
  if (p.contains("rope_type") && p["rope_type"].is_string()) r.type = p["rope_type"].get<std::string>();
  else if (p.contains("type") && p["type"].is_string()) r.type = p["type"].get<std::string>();
  if (p.contains("rope_theta") && p["rope_theta"].is_number()) r.theta = p["rope_theta"].get<double>();
  else r.theta = f("rope_theta", 10000.0);
  if (p.contains("partial_rotary_factor") && p["partial_rotary_factor"].is_number())
    r.partial_rotary_factor = p["partial_rotary_factor"].get<double>();
  else r.partial_rotary_factor = f("partial_rotary_factor", 1.0);
  r.raw = p;
  return r;
}

namespace {
double num(const nlohmann::json& p, const char* k, double def) {
  return p.contains(k) && p[k].is_number() ? p[k].get<double>() : def;
}
}  // namespace

std::vector<float> rope_frequencies(const RopeParams& rope, int64_t rot_dim, int64_t max_positions,
                                    double* attn_factor) {
  *attn_factor = 1.0;
  std::vector<float> f = rope_inv_freq(rope.theta, rot_dim);
  const nlohmann::json& p = rope.raw;
  if (rope.type == "default" || rope.type.empty()) return f;
  if (rope.type == "proportional") {
    // Gemma 4's global layers: rot_dim is the whole head. The first partial_rotary_factor of its
    // rotated pairs (i, i + rot_dim / 2) get the usual frequencies, the rest frequency 0 (left as is).
    const auto angles = size_t(std::floor(rope.partial_rotary_factor * double(rot_dim) / 2));
    std::fill(f.begin() + long(std::min(angles, f.size())), f.end(), 0.f);
    const float factor = float(num(p, "factor", 1.0));
    for (float& x : f) x /= factor;
    return f;
  }
  if (rope.type == "linear") {
    const float factor = float(num(p, "factor", 1.0));
    for (float& x : f) x /= factor;
    return f;
  }
  if (rope.type == "llama3") {
    const float factor = float(num(p, "factor", 8.0)), lo = float(num(p, "low_freq_factor", 1.0)),
                hi = float(num(p, "high_freq_factor", 4.0)),
                old_ctx = float(num(p, "original_max_position_embeddings", 8192));
    const float lo_wavelen = old_ctx / lo, hi_wavelen = old_ctx / hi;
    for (float& x : f) {
      const float wavelen = 2.0f * float(M_PI) / x;
      float scaled = wavelen > lo_wavelen ? x / factor : x;
      const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
      const float smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
      if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) scaled = smoothed;
      x = scaled;
    }
    return f;
  }
  if (rope.type == "yarn") {
    const double factor = num(p, "factor", 1.0), beta_fast = num(p, "beta_fast", 32.0),
                 beta_slow = num(p, "beta_slow", 1.0);
    const double orig = num(p, "original_max_position_embeddings", double(max_positions));
    const double mscale = num(p, "mscale", 1.0), mscale_all = num(p, "mscale_all_dim", 0.0);
    auto get_mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
    if (p.contains("attention_factor") && p["attention_factor"].is_number())
      *attn_factor = p["attention_factor"].get<double>();
    else if (mscale_all != 0)
      *attn_factor = get_mscale(factor, mscale) / get_mscale(factor, mscale_all);
    else
      *attn_factor = get_mscale(factor, 1.0);
    const double dim = double(rot_dim);
    auto corr_dim = [&](double rot) { return dim * std::log(orig / (rot * 2 * M_PI)) / (2 * std::log(rope.theta)); };
    double low = std::floor(corr_dim(beta_fast)), high = std::ceil(corr_dim(beta_slow));
    low = std::max(low, 0.0), high = std::min(high, dim - 1);
    if (low == high) high += 0.001;
    for (size_t i = 0; i < f.size(); ++i) {
      const float extrap = f[i], interp = f[i] / float(factor);
      const float ramp = float(std::clamp((double(i) - low) / (high - low), 0.0, 1.0));
      const float extrap_factor = 1.0f - ramp;
      f[i] = interp * (1 - extrap_factor) + extrap * extrap_factor;
    }
    return f;
  }
  fail("RoPE type '", rope.type, "' is not supported yet");
}

}  // namespace elm
