#include "runtime/draft_length.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace elm {

namespace {
constexpr double kDecay = 0.95;        // per round: acceptance follows the last ~20 rounds...
constexpr double kTimeDecay = 0.99;    // ...costs, which change slowly, the last ~100
constexpr double kPriorAccept = 0.6;   // acceptance assumed before any evidence...
constexpr double kPriorWeight = 2.0;   // ...worth this many draft tokens
constexpr double kPositionPrior = 2.0; // a position's rate starts at the previous one's, worth this many rounds
constexpr double kPriorSlope = 0.2;    // extra cost of a verified token, relative to a one-token pass, until measured
constexpr int kProbeEvery = 8;         // rounds between speculative tries while plain steps win
constexpr uint8_t kWarmupPasses = 2;   // passes of each width left out of the time fit
}  // namespace

DraftLength::DraftLength(int max, bool adaptive) : max_(max), adaptive_(adaptive) {
  ELM_CHECK(max >= 1, "the draft length must be at least 1 (got ", max, ")");
  seen_.assign(size_t(max) + 2, 0);
  reached_.assign(size_t(max), 0);
  kept_.assign(size_t(max), 0);
}

// Accepted drafts over accepted ones plus rounds that ended in a rejection: the per-position counts
// summed (a round reaches one position past its accepted run exactly when it rejects there).
double DraftLength::acceptance() const {
  double kept = 0, rejected = 0;
  for (size_t i = 0; i < kept_.size(); ++i) kept += kept_[i], rejected += reached_[i] - kept_[i];
  return (kept + kPriorAccept * kPriorWeight) / (kept + rejected + kPriorWeight);
}

double DraftLength::expected_tokens(int k) const {
  // A position with little evidence takes the rate of the one before it (the first, the overall rate):
  // positions past the drafts tried so far are then valued as the deepest one seen, so a policy that
  // drafts k still tries k + 1 when the rates rise with depth, and learns from it.
  double tokens = 1, run = 1, prior = acceptance();  // run: drafts 1..i all accepted
  for (int i = 0; i < k; ++i) {
    const double c = (kept_[size_t(i)] + prior * kPositionPrior) / (reached_[size_t(i)] + kPositionPrior);
    run *= std::min(c, 0.999);
    tokens += run;
    prior = c;
  }
  return tokens;
}

// Target pass over k + 1 tokens (fit t = f + s * n) plus k draft tokens.
double DraftLength::round_ms(int k) const {
  const double mean_n = sn_ / w_, mean_t = st_ / w_;
  double slope = slope_ >= 0 ? slope_ : kPriorSlope * mean_t / mean_n;
  slope = std::min(slope, mean_t / mean_n * 2);
  const double fixed = std::max(0.0, mean_t - slope * mean_n);
  const double draft_per_token = d_n_ > 0 ? d_ms_ / d_n_ : 0;
  return fixed + slope * (k + 1) + draft_per_token * k;
}

double DraftLength::plain_step_ms() const { return w_ > 0 ? round_ms(0) : 0; }

int DraftLength::next() {
  if (!adaptive_) return max_;
  if (w_ == 0) return 0;  // plain steps first: they measure what speculation has to beat
  int best = 0, best_spec = 1;
  double best_rate = 0, best_spec_rate = 0;
  for (int k = 0; k <= max_; ++k) {
    const double rate = expected_tokens(k) / std::max(round_ms(k), 1e-9);
    if (rate > best_rate) best = k, best_rate = rate;
    if (k > 0 && rate > best_spec_rate) best_spec = k, best_spec_rate = rate;
  }
  if (best == 0 && since_draft_ >= kProbeEvery) return best_spec;
  return best;
}

void DraftLength::record(int drafted, int accepted, double draft_ms, int verified, double verify_ms) {
  since_draft_ = drafted > 0 ? 0 : since_draft_ + 1;
  if (drafted > 0) {
    for (size_t i = 0; i < reached_.size(); ++i) {
      reached_[i] *= kDecay, kept_[i] *= kDecay;
      if (int(i) < std::min(drafted, accepted + 1)) reached_[i] += 1, kept_[i] += int(i) < accepted ? 1 : 0;
    }
    if (draft_rounds_++ >= kWarmupPasses) {  // a draft model's first steps warm up too
      d_ms_ = kDecay * d_ms_ + draft_ms;
      d_n_ = kDecay * d_n_ + drafted;
    }
  }
  if (verified >= 0 && size_t(verified) < seen_.size() && seen_[size_t(verified)] < kWarmupPasses) {
    ++seen_[size_t(verified)];
    return;
  }
  const double n = verified;
  w_ = kTimeDecay * w_ + 1;
  sn_ = kTimeDecay * sn_ + n;
  snn_ = kTimeDecay * snn_ + n * n;
  st_ = kTimeDecay * st_ + verify_ms;
  snt_ = kTimeDecay * snt_ + n * verify_ms;
  // The slope needs passes of different lengths; while recent ones all had the same length, the last
  // estimate stands.
  const double mean_n = sn_ / w_, var_n = snn_ / w_ - mean_n * mean_n;
  if (var_n > 0.05) slope_ = std::max(0.0, (snt_ / w_ - mean_n * st_ / w_) / var_n);
}

}  // namespace elm
