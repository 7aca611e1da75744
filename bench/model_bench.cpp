// elm-model-bench: prefill and decode speed of a model on a list of backends, measured like llama-bench
// (pp: one batch of P prompt tokens into an empty cache; tg: N single-token steps from an empty cache,
// random token ids, no sampling), plus a greedy decode that feeds each step's argmax back
// (Executor::step_argmax: on the GPU only the id is copied back), and the GPU memory in use. Prints one JSON object per run.
//
//   elm-model-bench -m MODEL [--backend cuda] [--quant int4] [--act f16] [--kv f16] [-p 512] [-n 128] [-r 5]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "quant/quantize.h"
#include "runtime/executor.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#ifdef ELM_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

using namespace elm;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

size_t gpu_memory() {
#ifdef ELM_HAVE_CUDA
  return cuda_memory_in_use();
#else
  return 0;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"elm-model-bench: prefill / decode speed and memory of a model"};
  std::string model_path, quant = "none", act = "f32", kv = "f16";
  std::vector<std::string> backends = {"cpu"};
  int P = 512, N = 128, reps = 5, ctx = 4096, threads = 0;
  app.add_option("-m,--model", model_path, "model (Hugging Face directory, .elm, .gguf)")->required();
  app.add_option("--backend", backends, "backends in preference order")->delimiter(',');
  app.add_option("--quant", quant, "quantize in memory first: none, int8, int4, int4-g32, ... (QuantPolicy names)");
  app.add_option("--act", act, "activation type: f32, f16, bf16")->check(CLI::IsMember({"f32", "f16", "bf16"}));
  app.add_option("--kv", kv, "KV cache type: f32, f16")->check(CLI::IsMember({"f32", "f16"}));
  app.add_option("-p", P, "prompt tokens (prefill test)");
  app.add_option("-n", N, "generated tokens (decode test)");
  app.add_option("-r", reps, "repetitions (the median is reported)");
  app.add_option("-c,--ctx", ctx, "context length");
  app.add_option("-t,--threads", threads, "CPU threads");
  CLI11_PARSE(app, argc, argv);

  try {
    const size_t mem0 = gpu_memory();
    auto t0 = Clock::now();
    std::shared_ptr<Model> model = Model::load(model_path);
    size_t weight_bytes = model->weights.total_bytes();
    if (quant != "none") weight_bytes = quantize_weights(*model, QuantPolicy::parse(quant), nullptr, /*threads=*/0);
    const double load_s = seconds_since(t0);

    RuntimeConfig cfg;
    cfg.n_ctx = ctx, cfg.max_batch = std::max(P, 1), cfg.threads = threads;
    cfg.act_dtype = dtype_from_flag(act);
    cfg.kv_dtype = dtype_from_flag(kv);
    t0 = Clock::now();
    Executor ex(model, cfg, backends);
    const double prepare_s = seconds_since(t0);
    const size_t mem1 = gpu_memory();

    std::mt19937 rng(1234);
    const int32_t V = int32_t(model->info.vocab_size);
    auto random_token = [&] { return int32_t(rng() % uint32_t(V)); };

    // Prefill: P tokens into an empty cache, last logits only.
    std::vector<double> pp;
    for (int r = 0; r <= reps; ++r) {
      ex.seq_reset(0);
      Batch b;
      for (int i = 0; i < P; ++i) b.add(random_token(), i, 0, i + 1 == P);
      t0 = Clock::now();
      ex.step(b);
      if (r > 0) pp.push_back(P / seconds_since(t0));  // the first run warms up
    }
    // Decode: N steps of one token from an empty cache.
    std::vector<double> tg, tg_greedy;
    for (int r = 0; r <= reps; ++r) {
      ex.seq_reset(0);
      Batch b;
      t0 = Clock::now();
      for (int i = 0; i < N; ++i) {
        b.clear();
        b.add(random_token(), i, 0, true);
        ex.step(b);
      }
      if (r > 0) tg.push_back(N / seconds_since(t0));
    }
    for (int r = 0; r <= reps; ++r) {
      ex.seq_reset(0);
      Batch b;
      int32_t tok = 1;
      t0 = Clock::now();
      for (int i = 0; i < N; ++i) {
        b.clear();
        b.add(tok, i, 0, true);
        tok = ex.step_argmax(b).at(0);
      }
      if (r > 0) tg_greedy.push_back(N / seconds_since(t0));
    }

    nlohmann::json j;
    j["model"] = model->info.name;
    j["backends"] = ex.backend_names();
    j["quant"] = quant;
    j["act"] = act;
    j["kv"] = kv;
    j["weight_bytes"] = weight_bytes;
    j["kv_bytes"] = ex.state_bytes();
    j["pp"] = P;
    j["tg"] = N;
    j["pp_tps"] = median(pp);
    j["tg_tps"] = median(tg);
    j["tg_greedy_tps"] = median(tg_greedy);
    j["pp_runs"] = pp;
    j["tg_runs"] = tg;
    j["load_s"] = load_s;
    j["prepare_s"] = prepare_s;
    j["gpu_mem_before"] = mem0;
    j["gpu_mem_after_prepare"] = mem1;
    j["gpu_mem_elm"] = mem1 - mem0;
    j["segments"] = ex.plan().segments.size();
    std::printf("%s\n", j.dump().c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
