// Typed, error-reporting access to a Hugging Face config.json. Multimodal configs are read through
// their text_config. Both RoPE spellings are understood: transformers 5's `rope_parameters` (possibly
// one entry per layer type) and the older `rope_theta` / `rope_scaling` / `partial_rotary_factor`.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace elm {

struct RopeParams {
  std::string type = "default";  // default, linear, llama3, yarn, proportional, ...
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;
  nlohmann::json raw;  // the whole parameter object, for type-specific fields
};

class HfConfig {
 public:
  explicit HfConfig(nlohmann::json j);
  static HfConfig from_file(const std::string& path);  // Error on unreadable / malformed JSON

  const nlohmann::json& json() const { return j_; }
  std::string model_type() const;

  bool has(const std::string& key) const;  // present and not null
  int64_t i(const std::string& key) const;  // Error naming the key when missing or not an integer
  int64_t i(const std::string& key, int64_t def) const;
  double f(const std::string& key) const;
  double f(const std::string& key, double def) const;
  bool b(const std::string& key, bool def) const;
  std::string s(const std::string& key, const std::string& def) const;
  std::vector<std::string> strings(const std::string& key) const;  // [] when absent
  std::vector<int64_t> ints(const std::string& key) const;         // [] when absent

  // RoPE settings; layer_type selects the per-layer-type entry when the config has them.
  RopeParams rope(const std::string& layer_type = "") const;

 private:
  const nlohmann::json& get(const std::string& key) const;
  nlohmann::json j_;
};

// RoPE inverse frequencies for `rot_dim` rotated dims under the config's scaling type, in float32
// like transformers. attn_factor receives the cos/sin multiplier (1 except for YaRN). For the
// "proportional" type rot_dim is the whole head_dim: it applies partial_rotary_factor itself, by
// zeroing the frequencies of the pairs it does not rotate.
std::vector<float> rope_frequencies(const RopeParams& rope, int64_t rot_dim, int64_t max_positions,
                                    double* attn_factor);

}  // namespace elm
