// Prefill and decode speed of a model on a list of backends, the way generation runs them: one prefill
// of the prompt, then single-token steps (greedy, through Session). Until `elm bench` exists this is
// how backend speeds are measured, e.g. on the GPU machine:
//   elm_backend_decode -m DIR --quant int4 --backend vulkan --prompt 128 --gen 128 --repeat 3
// Prints one line per repeat and the medians.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"elm backend prefill/decode benchmark"};
  std::string model_path, quant;
  std::vector<std::string> backends = {"cpu"};
  int prompt = 128, gen = 128, repeat = 3, ctx = 1024, threads = 0, batch = 512;
  app.add_option("-m,--model", model_path, "Hugging Face directory, .elm or .gguf")->required();
  app.add_option("--quant", quant, "quantize in memory first (int4, int8, bf16, ...)");
  app.add_option("--backend", backends, "backends in preference order")->delimiter(',');
  app.add_option("--prompt", prompt, "prompt tokens")->check(CLI::Range(1, 1 << 20));
  app.add_option("--gen", gen, "decoded tokens")->check(CLI::Range(1, 1 << 20));
  app.add_option("--repeat", repeat, "runs (medians are reported)")->check(CLI::Range(1, 100));
  app.add_option("-c,--ctx", ctx, "context");
  app.add_option("-b,--batch", batch, "most tokens per step");
  app.add_option("-t,--threads", threads, "CPU threads");
  CLI11_PARSE(app, argc, argv);
  try {
    auto t0 = std::chrono::steady_clock::now();
    std::shared_ptr<Model> m = Model::load(model_path);
    std::printf("loaded %s in %.1f s\n", model_path.c_str(), seconds_since(t0));
    if (!quant.empty()) {
      t0 = std::chrono::steady_clock::now();
      const size_t bytes = quantize_weights(*m, QuantPolicy::parse(quant));
      std::printf("quantized to %s: %.1f MiB in %.1f s\n", quant.c_str(), double(bytes) / (1 << 20), seconds_since(t0));
    }
    ELM_CHECK(prompt + gen <= ctx, "prompt + gen exceeds the context");
    SessionOptions o;
    o.backends = backends;
    o.runtime.n_ctx = ctx;
    o.runtime.max_batch = std::min(batch, ctx);
    o.runtime.threads = threads;
    t0 = std::chrono::steady_clock::now();
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
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
