// Tokenizer speed: loading tokenizer.json (on the startup path of `elm run`) and encoding all of
// wikitext-2's test split (1.3 MB) on one thread. Run: build/bench/bench_tokenizer
#include <benchmark/benchmark.h>

#include <filesystem>

#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace {

std::string dir_of(const std::string& name) {
  return name == "stories260k" ? std::string(ELM_SHARED_DIR) + "/models/stories260k/hf"
                               : std::string(ELM_SHARED_DIR) + "/tokenizers/" + name;
}

void BM_Load(benchmark::State& state, const std::string& name) {
  const std::string dir = dir_of(name);
  if (!std::filesystem::exists(dir)) return state.SkipWithError("shared tokenizers missing");
  for (auto _ : state) benchmark::DoNotOptimize(elm::Tokenizer::from_dir(dir));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(std::filesystem::file_size(dir + "/tokenizer.json")));
}

void BM_EncodeWikitext(benchmark::State& state, const std::string& name) {
  const std::string dir = dir_of(name), text_path = std::string(ELM_SHARED_DIR) + "/text/wikitext-2-test.txt";
  if (!std::filesystem::exists(dir) || !std::filesystem::exists(text_path)) return state.SkipWithError("shared data missing");
  const auto tok = elm::Tokenizer::from_dir(dir);
  const std::string text = elm::read_text_file(text_path);
  size_t n = 0;
  for (auto _ : state) n = tok->encode(text).size();
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
  state.counters["tokens"] = double(n);
}

void BM_DecodeWikitext(benchmark::State& state, const std::string& name) {
  const std::string dir = dir_of(name), text_path = std::string(ELM_SHARED_DIR) + "/text/wikitext-2-test.txt";
  if (!std::filesystem::exists(dir) || !std::filesystem::exists(text_path)) return state.SkipWithError("shared data missing");
  const auto tok = elm::Tokenizer::from_dir(dir);
  const std::string text = elm::read_text_file(text_path);
  const auto ids = tok->encode(text);
  for (auto _ : state) benchmark::DoNotOptimize(tok->decode(ids));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
}

}  // namespace

BENCHMARK_CAPTURE(BM_Load, gemma3, std::string("gemma3"))->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Load, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Load, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_EncodeWikitext, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_EncodeWikitext, gemma3, std::string("gemma3"))->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_EncodeWikitext, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_EncodeWikitext, llama2, std::string("llama2"))->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_DecodeWikitext, qwen3, std::string("qwen3"))->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_MAIN();
