// The tiled attention kernel against the plain reference (attention_ref) for every ISA and KV cache
// type, over several key tiles, GQA, windows (full cache and ring), softcap and mixed sequences; and
// the F16 / INT8 caches against an F32 cache holding the same rounded values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend/cpu/kv_cache.h"
#include "core/error.h"
#include "core/half.h"

using namespace elm;
using namespace elm::cpu;

namespace {

std::vector<float> rnd(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

struct Case {
  int64_t heads = 4, kv_heads = 2, dim = 16, window = 0, n_ctx = 400, max_batch = 16;
  float softcap = 0;
  int32_t prefix = 150;  // positions already cached per sequence before the step
  int step = 5, seqs = 2;  // tokens per sequence in the step (1: decode)
};

// Fills the sequences' caches with `prefix` random positions, then writes a step of `step` tokens of
// each (interleaved in the batch) and attends; returns the outputs of fast (isa) and reference.
void run_case(const Case& c, DType kv, Isa isa, std::vector<float>& fast, std::vector<float>& ref,
              KvCache* out_cache = nullptr) {
  KvCache cache(2, c.n_ctx, c.window, c.max_batch, c.kv_heads, c.dim, c.dim, kv);
  const int64_t kc = c.kv_heads * c.dim;
  uint32_t seed = 1;
  auto write = [&](int seq, int32_t pos) {
    const std::vector<float> k = rnd(size_t(kc), seed++), v = rnd(size_t(kc), seed++);
    cache.write(seq, pos, k.data(), v.data());
  };
  for (int seq = 0; seq < c.seqs; ++seq)
    for (int32_t p = 0; p < c.prefix; ++p) write(seq, p);
  std::vector<int32_t> positions, seqs;
  for (int i = 0; i < c.step; ++i)
    for (int seq = 0; seq < c.seqs; ++seq) {
      positions.push_back(c.prefix + i);
      seqs.push_back(seq);
      write(seq, c.prefix + i);
    }
  const int64_t T = int64_t(positions.size());
  const std::vector<float> q = rnd(size_t(T * c.heads * c.dim), 999);
  AttentionParams p;
  p.heads = c.heads, p.scale = 0.25f, p.softcap = c.softcap, p.window = c.window;
  fast.assign(size_t(T * c.heads * c.dim), 0.f);
  ref = fast;
  ThreadPool pool(3);
  attention(q.data(), T, positions.data(), seqs.data(), cache, p, fast.data(), pool, isa);
  attention_ref(q.data(), T, positions.data(), seqs.data(), cache, p, ref.data());
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e = std::max(e, double(std::fabs(a[i] - b[i])));
  return e;
}

class Attention : public testing::TestWithParam<Isa> {};

}  // namespace

TEST_P(Attention, TiledMatchesReference) {
  std::vector<Case> cases(6);
  cases[1].window = 37;                        // window inside a full cache
  cases[2].window = 20, cases[2].n_ctx = 4096;  // ring buffer: window + max_batch < n_ctx
  cases[3].softcap = 3.f, cases[3].kv_heads = 1;
  cases[4].heads = cases[4].kv_heads = 3, cases[4].dim = 40, cases[4].prefix = 3;  // tiny context
  // A prefill: blocks of 16 tokens x 2 heads score their key tiles with the gemm kernel.
  cases[5].seqs = 1, cases[5].step = 70, cases[5].prefix = 30, cases[5].max_batch = 70, cases[5].dim = 40;
  // Decode steps: one token of one or two sequences.
  for (int i = 0; i < 5; ++i) {
    Case d = cases[size_t(i)];
    d.step = 1;
    d.seqs = i % 2 ? 2 : 1;
    cases.push_back(d);
  }
  cases.back().prefix = 700, cases.back().n_ctx = 1024;  // many key tiles: split over the threads
  // Split decode with a window, in a full cache and in a ring buffer.
  Case split_window;
  split_window.step = 1, split_window.seqs = 1, split_window.prefix = 700, split_window.n_ctx = 1024;
  split_window.window = 300;
  cases.push_back(split_window);
  split_window.window = 500, split_window.n_ctx = 4096;  // ring of 516 slots
  cases.push_back(split_window);
  for (DType kv : {DType::F32, DType::F16, DType::I8})
    for (size_t i = 0; i < cases.size(); ++i) {
      SCOPED_TRACE(testing::Message() << "case " << i << " kv " << dtype_name(kv));
      std::vector<float> fast, ref;
      run_case(cases[i], kv, GetParam(), fast, ref);
      // Both sum in float32 in different orders: the error grows with the number of keys.
      EXPECT_LT(max_abs_diff(fast, ref), 2e-6 * std::max(1.0, std::sqrt(cases[i].prefix / 150.0)));
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, Attention, testing::ValuesIn(available_isas()),
                         [](const testing::TestParamInfo<Isa>& i) { return std::string(isa_name(i.param)); });

// A cache of F16 (INT8) entries behaves exactly like an F32 cache holding the rounded values.
TEST(KvCacheTypes, StoredEntriesAreTheRoundedValues) {
  const int64_t dim = 24, heads = 2;
  for (DType kv : {DType::F16, DType::I8}) {
    KvCache c(1, 8, 0, 4, heads, dim, dim, kv);
    const std::vector<float> k = rnd(size_t(heads * dim), 5), v = rnd(size_t(heads * dim), 6);
    c.write(0, 3, k.data(), v.data());
    std::vector<float> kbuf(static_cast<size_t>(dim));
    for (int64_t h = 0; h < heads; ++h) {
      const float* got = c.keys(0, h, 3, 1, kbuf.data(), kVecOpsScalar);
      float amax = 0;
      for (int64_t i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(k[size_t(h * dim + i)]));
      for (int64_t i = 0; i < dim; ++i) {
        const float x = k[size_t(h * dim + i)];
        const float want = kv == DType::F16 ? f16_to_f32(f32_to_f16(x))
                                            : amax / 127.f * std::nearbyint(x * (127.f / amax));
        EXPECT_EQ(got[i], want) << dtype_name(kv) << " head " << h << " i " << i;
      }
    }
    EXPECT_LT(c.bytes(), KvCache(1, 8, 0, 4, heads, dim, dim, DType::F32).bytes());
  }
  EXPECT_THROW(KvCache(1, 8, 0, 4, 1, 8, 8, DType::BF16), Error);
}

// The cache's rounding costs little accuracy in the attention output.
TEST(KvCacheTypes, ReducedPrecisionOutputsStayClose) {
  Case c;
  std::vector<float> f32, f32_ref, out, out_ref;
  run_case(c, DType::F32, active_isa(), f32, f32_ref);
  run_case(c, DType::F16, active_isa(), out, out_ref);
  EXPECT_LT(max_abs_diff(out, f32), 2e-3);
  run_case(c, DType::I8, active_isa(), out, out_ref);
  EXPECT_LT(max_abs_diff(out, f32), 3e-2);
}
