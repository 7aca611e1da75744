// The generation loop: prefill a prompt, then sample token by token until EOS, a stop string, the
// token limit or the end of the context, streaming text as it becomes complete.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/session.h"

namespace elm {

struct GenerateOptions {
  int max_tokens = 128;  // < 0: until EOS or the context is full
  SamplerConfig sampling;
  bool stop_at_eos = true;
  std::vector<std::string> stop;  // stop strings (not included in the output)
};

enum class StopReason { Eos, Length, Context, StopString, Cancelled };
const char* stop_reason_name(StopReason r);

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (stop string tokens included)
  std::string text;             // generated text, stop string cut off
  StopReason reason = StopReason::Length;
  int n_prompt = 0;
  double prompt_ms = 0, gen_ms = 0;  // prefill time; sampling + decode time
  double prompt_tps() const { return prompt_ms > 0 ? n_prompt * 1000.0 / prompt_ms : 0; }
  double gen_tps() const { return gen_ms > 0 ? double(tokens.size()) * 1000.0 / gen_ms : 0; }
};

// on_text receives each new piece of text; returning false cancels. The prompt is fed after whatever
// sequence `seq` already holds (multi-turn chat keeps its cache).
GenerateResult generate(Session& session, int seq, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                        const std::function<bool(const std::string& text)>& on_text = {});

}  // namespace elm
