// Prompt lookup (n-gram) drafting: text that repeats (code edits, summaries quoting their source, RAG
// answers) is predicted by finding the last n tokens earlier in the prompt or output and proposing
// what followed them there. No draft model, no forward pass: drafting costs microseconds.
#pragma once
#include "runtime/draft_source.h"

namespace elm {

class PromptLookup : public DraftSource {
 public:
  // Tries n-grams from ngram_max down to ngram_min tokens; the most recent earlier match of the longest
  // n-gram wins.
  explicit PromptLookup(int ngram_max, int ngram_min = 1);
  std::string name() const override;
  void propose(std::span<const int32_t> history, int max_tokens, const Sampler& sampler, Draft& out) override;

 private:
  int ngram_max_, ngram_min_;
};

}  // namespace elm
