// elm bench: prefill and decode speed of a model, like llama-bench.
//
// Each repetition times a prefill of -p random tokens in one batch (pp) and, separately, -n decode
// steps of one random token each from an empty context (tg). Reported: mean and standard deviation
// of tokens/s over the repetitions (llama-bench's avg_ts / stddev_ts) and the median; the model's
// size and bits per weight; peak resident memory.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_features.h"
#include "cli.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "options.h"
#include "quant/quantize.h"

namespace elm::cli {

namespace {

struct BenchArgs {
  ModelOptions model;
  int n_prompt = 128;
  int n_gen = 64;
  int reps = 5;
  int depth = 0;  // tokens already in the cache when each test starts (llama-bench's -d)
  bool json = false;
  std::string quant;
};

struct Stats {
  double mean = 0, stddev = 0, median = 0;
  std::vector<double> samples;
};

Stats stats(std::vector<double> v) {
  Stats s;
  s.samples = v;
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  for (double x : v) s.stddev += (x - s.mean) * (x - s.mean);
  s.stddev = v.size() > 1 ? std::sqrt(s.stddev / double(v.size() - 1)) : 0;
  std::sort(v.begin(), v.end());
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return s;
}

// Resident set figures from /proc/self/status, in MiB (kB there).
double proc_status_mb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::stod(line.substr(k.size())) / 1024.0;
  return 0;
}

double path_size_mb(const std::string& path) {
  namespace fs = std::filesystem;
  uintmax_t n = 0;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && e.path().extension() == ".safetensors") n += e.file_size();
  } else {
    n = fs::file_size(path);
  }
  return double(n) / (1024.0 * 1024.0);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const BenchArgs& a) {
  ELM_CHECK(!a.model.model.empty(), "give the model with -m");
  ELM_CHECK(a.n_prompt >= 0 && a.n_gen >= 0 && a.n_prompt + a.n_gen > 0, "nothing to measure: -p and -n are 0");
  ELM_CHECK(a.reps >= 1, "-r must be at least 1");
  const auto t_load = std::chrono::steady_clock::now();
  std::shared_ptr<Model> m = Model::load(a.model.model);
  double file_mb = path_size_mb(a.model.model);
  if (!a.quant.empty()) {
    // In-memory quantization: what `elm convert --quant` would write, without the file.
    quantize_weights(*m, QuantPolicy::parse(a.quant));
    file_mb = 0;  // no file holds this model
  }
  size_t params = 0, weight_bytes = 0;
  for (const auto& [name, t] : m->weights.all()) {
    params += size_t(t.numel());
    weight_bytes += t.nbytes;
  }

  ModelOptions mo = a.model;
  if (mo.ctx <= 0) mo.ctx = std::max(a.depth + std::max(a.n_prompt, a.n_gen), 16);
  if (a.depth + std::max(a.n_prompt, a.n_gen) > mo.ctx)
    fail("a depth of ", a.depth, " and ", std::max(a.n_prompt, a.n_gen), " test tokens do not fit a context of ", mo.ctx,
         " (raise --ctx)");
  mo.batch = std::max(1, std::max(a.n_prompt, std::min(mo.batch, mo.ctx)));
  Session session(m, mo.session(*m));
  const double load_s = seconds_since(t_load);
  const double rss_loaded = proc_status_mb("VmRSS");

  std::mt19937 rng(1234);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int32_t& id : t) id = int32_t(rng() % uint32_t(session.vocab()));
    return t;
  };
  // Each test starts from a cache holding `depth` random tokens (filled untimed).
  auto fill = [&] {
    session.reset(0);
    if (a.depth > 0) session.feed(0, random_tokens(a.depth));
  };
  auto time_prefill = [&] {
    fill();
    const std::vector<int32_t> toks = random_tokens(a.n_prompt);
    const auto t0 = std::chrono::steady_clock::now();
    session.feed(0, toks);
    return double(a.n_prompt) / seconds_since(t0);
  };
  auto time_decode = [&] {
    fill();
    const std::vector<int32_t> toks = random_tokens(a.n_gen);
    const auto t0 = std::chrono::steady_clock::now();
    for (int32_t t : toks) session.feed(0, std::span<const int32_t>(&t, 1));
    return double(a.n_gen) / seconds_since(t0);
  };

  // Warm-up (not counted): page in the weights, size the buffers.
  if (a.n_prompt > 0) time_prefill();
  if (a.n_gen > 0) {
    session.reset(0);
    const std::vector<int32_t> t = random_tokens(1);
    session.feed(0, t);
  }
  std::vector<double> pp, tg;
  for (int r = 0; r < a.reps; ++r) {
    if (a.n_prompt > 0) pp.push_back(time_prefill());
    if (a.n_gen > 0) tg.push_back(time_decode());
  }
  const Stats ps = stats(pp), ts = stats(tg);
  const double weights_mb = double(weight_bytes) / (1024.0 * 1024.0);
  const double bpw = params ? 8.0 * double(weight_bytes) / double(params) : 0;
  const double peak_rss = proc_status_mb("VmHWM");
  const int threads = mo.threads > 0 ? mo.threads : ThreadPool::default_threads();
  const std::string isa(cpu::isa_name(cpu::active_isa()));

  if (a.json) {
    nlohmann::json j = {{"model", a.model.model},
                        {"quant", a.quant.empty() ? "as stored" : a.quant},
                        {"threads", threads},
                        {"isa", isa},
                        {"kv_type", std::string(dtype_name(session.executor().config().kv_dtype))},
                        {"act_type", mo.act_type},
                        {"n_prompt", a.n_prompt},
                        {"n_gen", a.n_gen},
                        {"depth", a.depth},
                        {"reps", a.reps},
                        {"pp_tokens_per_s", ps.mean},
                        {"pp_stddev", ps.stddev},
                        {"pp_median", ps.median},
                        {"pp_samples", ps.samples},
                        {"tg_tokens_per_s", ts.mean},
                        {"tg_stddev", ts.stddev},
                        {"tg_median", ts.median},
                        {"tg_samples", ts.samples},
                        {"file_mb", file_mb},
                        {"weights_mb", weights_mb},
                        {"params", params},
                        {"bits_per_weight", bpw},
                        {"peak_rss_mb", peak_rss},
                        {"rss_after_load_mb", rss_loaded},
                        {"load_s", load_s}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("model: %s%s%s\n", a.model.model.c_str(), a.quant.empty() ? "" : "  quantized in memory: ",
              a.quant.c_str());
  std::printf("size: %.1f MiB weights (%.2f bits per weight, %.1fM parameters)", weights_mb, bpw, double(params) / 1e6);
  if (file_mb > 0) std::printf(", file %.1f MiB", file_mb);
  std::printf("\nthreads: %d  kernels: %s  kv cache: %s  activations: %s  load: %.2f s\n", threads, isa.c_str(),
              std::string(dtype_name(session.executor().config().kv_dtype)).c_str(), mo.act_type.c_str(), load_s);
  const std::string at = a.depth > 0 ? " @ d" + std::to_string(a.depth) : "";
  const std::string pp_name = "pp" + std::to_string(a.n_prompt) + at, tg_name = "tg" + std::to_string(a.n_gen) + at;
  const int w = int(std::max({size_t(6), pp_name.size(), tg_name.size()}));
  std::printf("| %-*s |         t/s (mean +- sd) |  median |\n", w, "test");
  if (a.n_prompt > 0) std::printf("| %-*s | %14.2f +- %7.2f | %7.2f |\n", w, pp_name.c_str(), ps.mean, ps.stddev, ps.median);
  if (a.n_gen > 0) std::printf("| %-*s | %14.2f +- %7.2f | %7.2f |\n", w, tg_name.c_str(), ts.mean, ts.stddev, ts.median);
  std::printf("peak RSS: %.1f MiB (after load: %.1f MiB)\n", peak_rss, rss_loaded);
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand("bench", "measure prefill and decode speed (like llama-bench)");
  a->model.add(sub);
  sub->add_option("-p,--n-prompt", a->n_prompt, "prompt tokens per prefill test (0: skip)")->check(CLI::Range(0, 65536));
  sub->add_option("-n,--n-gen", a->n_gen, "tokens per decode test (0: skip)")->check(CLI::Range(0, 65536));
  sub->add_option("-r,--repetitions", a->reps, "repetitions of each test")->check(CLI::Range(1, 1000));
  sub->add_option("-d,--depth", a->depth, "tokens already in the KV cache when each test starts (filled untimed)")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_flag("--json", a->json, "print one JSON object");
  sub->add_option("--quant", a->quant,
                  "quantize the weights in memory first (f32, bf16, f16, int8, int4, int4-g32/64/128, int4m-g...)");
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
