// Matmul kernels on model-sized weights: decode (1 row) and prefill (128 rows), every weight format,
// plain layout (used in place) and packed layout (what `elm compile` stores). Reports weight bytes
// streamed per second (decode is bound by memory bandwidth) and multiply-adds per second.
//   bench_matmul --benchmark_filter='Q4/1/'      ELM_CPU_ISA=avx2 bench_matmul ...
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>

#include "backend/cpu/kernels.h"
#include "quant/quantize.h"

using namespace elm;
using namespace elm::cpu;

namespace {

constexpr size_t kColdBytes = size_t(512) << 20;  // more than any last-level cache here

struct Copy {
  std::vector<uint8_t> bytes, packed;
  TensorView view;
};

struct Case {
  std::vector<Copy> copies;
  std::vector<float> x, y;
};

Case make_case(DType type, int64_t R, int64_t N, int64_t K, bool pack) {
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> w(size_t(N * K));
  for (float& f : w) f = dist(rng);
  Case c;
  Copy first;
  first.bytes = quantize_matrix(w.data(), N, K, {type, is_quantized(type) ? 32 : 0, DType::F16}, &first.view);
  const size_t n_copies = R == 1 ? std::max<size_t>(1, kColdBytes / first.bytes.size()) : 1;
  c.copies.assign(n_copies, first);
  for (Copy& cp : c.copies) {
    cp.view.data = cp.bytes.data();
    if (pack && is_quantized(type)) {
      const QMatrix qm = qmatrix(cp.view);
      cp.packed.resize(packed_bytes(qm));
      pack_panels(qm, 0, (N + kPanelRows - 1) / kPanelRows, cp.packed.data());
    }
  }
  c.x.resize(size_t(R * K));
  for (float& f : c.x) f = dist(rng);
  c.y.resize(size_t(R * N));
  return c;
}

// Args: dtype, rows, N, K, threads, packed.
void BM_Matmul(benchmark::State& st) {
  const auto type = DType(st.range(0));
  const int64_t R = st.range(1), N = st.range(2), K = st.range(3);
  const bool pack = st.range(5) != 0;
  Case c = make_case(type, R, N, K, pack);
  ThreadPool pool(int(st.range(4)));
  std::vector<MatmulWeight> mws;
  for (const Copy& cp : c.copies) {
    mws.push_back(MatmulWeight{&cp.view, {}});
    if (pack) mws.back().packed = PackedQ{type, N, K, 32, false, cp.packed.data()};
  }
  size_t i = 0;
  for (auto _ : st) {
    matmul(c.x.data(), R, mws[i++ % mws.size()], nullptr, c.y.data(), pool);
    benchmark::DoNotOptimize(c.y.data());
  }
  const Copy& cp = c.copies[0];
  const double bytes = double(pack ? cp.packed.size() : cp.bytes.size());
  st.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["GMAC/s"] = benchmark::Counter(double(R * N * K) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string(dtype_name(type)) + (pack ? " packed " : " plain ") + std::string(isa_name(active_isa())));
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (DType t : {DType::Q8, DType::Q4, DType::Q4M, DType::F32, DType::F16, DType::BF16})
    for (int64_t R : {1, 128})
      for (int64_t threads : {1, 2})
        for (int64_t pack : {0, 1}) {
          if (pack && !is_quantized(t)) continue;
          // smollm2-360m's MLP up projection, its attention output projection (small: decode
          // is bound by start-up and synchronization as much as by bandwidth) and smollm2-1.7b's
          // down projection.
          b->Args({int64_t(t), R, 2560, 960, threads, pack});
          b->Args({int64_t(t), R, 960, 960, threads, pack});
          b->Args({int64_t(t), R, 2048, 8192, threads, pack});
        }
}

}  // namespace

BENCHMARK(BM_Matmul)->Apply(Shapes)->ArgNames({"type", "R", "N", "K", "t", "pack"})->UseRealTime();
BENCHMARK_MAIN();
