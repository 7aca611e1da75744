// How many tokens to draft each round. A round that drafts k tokens yields 1 + c1 + c1 c2 + ... +
// c1 ... ck tokens on average (the accepted run plus the target's own token), c_i the probability that
// draft i is accepted once drafts 1..i-1 were, and costs one target pass over k + 1 tokens plus k
// draft tokens. With one per-token acceptance a for every i this is (1 - a^(k+1)) / (1 - a); but
// acceptance can come in runs (a draft that follows the target on easy text tends to go on following
// it), where c_i grows with i and a single rate undervalues long drafts. The policy estimates each c_i
// from recent rounds (a position with little evidence takes the rate of the one before it, the first
// the overall rate a), fits the target's pass time as fixed + per-token cost and the draft's time per
// token from measured timings, and picks the k in [0, max] with the most tokens per second. k = 0 is a
// plain decode step; while it wins, a speculative round is still tried every few rounds so the
// estimates can recover.
//
// Timings make the chosen lengths vary between runs. Greedy output never depends on them; for sampled
// output reproducible from a seed, use the fixed policy (adaptive = false: always max).
#pragma once
#include <cstdint>
#include <vector>

namespace elm {

class DraftLength {
 public:
  explicit DraftLength(int max, bool adaptive = true);

  int next();  // the draft length for the coming round
  // After a round: tokens drafted and accepted, the time drafting took, and the target pass over
  // `verified` tokens (drafted + 1) with the acceptance checks.
  void record(int drafted, int accepted, double draft_ms, int verified, double verify_ms);

  double acceptance() const;  // current estimate of the per-token acceptance probability
  double plain_step_ms() const;  // estimated time of a target pass over one token (0 before any)
  int max() const { return max_; }

 private:
  double expected_tokens(int k) const;
  double round_ms(int k) const;
  int max_;
  bool adaptive_;
  // Passes of each width seen so far: the first passes of a width are warm-up (scratch buffers sized,
  // a GPU graph run eagerly and then captured) and can take several times a steady pass; the time fit
  // skips them (kWarmupPasses).
  std::vector<uint8_t> seen_;
  // Per draft position i (index i - 1): decayed counts (recent rounds weigh most) of rounds that
  // reached it (every earlier draft accepted) and of those that accepted it.
  std::vector<double> reached_, kept_;
  int since_draft_ = 0, draft_rounds_ = 0;
  // Exponentially decayed sums (recent rounds weigh most).
  double w_ = 0, sn_ = 0, snn_ = 0, st_ = 0, snt_ = 0;  // target pass time t over n tokens: least squares
  double slope_ = -1;                               // fitted ms per verified token, -1 until measured
  double d_ms_ = 0, d_n_ = 0;                       // draft time and tokens drafted
};

}  // namespace elm
