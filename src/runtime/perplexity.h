// Perplexity and KL divergence over a token stream, with llama-perplexity's protocol so figures compare
// with llama.cpp's: the stream is cut into chunks of `ctx` tokens (the first token of each replaced by
// BOS when the tokenizer adds one), each chunk is read in one pass from an empty cache, and only its
// second half is scored: the logits after positions ctx/2 .. ctx-2 predict tokens ctx/2+1 .. ctx-1, so
// every scored token has at least ctx/2 tokens of context.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "runtime/session.h"

namespace elm {

struct PerplexityOptions {
  int ctx = 512;
  int chunks = -1;      // at most this many chunks (-1: as many as the tokens fill)
  int32_t bos = -1;     // >= 0: the first token of every chunk becomes this id
};

struct PerplexityResult {
  int chunks = 0;
  int64_t tokens_scored = 0;
  double nll_mean = 0, nll_sem = 0;  // mean negative log-likelihood (nats) and its standard error
  double ppl = 0, ppl_err = 0;
  // Against a base model (when one is given): its perplexity at the same positions, the mean KL
  // divergence KL(base || model) per position with its standard error, and how often both models'
  // most likely next tokens agree.
  bool has_base = false;
  double ppl_base = 0, ppl_base_err = 0;
  double kld_mean = 0, kld_sem = 0, kld_max = 0;
  double top1_agree = 0;
};

// The BOS every chunk starts with: the tokenizer's, when its post-processor adds one (as llama.cpp
// does for models whose vocabulary says add_bos); -1 otherwise.
int32_t chunk_bos(const Model& m);

// Scores `tokens` with the model of `s` (sequence 0; the session needs a context of at least ctx and
// batches of ctx tokens). `base` (optional) must share the vocabulary. on_chunk(i, running result) is
// called after each chunk, for progress.
PerplexityResult perplexity(Session& s, const std::vector<int32_t>& tokens, const PerplexityOptions& o,
                            Session* base = nullptr,
                            const std::function<void(int, const PerplexityResult&)>& on_chunk = {});

}  // namespace elm
