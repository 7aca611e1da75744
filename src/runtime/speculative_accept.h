// The speculative-sampling acceptance rule (Leviathan et al. 2023; Chen et al. 2023): a token x drawn
// from the draft's distribution q is kept with probability min(1, p(x) / q(x)), where p is the
// target's distribution at the same position; on rejection the token is redrawn from
// norm(max(0, p - q)). Whatever q is, the token that comes out is distributed exactly as p, so
// speculation never changes what the target would have sampled. With greedy configs p and q are
// point masses and the rule reduces to "keep the draft token iff it is the target's argmax".
#pragma once
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace elm {

// A sparse distribution, as Sampler::distribution returns it: (token, probability) pairs summing to 1.
using Distribution = std::vector<std::pair<int32_t, float>>;

struct Verdict {
  bool accepted = false;
  int32_t token = -1;  // the draft token when accepted, else the replacement drawn from the residual
};

// p: the target's distribution; q: the distribution `drafted` was drawn from, or empty when the draft
// picked it deterministically (prompt lookup, greedy drafts): q is then the point mass on `drafted`.
// Uses at most two uniform draws from rng.
Verdict accept_or_resample(const Distribution& p, const Distribution& q, int32_t drafted, std::mt19937_64& rng);

}  // namespace elm
