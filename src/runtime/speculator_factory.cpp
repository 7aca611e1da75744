#include "runtime/speculator_factory.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "runtime/draft_model.h"
#include "runtime/prompt_lookup.h"
#include "runtime/self_draft.h"

namespace elm {

void SpeculationConfig::configure(RuntimeConfig& c) const {
  if (enabled()) c.recurrent_snapshots = std::max(c.recurrent_snapshots, options.draft_max + 1);
}

SpeculatorFactory::SpeculatorFactory(const SpeculationConfig& c, std::shared_ptr<const Model> target,
                                     const SessionOptions& options)
    : config_(c), target_(std::move(target)), max_seqs_(options.runtime.max_seqs) {
  ELM_CHECK(config_.enabled(), "speculative decoding needs a draft model, a self-draft or prompt lookup");
  if (config_.lookup > 0) return;
  std::shared_ptr<const Model> draft = config_.draft ? config_.draft : self_draft_for(*target_, config_.self_draft);
  if (config_.draft_vocab > 0) {  // graph/submodel.h: the output layer keeps the first ids
    SubModelSpec narrow;
    narrow.vocab = config_.draft_vocab;
    std::shared_ptr<Model> narrowed = make_self_draft(*draft, narrow);
    narrowed->info.name = draft->info.name + " (ids < " + std::to_string(config_.draft_vocab) + ")";
    draft = std::move(narrowed);
  }
  check_draft_compatible(*target_, *draft);  // before its session takes memory
  draft_session_ = std::make_shared<Session>(std::move(draft), options);
}

std::unique_ptr<Speculator> SpeculatorFactory::make(int seq, uint64_t seed) const {
  ELM_CHECK(seq >= 0 && seq < max_seqs_, "speculation for sequence ", seq, " of ", max_seqs_);
  if (!draft_session_) return std::make_unique<Speculator>(std::make_unique<PromptLookup>(config_.lookup), config_.options);
  // The draft's draws use a stream of their own, apart from the target's.
  const uint64_t draft_seed = seed ^ 0x9e3779b97f4a7c15ull;
  // (The constructor checked the draft against the target; a DraftModel per request need not again.)
  return std::make_unique<Speculator>(std::make_unique<DraftModel>(draft_session_, seq, draft_seed), config_.options);
}

}  // namespace elm
