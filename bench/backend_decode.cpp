// Prefill and decode speed of a model on a list of backends, the way generation runs them: one prefill
// of the prompt, then single-token steps (greedy, through Session). Until `elm bench` exists this is
// how backend speeds are measured, e.g. on the GPU machine:
//   elm_backend_decode -m DIR --quant int4 --backend vulkan --prompt 128 --gen 128 --repeat 3
// Prints one line per repeat and the medians. --sweep VAR=a|b|c repeats the measurement with the
// environment variable VAR set to each value (a backend's tuning knob), on the same loaded weights;
// several --sweep run one after another.
// --check N first compares the backends' logits with the CPU's (N prompt tokens, then 4 decode steps).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "quant/quantize.h"
#include "runtime/session.h"
#ifdef ELM_WITH_VULKAN
#include "backend/vulkan/vulkan_backend.h"
#endif

using namespace elm;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int32_t argmax(std::span<const float> v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

// One session: a warm-up run, then `repeat` timed runs of prefill + decode.
void measure(const std::shared_ptr<Model>& m, const std::vector<std::string>& backends, int ctx, int batch, int threads,
             int prompt, int gen, int repeat, DType kv, DType act) {
  SessionOptions o;
  o.backends = backends;
  o.runtime.n_ctx = ctx;
  o.runtime.max_batch = std::min(batch, ctx);
  o.runtime.threads = threads;
  o.runtime.kv_dtype = kv, o.runtime.act_dtype = act;
  auto t0 = std::chrono::steady_clock::now();
  Session s(m, o);
  std::printf("session ready in %.1f s\n%s", seconds_since(t0), s.executor().plan_summary().c_str());
#ifdef ELM_WITH_VULKAN
  for (const auto& name : backends)
    if (name == "vulkan") {
      RuntimeConfig c;
      std::printf("vulkan device: %s\n", vulkan_device_description(*make_backend("vulkan", c)).c_str());
    }
#endif
  std::vector<int32_t> ids(static_cast<size_t>(prompt));
  for (int i = 0; i < prompt; ++i) ids[size_t(i)] = int32_t((i * 7919 + 13) % m->info.vocab_size);
  std::vector<double> pp, tg;
  for (int r = 0; r <= repeat; ++r) {  // run 0 warms up (pipelines, command buffers, caches)
    s.reset(0);
    t0 = std::chrono::steady_clock::now();
    int32_t tok = argmax(s.feed(0, ids));
    const double t_pp = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < gen; ++i) tok = argmax(s.feed(0, std::span<const int32_t>(&tok, 1)));
    const double t_tg = seconds_since(t0);
    if (r == 0) continue;
    pp.push_back(prompt / t_pp);
    tg.push_back(gen / t_tg);
    std::printf("run %d: prefill %d tokens %.1f tok/s, decode %d tokens %.2f tok/s (%.3f ms/token)\n", r, prompt,
                prompt / t_pp, gen, gen / t_tg, 1e3 * t_tg / gen);
  }
  std::printf("median: prefill %.1f tok/s, decode %.2f tok/s\n", median(pp), median(tg));
}

