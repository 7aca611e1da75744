#include "runtime/speculative_accept.h"

#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "runtime/sampler.h"

namespace elm {

namespace {
double prob_of(const Distribution& d, int32_t token) {
  for (const auto& [id, pr] : d)
    if (id == token) return pr;
  return 0;
}
}  // namespace

Verdict accept_or_resample(const Distribution& p, const Distribution& q, int32_t drafted, std::mt19937_64& rng) {
  ELM_CHECK(!p.empty(), "speculative acceptance needs the target's distribution");
  const double px = prob_of(p, drafted);
  const double qx = q.empty() ? 1.0 : prob_of(q, drafted);
  ELM_CHECK(qx > 0, "draft token ", drafted, " has probability 0 in the distribution it was drawn from");
  if (px >= qx) return {true, drafted};  // ratio >= 1: always kept, no draw needed
  if (px > 0 && std::uniform_real_distribution<double>(0.0, 1.0)(rng) < px / qx) return {true, drafted};

  // Rejected: draw from max(0, p - q), normalized. Only tokens with p > 0 can have mass.
  std::unordered_map<int32_t, double> qmap;
  if (q.empty()) {
    qmap[drafted] = 1.0;
  } else {
    qmap.reserve(q.size());
    for (const auto& [id, pr] : q) qmap[id] = pr;
  }
  Distribution residual;
  residual.reserve(p.size());
  double total = 0;
  for (const auto& [id, pr] : p) {
    const auto it = qmap.find(id);
    const double r = double(pr) - (it == qmap.end() ? 0.0 : it->second);
    if (r > 0) {
      residual.emplace_back(id, float(r));
      total += r;
    }
  }
  // p <= q everywhere can only happen through rounding (then p == q and rejection had probability
  // ~0): fall back to p itself.
  if (residual.empty() || total <= 0) return {false, draw(p, rng)};
  for (auto& e : residual) e.second = float(e.second / total);
  return {false, draw(residual, rng)};
}

}  // namespace elm
