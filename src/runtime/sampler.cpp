#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace elm {

int32_t argmax(std::span<const float> logits) {
  // Eight running maxima (index i in lane i % 8) instead of one: a single compare-and-keep chain
  // through 49k logits took 16 % of a small model's greedy speculative decoding. Each lane keeps its
  // first maximum, and the lanes combine to the lowest index among equal maxima, as one scan would.
  constexpr size_t L = 8;
  const size_t n = logits.size();
  if (n < 2 * L) {
    int32_t best = 0;
    for (size_t i = 1; i < n; ++i)
      if (logits[i] > logits[size_t(best)]) best = int32_t(i);
    return best;
  }
  float m[L];
  size_t at[L];
  for (size_t l = 0; l < L; ++l) m[l] = logits[l], at[l] = l;
  size_t i = L;
  for (; i + L <= n; i += L)
    for (size_t l = 0; l < L; ++l)
      if (logits[i + l] > m[l]) m[l] = logits[i + l], at[l] = i + l;
  for (; i < n; ++i)
    if (logits[i] > m[i % L]) m[i % L] = logits[i], at[i % L] = i;
  size_t best = 0;
  for (size_t l = 1; l < L; ++l)
    if (m[l] > m[best] || (m[l] == m[best] && at[l] < at[best])) best = l;
  return int32_t(at[best]);
}

Sampler::Sampler(const SamplerConfig& c) : c_(c), rng_(c.seed) {}

void Sampler::accept(int32_t token) {
  if (c_.repeat_last_n <= 0) return;
  history_.push_back(token);
  while (int(history_.size()) > c_.repeat_last_n) history_.pop_front();
}

void Sampler::distribution(std::span<const float> logits, std::vector<std::pair<int32_t, float>>& out) const {
  out.clear();
  std::vector<std::pair<int32_t, float>> cand;  // (token, logit)
  cand.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) cand.emplace_back(int32_t(i), logits[i]);
  if (c_.repeat_penalty != 1.0f && !history_.empty()) {
    std::unordered_set<int32_t> seen(history_.begin(), history_.end());
    for (auto& [id, l] : cand)
      if (seen.count(id)) l = l > 0 ? l / c_.repeat_penalty : l * c_.repeat_penalty;
  }
  auto by_logit = [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); };
  if (c_.temperature <= 0) {
    auto best = std::min_element(cand.begin(), cand.end(), by_logit);
    out.emplace_back(best->first, 1.0f);
    return;
  }
  size_t n = cand.size();
  const bool all_k = c_.top_k <= 0 || size_t(c_.top_k) >= n;
  if (all_k && c_.top_p >= 1.0f) {
    // No cut that needs an order (only min-p's, against the largest): no sort of the vocabulary. The
    // pairs stay in token order.
    const float inv_t = 1.0f / c_.temperature;
    const float mx = std::min_element(cand.begin(), cand.end(), by_logit)->second * inv_t;
    std::vector<float> p(n);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += p[i] = std::exp(cand[i].second * inv_t - mx);
    const float cut = c_.min_p > 0 ? float(c_.min_p * (1.0 / sum)) : 0.f;  // min_p times the top probability
    double kept = 0;
    for (size_t i = 0; i < n; ++i)
      if (float(p[i] / sum) >= cut) kept += p[i];
    for (size_t i = 0; i < n; ++i)
      if (float(p[i] / sum) >= cut) out.emplace_back(cand[i].first, float(p[i] / kept));
    return;
  }
  if (c_.top_k > 0 && size_t(c_.top_k) < n) {
    std::partial_sort(cand.begin(), cand.begin() + c_.top_k, cand.end(), by_logit);
    n = size_t(c_.top_k);
  } else {
    std::sort(cand.begin(), cand.end(), by_logit);
  }
  cand.resize(n);
  // Probabilities at the configured temperature; top-p and min-p cut on them, as HF's warpers do
  // after its temperature warper.
  const float inv_t = 1.0f / c_.temperature;
  const float mx = cand[0].second * inv_t;
  std::vector<float> p(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += p[i] = std::exp(cand[i].second * inv_t - mx);
  for (float& x : p) x = float(x / sum);
  size_t keep = n;
  if (c_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < n; ++i) {
      cum += p[i];
      if (cum >= c_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (c_.min_p > 0) {
    const float cut = c_.min_p * p[0];
    size_t k = 1;
    while (k < keep && p[k] >= cut) ++k;
    keep = k;
  }
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += p[i];
  for (size_t i = 0; i < keep; ++i) out.emplace_back(cand[i].first, float(p[i] / kept));
}

int32_t draw(const std::vector<std::pair<int32_t, float>>& d, std::mt19937_64& rng) {
  if (d.size() == 1) return d[0].first;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double r = u(rng);
  double cum = 0;
  for (const auto& [id, prob] : d) {
    cum += prob;
    if (r < cum) return id;
  }
  return d.back().first;  // r beyond the rounded total
}

int32_t Sampler::sample(std::span<const float> logits) {
  std::vector<std::pair<int32_t, float>> d;
  distribution(logits, d);
  const int32_t chosen = draw(d, rng_);
  accept(chosen);
  return chosen;
}

}  // namespace elm
