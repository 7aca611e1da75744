// elm perplexity: perplexity of a text, and KL divergence against a reference model (--kld-base), with
// llama-perplexity's protocol (src/runtime/perplexity.h), so the figures compare with llama.cpp's.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/error.h"
#include "options.h"
#include "runtime/perplexity.h"

namespace elm::cli {

namespace {

struct PerplexityArgs {
  ModelOptions model;
  std::string file;
  std::string kld_base;
  int chunks = -1;
  int64_t bytes = -1;
  bool json = false;
};

std::string read_text(const std::string& path, int64_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  ELM_CHECK(f, "cannot open the text file ", path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (max_bytes >= 0 && int64_t(text.size()) > max_bytes) text.resize(size_t(max_bytes));
  return text;
}

int run(PerplexityArgs a) {
  const auto t0 = std::chrono::steady_clock::now();
  ELM_CHECK(!a.model.model.empty(), "no model given (-m)");
  if (a.model.ctx == 0) a.model.ctx = 512;
  a.model.batch = std::max(a.model.batch, a.model.ctx);  // a chunk in one pass
  auto m = Model::load(a.model.model);
  ELM_CHECK(m->tokenizer, a.model.model, " has no tokenizer to read the text with");
  ELM_CHECK(a.model.ctx <= m->info.context_length || m->info.context_length <= 0, "a context of ", a.model.ctx,
            " tokens is more than the model's ", m->info.context_length);
  const std::vector<int32_t> tokens = m->tokenizer->encode(read_text(a.file, a.bytes), /*add_special=*/true);
  Session s(m, a.model.session(*m));

  std::shared_ptr<Model> bm;
  std::unique_ptr<Session> base;
  if (!a.kld_base.empty()) {
    bm = Model::load(a.kld_base);
    ELM_CHECK(bm->info.vocab_size == m->info.vocab_size, "the base model's vocabulary (", bm->info.vocab_size,
              " tokens) differs from the model's (", m->info.vocab_size, ")");
    base = std::make_unique<Session>(bm, a.model.session(*bm));
  }

  PerplexityOptions o;
  o.ctx = a.model.ctx;
  o.chunks = a.chunks;
  o.bos = chunk_bos(*m);
  if (!a.json)
    std::fprintf(stderr, "%zu tokens, chunks of %d (scored on their second half)%s\n", tokens.size(), o.ctx,
                 o.bos >= 0 ? ", each starting with BOS" : "");
  const PerplexityResult r = perplexity(s, tokens, o, base.get(), [&](int c, const PerplexityResult& p) {
    if (!a.json) std::fprintf(stderr, "\r[%d] ppl %.4f", c + 1, p.ppl);
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (a.json) {
    nlohmann::json j = {{"model", a.model.model}, {"ctx", o.ctx}, {"chunks", r.chunks}, {"tokens_scored", r.tokens_scored},
                        {"ppl", r.ppl}, {"ppl_err", r.ppl_err}, {"nll_mean", r.nll_mean}, {"seconds", secs}};
    if (r.has_base) {
      j["kld_base"] = a.kld_base;
      j["ppl_base"] = r.ppl_base;
      j["ppl_base_err"] = r.ppl_base_err;
      j["ppl_ratio"] = r.ppl / r.ppl_base;
      j["kld_mean"] = r.kld_mean;
      j["kld_err"] = r.kld_sem;
      j["kld_max"] = r.kld_max;
      j["top1_agree"] = r.top1_agree;
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::fprintf(stderr, "\n");
  std::printf("perplexity: %.4f +/- %.4f (%lld tokens scored in %d chunks of %d, %.1f s)\n", r.ppl, r.ppl_err,
              (long long)r.tokens_scored, r.chunks, o.ctx, secs);
  if (r.has_base) {
    std::printf("base perplexity: %.4f +/- %.4f (ratio %.5f)\n", r.ppl_base, r.ppl_base_err, r.ppl / r.ppl_base);
    std::printf("mean KL divergence: %.6f +/- %.6f (max %.4f)\n", r.kld_mean, r.kld_sem, r.kld_max);
    std::printf("top-1 agreement: %.2f%%\n", 100 * r.top1_agree);
  }
  return 0;
}

}  // namespace

void register_perplexity(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* sub = app.add_subcommand("perplexity", "perplexity of a text, and KL divergence against a base model");
  a->model.add(sub);
  sub->get_option("--ctx")->description("tokens per chunk (default 512); each chunk is scored on its second half");
  sub->add_option("-f,--file", a->file, "the text")->required();
  sub->add_option("--chunks", a->chunks, "score at most this many chunks (default: all the text fills)")
      ->check(CLI::Range(1, 1 << 30));
  sub->add_option("--bytes", a->bytes, "read only the first N bytes of the text (llama.cpp's protocol: 400000)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  sub->add_option("--kld-base", a->kld_base, "a reference model (e.g. the float one): KL divergence, top-1 agreement");
  sub->add_flag("--json", a->json, "print one JSON object");
  reg.add(sub, [a] { return run(*a); });
}

}  // namespace elm::cli
