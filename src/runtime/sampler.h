// Token sampling: repetition penalty, then top-k, top-p, min-p filtering, then temperature, then a
// seeded draw. temperature <= 0 is greedy (argmax, ties to the lowest id).
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace elm {

struct SamplerConfig {
  float temperature = 0.8f;
  int top_k = 40;          // 0 = off
  float top_p = 0.95f;     // 1 = off
  float min_p = 0.05f;     // 0 = off
  float repeat_penalty = 1.0f;  // 1 = off; divides positive logits, multiplies negative ones
  int repeat_last_n = 64;       // window of recent tokens the penalty looks at
  uint64_t seed = 0xe1e1e1;

  // Whether sampling is the argmax of the raw logits (greedy, no penalty), so callers may take the
  // argmax on the device instead of reading the logits.
  bool picks_argmax() const { return temperature <= 0 && repeat_penalty == 1.0f; }
};

class Sampler {
 public:
  explicit Sampler(const SamplerConfig& c);

  // Picks the next token from logits (vocab floats).
  int32_t sample(std::span<const float> logits);
  // The distribution sample() draws from: (token, probability) pairs summing to 1, after penalties,
  // filters and temperature, in no particular order (most likely first when top-k or top-p cut, token
  // order otherwise: no sort of the vocabulary). Greedy configs give one pair with probability 1.
  void distribution(std::span<const float> logits, std::vector<std::pair<int32_t, float>>& out) const;
  // Records a token in the penalty window (sample() does this for the tokens it returns; call it for
  // prompt tokens and for tokens chosen elsewhere, e.g. accepted speculative drafts).
  void accept(int32_t token);
  void reset_history() { history_.clear(); }
  std::mt19937_64& rng() { return rng_; }
  const SamplerConfig& config() const { return c_; }

 private:
  SamplerConfig c_;
  std::mt19937_64 rng_;
  std::deque<int32_t> history_;
};

int32_t argmax(std::span<const float> logits);
// Draws a token from a distribution as distribution() returns it (pairs summing to 1) by inversion
// with one uniform draw from `rng`.
int32_t draw(const std::vector<std::pair<int32_t, float>>& dist, std::mt19937_64& rng);

}  // namespace elm
