#include "runtime/generate.h"

#include <chrono>

#include "core/error.h"
#include "runtime/token_emitter.h"

namespace elm {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Eos: return "eos";
    case StopReason::Length: return "length";
    case StopReason::Context: return "context";
    case StopReason::StopString: return "stop";
    case StopReason::Cancelled: return "cancelled";
  }
  return "?";
}

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

GenerateResult generate(Session& s, int seq, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                        const std::function<bool(const std::string&)>& on_text) {
  ELM_CHECK(!prompt.empty(), "the prompt is empty");
  GenerateResult r;
  r.n_prompt = int(prompt.size());
  Sampler sampler(o.sampling);
  for (int32_t t : prompt) sampler.accept(t);

  // Greedy decoding without a repetition penalty needs only the argmax: the backend takes it (on the
  // GPU, decoding then copies one id per token instead of the logits).
  const bool argmax_only = o.sampling.temperature <= 0 && (o.sampling.repeat_penalty == 1.0f || o.sampling.repeat_last_n <= 0);
  auto t0 = Clock::now();
  std::span<const float> logits;
  int32_t next = -1;
  if (argmax_only) next = s.feed_argmax(seq, prompt);
  else logits = s.feed(seq, prompt);
  r.prompt_ms = ms_since(t0);

  TokenEmitter emit(s.model(), o, r, on_text);
  auto t1 = Clock::now();
  for (;;) {
    if (o.max_tokens >= 0 && int(r.tokens.size()) >= o.max_tokens) {
      r.reason = StopReason::Length;
      break;
    }
    int32_t tok = next;
    if (argmax_only) sampler.accept(tok);
    else tok = sampler.sample(logits);
    if (!emit.push(tok)) break;
    if (s.n_past(seq) >= s.n_ctx()) {
      r.reason = StopReason::Context;
      break;
    }
    const int32_t one[1] = {tok};
    if (argmax_only) next = s.feed_argmax(seq, one);
    else logits = s.feed(seq, one);
  }
  emit.finish();
  r.gen_ms = ms_since(t1);
  return r;
}

}  // namespace elm
