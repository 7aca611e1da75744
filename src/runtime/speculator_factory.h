// Speculation as the front ends configure it (elm run / chat / serve: --draft, --self-draft, --lookup,
// --draft-max, --draft-fixed): one Speculator per sequence of a target session. Draft models run in one
// draft session holding a sequence per target sequence (the server's slots), so a server loads and
// checks its draft once, not per request.
#pragma once
#include <memory>
#include <string>

#include "runtime/session.h"
#include "runtime/speculative.h"

namespace elm {

struct SpeculationConfig {
  std::shared_ptr<const Model> draft;  // a smaller model with the target's vocabulary, or
  std::string self_draft;              // a sub-model of the target (self_draft_for: a spec, or "stored"), or
  int lookup = 0;                      // prompt lookup over n-grams of up to this many tokens
  int64_t draft_vocab = 0;             // a draft's output layer scores ids [0, draft_vocab) (0: all)
  SpeculativeOptions options;

  bool enabled() const { return draft || !self_draft.empty() || lookup > 0; }
  // What the target's sessions need: recurrent layers keep snapshots to roll drafts back.
  void configure(RuntimeConfig& c) const;
};

class SpeculatorFactory {
 public:
  // Drafting for `target` sessions made with `options` (max_seqs sequences): carves the self-draft,
  // checks that the draft model can draft for the target and starts its session with the same options
  // (the same context, batch and backends). Throws elm::Error when it cannot.
  SpeculatorFactory(const SpeculationConfig& c, std::shared_ptr<const Model> target, const SessionOptions& options);
  // The speculator for target sequence `seq`; `seed` seeds a draft model's own draws.
  std::unique_ptr<Speculator> make(int seq, uint64_t seed) const;

 private:
  SpeculationConfig config_;
  std::shared_ptr<const Model> target_;
  std::shared_ptr<Session> draft_session_;  // null for prompt lookup
  int max_seqs_ = 1;
};

}  // namespace elm
