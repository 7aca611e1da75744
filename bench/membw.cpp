// Read bandwidth of this machine: the memory roofline that decode speeds are compared with.
//   elm-membw [threads=2] [MiB=1024] [reps=5]
// Each thread streams its share of a buffer (much larger than the caches) summing it; prints the best
// of `reps` passes in GB/s. bench/run_bench.sh runs it in the same run as the engines it compares.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "core/huge_arena.h"

namespace {

using Vec = float __attribute__((vector_size(64)));

// Built for the widest vectors the CPU has (the library is built for baseline x86-64 and picks its
// kernels at run time; 16-byte loads read a fifth less here than the AVX-512 kernels do).
#if defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
float sum_range(const Vec* p, size_t n) {
  Vec a = {}, b = {}, c = {}, d = {};
  for (size_t i = 0; i + 4 <= n; i += 4) a += p[i], b += p[i + 1], c += p[i + 2], d += p[i + 3];
  const Vec s = a + b + c + d;
  float r = 0;
  for (int i = 0; i < 16; ++i) r += s[i];
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2;
  const size_t mib = argc > 2 ? size_t(std::max(64, std::atoi(argv[2]))) : 1024;
  const int reps = argc > 3 ? std::max(1, std::atoi(argv[3])) : 5;
  const size_t n = mib * (1u << 20) / sizeof(Vec);
  // On huge pages, like the weights elm packs at load (core/huge_arena.h): on 4 KiB pages TLB misses
  // cost this machine a fifth of its read bandwidth.
  elm::HugeArena arena;
  Vec* buf = reinterpret_cast<Vec*>(arena.alloc(n * sizeof(Vec)));
  std::memset(static_cast<void*>(buf), 1, n * sizeof(Vec));
  std::vector<float> sink(static_cast<size_t>(threads));
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const size_t b = n * size_t(t) / size_t(threads), e = n * size_t(t + 1) / size_t(threads);
        sink[size_t(t)] = sum_range(buf + b, e - b);
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n * sizeof(Vec)) / s / 1e9);
  }
  std::printf("%.1f\n", best);
  return sink[0] == 12345.f ? 1 : 0;  // keeps the sums alive
}