// Logits of the backends against the CPU for the same weights: a prefill of n ids, then 4 single steps.
void check(const std::shared_ptr<Model>& m, const std::vector<std::string>& backends, int n, int threads) {
  SessionOptions o, ref;
  o.backends = backends;
  o.runtime.n_ctx = ref.runtime.n_ctx = n + 8;
  o.runtime.threads = ref.runtime.threads = threads;
  Session a(m, o), b(m, ref);
  std::vector<int32_t> ids;
  for (int i = 0; i < n + 4; ++i) ids.push_back(int32_t((i * 104729 + 7) % m->info.vocab_size));
  const std::span<const int32_t> all(ids);
  std::vector<float> la = a.feed_all(0, all.first(size_t(n))), lb = b.feed_all(0, all.first(size_t(n)));
  for (size_t t = size_t(n); t < ids.size(); ++t) {
    const std::span<const float> ra = a.feed(0, all.subspan(t, 1)), rb = b.feed(0, all.subspan(t, 1));
    la.insert(la.end(), ra.begin(), ra.end());
    lb.insert(lb.end(), rb.begin(), rb.end());
  }
  const size_t V = size_t(m->info.vocab_size);
  double diff = 0, scale = 0;
  int agree = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    diff = std::max(diff, double(std::fabs(la[i] - lb[i])));
    scale = std::max(scale, double(std::fabs(lb[i])));
  }
  for (size_t r = 0; r < ids.size(); ++r)
    agree += argmax({la.data() + r * V, V}) == argmax({lb.data() + r * V, V});
  std::printf("check against cpu: max |diff| / max |ref| = %.3g, argmax agrees on %d of %zu positions\n",
              scale > 0 ? diff / scale : diff, agree, ids.size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"elm backend prefill/decode benchmark"};
  std::string model_path, quant;
  std::vector<std::string> sweeps;
  int check_tokens = 0;
  std::vector<std::string> backends = {"cpu"};
  int prompt = 128, gen = 128, repeat = 3, ctx = 1024, threads = 0, batch = 512;
  std::string kv_type = "f32", act_type = "f32";
  app.add_option("-m,--model", model_path, "Hugging Face directory, .elm or .gguf")->required();
  app.add_option("--quant", quant, "quantize in memory first (int4, int8, bf16, ...)");
  app.add_option("--backend", backends, "backends in preference order")->delimiter(',');
  app.add_option("--prompt", prompt, "prompt tokens")->check(CLI::Range(1, 1 << 20));
  app.add_option("--gen", gen, "decoded tokens")->check(CLI::Range(1, 1 << 20));
  app.add_option("--repeat", repeat, "runs (medians are reported)")->check(CLI::Range(1, 100));
  app.add_option("-c,--ctx", ctx, "context");
  app.add_option("-b,--batch", batch, "most tokens per step");
  app.add_option("-t,--threads", threads, "CPU threads");
  app.add_option("--kv", kv_type, "kv cache entries")->check(CLI::IsMember({"f32", "f16"}));
  app.add_option("--act", act_type, "activations between ops")->check(CLI::IsMember({"f32", "f16", "bf16"}));
  app.add_option("--check", check_tokens, "compare logits with the CPU on N prompt tokens + 4 steps first");
  app.add_option("--sweep", sweeps, "VAR=a|b|c: measure once per value of environment variable VAR (repeatable: "
                 "sweeps run one after another, each value staying set)");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows up when piped
  try {
    auto t0 = std::chrono::steady_clock::now();
    std::shared_ptr<Model> m = Model::load(model_path);
    std::printf("loaded %s in %.1f s\n", model_path.c_str(), seconds_since(t0));
    if (!quant.empty()) {
      t0 = std::chrono::steady_clock::now();
      const size_t bytes = quantize_weights(*m, QuantPolicy::parse(quant), nullptr, /*threads=*/0);  // every core
      std::printf("quantized to %s: %.1f MiB in %.1f s\n", quant.c_str(), double(bytes) / (1 << 20), seconds_since(t0));
    }
    ELM_CHECK(prompt + gen <= ctx, "prompt + gen exceeds the context");
    const DType kv = dtype_from_flag(kv_type), act = dtype_from_flag(act_type);
    if (check_tokens > 0) check(m, backends, check_tokens, threads);
    if (sweeps.empty()) measure(m, backends, ctx, batch, threads, prompt, gen, repeat, kv, act);
    for (const std::string& sweep : sweeps) {
      const size_t eq = sweep.find('=');
      ELM_CHECK(eq != std::string::npos && eq > 0, "--sweep takes VAR=a|b|c");
      const std::string var = sweep.substr(0, eq);
      std::stringstream ss(sweep.substr(eq + 1));
      for (std::string value; std::getline(ss, value, '|');) {
        setenv(var.c_str(), value.c_str(), 1);
        std::printf("== %s=%s\n", var.c_str(), value.c_str());
        measure(m, backends, ctx, batch, threads, prompt, gen, repeat, kv, act);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
