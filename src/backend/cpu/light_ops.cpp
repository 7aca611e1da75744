// Fast variants of the light ops (kernels.h): vec_ops for the arithmetic, rows split over the pool
// when there is enough work to pay for the dispatch (prefill; decode rows run inline).
#include <algorithm>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "backend/cpu/vec_ops.h"

namespace elm::cpu {

namespace {

constexpr int64_t kParallelValues = 1 << 15;  // below this, a pool dispatch costs more than it saves

template <class F>
void over_rows(int64_t R, int64_t C, ThreadPool& pool, F&& f) {
  if (R * C < kParallelValues || R == 1) {
    f(0, R);
    return;
  }
  pool.parallel_for(R, f);
}

}  // namespace

void rms_norm_fast(const float* x, int64_t R, int64_t C, const float* w, int64_t group, float eps, bool add_one,
                   float* y, ThreadPool& pool) {
  const VecOps& ops = vec_ops();
  over_rows(R, C, pool, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g0 = 0; g0 < C; g0 += group) ops.rms_norm(x + r * C + g0, w, add_one, eps, y + r * C + g0, group);
  });
}

void add_fast(const float* a, const float* b, int64_t R, int64_t C, bool bb, float* y, ThreadPool& pool) {
  const VecOps& ops = vec_ops();
  over_rows(R, C, pool, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) ops.add(a + r * C, bb ? b : b + r * C, y + r * C, C);
  });
}

void mul_fast(const float* a, const float* b, int64_t R, int64_t C, bool bb, float* y, ThreadPool& pool) {
  const VecOps& ops = vec_ops();
  over_rows(R, C, pool, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) ops.mul(a + r * C, bb ? b : b + r * C, y + r * C, C);
  });
}

void silu_fast(const float* x, int64_t n, float* y, ThreadPool& pool) {
  const VecOps& ops = vec_ops();
  constexpr int64_t kChunk = 4096;
  over_rows((n + kChunk - 1) / kChunk, kChunk, pool, [&](int64_t c0, int64_t c1) {
    const int64_t b = c0 * kChunk, e = std::min(n, c1 * kChunk);
    if (b < e) ops.silu(x + b, y + b, e - b);
  });
}

void rope_apply_fast(const float* x, float* y, int64_t T, int64_t C, const float* table, int64_t F, int64_t head_dim,
                     bool pairs, ThreadPool& pool) {
  over_rows(T, C, pool, [&](int64_t r0, int64_t r1) {
    rope_apply(x + r0 * C, y + r0 * C, r1 - r0, C, table + r0 * 2 * F, F, head_dim, pairs);
  });
}

void round_activations(DType t, float* x, int64_t n) {
  if (t == DType::BF16) {
    // Round to nearest even on the upper 16 bits (f32_to_bf16 without the NaN case: activations
    // that are NaN stay NaN either way).
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, 4);
      u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
      std::memcpy(x + i, &u, 4);
    }
  } else if (t == DType::F16) {
    const VecOps& ops = vec_ops();
    uint16_t h[256];
    for (int64_t i = 0; i < n; i += 256) {
      const int64_t c = std::min<int64_t>(256, n - i);
      ops.f32_to_f16(x + i, h, c);
      ops.f16_to_f32(h, x + i, c);
    }
  }
}

}  // namespace elm::cpu
