#include "runtime/generate.h"

#include <chrono>

#include "core/error.h"

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
  const Model& m = s.model();
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

  std::unique_ptr<StreamDecoder> stream;
  if (m.tokenizer) stream = std::make_unique<StreamDecoder>(*m.tokenizer);
  size_t emitted = 0;  // bytes of r.text already passed to on_text
  // Text is held back while it could still be the start of a stop string.
  auto held_back = [&]() -> size_t {
    size_t hold = 0;
    for (const auto& st : o.stop)
      for (size_t k = std::min(st.size() - 1, r.text.size()); k > 0; --k)
        if (r.text.compare(r.text.size() - k, k, st, 0, k) == 0) {
          hold = std::max(hold, k);
          break;
        }
    return hold;
  };

  auto t1 = Clock::now();
  bool cancelled = false;
  for (;;) {
    if (o.max_tokens >= 0 && int(r.tokens.size()) >= o.max_tokens) {
      r.reason = StopReason::Length;
      break;
    }
    int32_t tok = next;
    if (argmax_only) sampler.accept(tok);
    else tok = sampler.sample(logits);
    r.tokens.push_back(tok);
    if (o.stop_at_eos && m.info.is_eos(tok)) {
      r.tokens.pop_back();
      r.reason = StopReason::Eos;
      break;
    }
    if (stream) r.text += stream->push(tok);
    bool stopped = false;
    for (const auto& st : o.stop) {
      const size_t at = st.empty() ? std::string::npos : r.text.find(st, emitted > st.size() ? emitted - st.size() : 0);
      if (at != std::string::npos) {
        r.text.resize(at);
        stopped = true;
      }
    }
    if (stopped) {
      r.reason = StopReason::StopString;
      break;
    }
    const size_t ready = r.text.size() - held_back();
    if (on_text && ready > emitted) {
      if (!on_text(r.text.substr(emitted, ready - emitted))) cancelled = true;
      emitted = ready;
    }
    if (cancelled) {
      r.reason = StopReason::Cancelled;
      break;
    }
    if (s.n_past(seq) >= s.n_ctx()) {
      r.reason = StopReason::Context;
      break;
    }
    const int32_t one[1] = {tok};
    if (argmax_only) next = s.feed_argmax(seq, one);
    else logits = s.feed(seq, one);
  }
  if (stream && r.reason != StopReason::StopString) r.text += stream->flush();
  if (on_text && r.text.size() > emitted && r.reason != StopReason::Cancelled) on_text(r.text.substr(emitted));
  r.gen_ms = ms_since(t1);
  return r;
}

}  // namespace elm
