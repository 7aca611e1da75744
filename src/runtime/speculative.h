// Speculative decoding: a draft source proposes up to K tokens, the target reads the pending token and
// all K in ONE forward pass (Session::feed_all), and the acceptance rule (speculative_accept.h) keeps
// the longest run the target agrees with plus one token of the target's own; the target's cache (and
// the draft's) roll back past the first rejection (Session::truncate). Greedy output is token for token
// what generate() produces; sampled output has exactly the target's distribution. Only Session is used,
// so it runs on any backend list.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/draft_length.h"
#include "runtime/draft_source.h"
#include "runtime/generate.h"
#include "runtime/session.h"

namespace elm {

struct SpeculativeOptions {
  int draft_max = 8;     // most tokens drafted per round
  bool adaptive = true;  // choose each round's length from acceptance and timings (draft_length.h)
};

// What one generation did; the server reports it with its usage/timings, `elm run --verbose` prints it.
struct SpeculativeStats {
  std::string source;       // the draft source's name
  int64_t rounds = 0;       // target passes while decoding
  int64_t drafted = 0;      // draft tokens proposed
  int64_t accepted = 0;     // draft tokens the target kept
  int64_t generated = 0;    // tokens those rounds produced (accepted + one per round)
  double draft_ms = 0;      // time spent drafting (draft prefill excluded: it counts as prompt time)
  double verify_ms = 0;     // target passes and acceptance checks
  double plain_step_ms = 0; // estimated target pass over one token: what a token costs without a draft

  double acceptance_rate() const { return drafted ? double(accepted) / double(drafted) : 0; }
  double tokens_per_pass() const { return rounds ? double(generated) / double(rounds) : 0; }
  // Decode speedup over plain decoding, estimated as generated * plain_step_ms / (draft_ms + verify_ms).
  // bench/speculative.sh measures it directly.
  double est_speedup() const;
  nlohmann::json to_json() const;
};

// The most tokens one round may draft on a target with this runtime config. A round reads k + 1 tokens
// in one step (at most max_batch) and may roll back all but the first: sliding-window caches undo up to
// max_batch + 1 positions (kv_cache.h), recurrent layers only as far as their snapshots reach
// (RuntimeConfig::recurrent_snapshots, which must then be at least k + 1). 0: decode plainly.
int max_draft_tokens(const Model& target, const RuntimeConfig& config);

// What one round produced: the tokens to emit (the accepted drafts, then the target's own token) and
// how many of the tokens the target read this round stay in its sequence (pending + accepted drafts).
struct SpeculativeRound {
  std::vector<int32_t> tokens;
  int32_t keep = 0;
};

// Speculation on one sequence of a target session. Keep one Speculator per sequence for as long as
// the sequence lives: it mirrors the tokens the sequence holds (drafts look them up or resynchronize on
// them) and keeps what it learned about acceptance and costs.
class Speculator {
 public:
  explicit Speculator(std::unique_ptr<DraftSource> source, SpeculativeOptions options = {});

  // generate() with speculation: the same arguments, stop rules, streaming and result, and the sequence
  // is left holding what generate() would leave. The sequence must hold only tokens fed through this
  // Speculator (or be truncated/reset since; then it follows).
  GenerateResult generate(Session& target, int seq, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                          const std::function<bool(const std::string& text)>& on_text = {});

  // Round by round, for loops that put several sequences into one target pass (the server):
  //   const auto& feed = spec.draft(pending, limit, sampler);  // [pending, d1..dk], k <= limit
  //   rows = the target's logits after each of them, read at positions n_past, n_past + 1, ...
  //   const SpeculativeRound& r = spec.verify(rows, sampler);
  //   truncate the sequence to n_past + r.keep; emit r.tokens; the last one is the next `pending`.
  // `pending` is the newest token: emitted, not yet read by the target. limit caps the draft by the
  // context left (n_ctx - n_past - 1), max_draft_tokens() and the tokens still wanted (minus one).
  const std::vector<int32_t>& draft(int32_t pending, int limit, const Sampler& sampler);
  // draft() for several sequences at once (the server's slots): each speculator plans its round, then
  // draft_planned() has their sources propose together (draft models sharing one session read a token
  // of every sequence per forward pass), then feed() is each one's [pending, d1..dk].
  //   int k = spec.plan(pending, limit);  // the tokens it drafts this round
  //   Speculator::draft_planned(specs, samplers);
  int plan(int32_t pending, int limit);
  static void draft_planned(std::span<Speculator* const> specs, std::span<const Sampler* const> samplers);
  const std::vector<int32_t>& feed() const { return feed_; }
  const SpeculativeRound& verify(std::span<const float> rows, Sampler& sampler);
  // verify() for samplers that pick the argmax (SamplerConfig::picks_argmax): `ids` holds the target's
  // argmax after each token of the feed (Session::feed_all_argmax), so no logits leave the device.
  const SpeculativeRound& verify_argmax(std::span<const int32_t> ids, Sampler& sampler);
  void fed(std::span<const int32_t> tokens);  // the sequence read these outside rounds
  // fed() for a prompt: the draft source reads it now (DraftSource::prefill), so that a draft model's
  // prefill counts as prompt time, not drafting.
  void fed_prompt(std::span<const int32_t> prompt);
  void truncated(int32_t n_past);             // the sequence was rolled back to n_past tokens

  const SpeculativeStats& stats() const { return stats_; }  // since the last generate() / reset_stats()
  void reset_stats();
  const DraftSource& source() const { return *source_; }

 private:
  // Bookkeeping after n_acc drafts were accepted and `next` is the target's own token.
  const SpeculativeRound& finish_round(size_t n_acc, int32_t next, Sampler& sampler);
  std::unique_ptr<DraftSource> source_;
  SpeculativeOptions options_;
  DraftLength length_;
  std::vector<int32_t> history_;  // the tokens the target's sequence holds (+ pending during a round)
  SpeculativeStats stats_;
  // The round in flight.
  int planned_ = 0;  // tokens to draft (plan)
  Draft draft_;
  std::vector<int32_t> feed_;
  double draft_ms_ = 0;
  std::chrono::steady_clock::time_point verify_start_;
  Distribution p_;
  SpeculativeRound round_;
};

}  // namespace elm
