// Every op of ops.def on the CPU backend against a direct double-precision computation written here.
#include <gtest/gtest.h>

#include <cmath>

#include "op_harness.h"
#include "quant/quantize.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

TEST(Ops, EmbedCopiesTableRows) {
  OpHarness h;
  std::vector<float> x;
  NodeId in = h.input("t", 5, 7, x, 1);
  std::vector<float> got = h.run(in, 5);
  EXPECT_EQ(got, x);
}

TEST(Ops, MatMulPlainWeightsWithBias) {
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    OpHarness h;
    const int64_t T = 3, K = 40, N = 9;
    std::vector<float> x;
    NodeId in = h.input("x", T, K, x, 2);
    std::vector<float> w = random_vector(size_t(N * K), 3), bias = random_vector(size_t(N), 4);
    // Store w in dt; the reference uses the same rounded values.
    TensorView v;
    std::vector<uint8_t> bytes = quantize_matrix(w.data(), N, K, {dt, 0, DType::F16}, &v);
    h.model->weights.add_owned_bytes("w", v, bytes);
    std::vector<float> wr = to_f32(h.model->weights.get("w"));
    NodeId y = h.b.matmul(in, h.b.weight("w", {N, K}), h.weight("bias", 0, N, bias));
    std::vector<float> got = h.run(y, T);
    std::vector<double> want(size_t(T * N));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        double acc = bias[size_t(n)];
        for (int64_t k = 0; k < K; ++k) acc += double(x[size_t(t * K + k)]) * wr[size_t(n * K + k)];
        want[size_t(t * N + n)] = acc;
      }
    expect_close(got, want, 1e-5);
  }
}

TEST(Ops, MatMulQuantizedWeightsMatchDequantizedReference) {
  for (DType dt : {DType::Q8, DType::Q4, DType::Q4M}) {
    for (int group : {32, 64}) {
      OpHarness h;
      const int64_t T = 4, K = 128, N = 6;
      std::vector<float> x;
      NodeId in = h.input("x", T, K, x, 5);
      std::vector<float> w = random_vector(size_t(N * K), 6);
      TensorView v;
      std::vector<uint8_t> bytes = quantize_matrix(w.data(), N, K, {dt, group, DType::F16}, &v);
      h.model->weights.add_owned_bytes("w", v, bytes);
      std::vector<float> wr = to_f32(h.model->weights.get("w"));
      std::vector<float> got = h.run(h.b.matmul(in, h.b.weight("w", {N, K})), T);
      std::vector<double> want(size_t(T * N));
      for (int64_t t = 0; t < T; ++t)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k) acc += double(x[size_t(t * K + k)]) * wr[size_t(n * K + k)];
          want[size_t(t * N + n)] = acc;
        }
      // Fast kernels may quantize activations to int8 per group: allow that error, not more.
      expect_close(got, want, 2e-2);
    }
  }
}

TEST(Ops, RmsNormVariants) {
  const int64_t T = 3, C = 32;
  for (int64_t group : {int64_t(0), int64_t(8)}) {
    for (bool add_one : {false, true}) {
      for (bool with_w : {false, true}) {
        OpHarness h;
        std::vector<float> x;
        NodeId in = h.input("x", T, C, x, 7);
        const int64_t G = group ? group : C;
        std::vector<float> w = random_vector(size_t(G), 8);
        NodeId wn = with_w ? h.weight("w", 0, G, w) : kNone;
        std::vector<float> got = h.run(h.b.rms_norm(in, wn, 1e-5, add_one, group), T);
        std::vector<double> want(size_t(T * C));
        for (int64_t t = 0; t < T; ++t)
          for (int64_t g0 = 0; g0 < C; g0 += G) {
            double ss = 0;
            for (int64_t c = 0; c < G; ++c) ss += double(x[size_t(t * C + g0 + c)]) * x[size_t(t * C + g0 + c)];
            const double inv = 1.0 / std::sqrt(ss / double(G) + 1e-5);
            for (int64_t c = 0; c < G; ++c) {
              double scale = with_w ? (add_one ? 1.0 + w[size_t(c)] : w[size_t(c)]) : 1.0;
              want[size_t(t * C + g0 + c)] = x[size_t(t * C + g0 + c)] * inv * scale;
            }
          }
        expect_close(got, want, 1e-5);
      }
    }
  }
}

TEST(Ops, AddMulWithAndWithoutBroadcast) {
  const int64_t T = 3, C = 10;
  for (Op op : {Op::Add, Op::Mul}) {
    for (bool broadcast : {false, true}) {
      OpHarness h;
      std::vector<float> a, bvals;
      NodeId na = h.input("a", T, C, a, 9);
      NodeId nb;
      if (broadcast) {
        bvals = random_vector(size_t(C), 10);
        nb = h.weight("b", 0, C, bvals);
      } else {
        nb = h.input("b", T, C, bvals, 10);
      }
      std::vector<float> got = h.run(op == Op::Add ? h.b.add(na, nb) : h.b.mul(na, nb), T);
      std::vector<double> want(size_t(T * C));
      for (int64_t i = 0; i < T * C; ++i) {
        const double bv = broadcast ? bvals[size_t(i % C)] : bvals[size_t(i)];
        want[size_t(i)] = op == Op::Add ? a[size_t(i)] + bv : a[size_t(i)] * bv;
      }
      expect_close(got, want, 1e-6);
    }
  }
}

TEST(Ops, UnaryFunctions) {
  const int64_t T = 4, C = 16;
  struct Case {
    Op op;
    double (*f)(double);
  };
  const Case cases[] = {
      {Op::Silu, [](double v) { return v / (1 + std::exp(-v)); }},
      {Op::Gelu, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {Op::GeluTanh,
       [](double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); }},
      {Op::Sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }},
      {Op::Softplus, [](double v) { return std::log1p(std::exp(v)); }},
      {Op::Tanh, [](double v) { return std::tanh(v); }},
  };
  for (const Case& c : cases) {
    OpHarness h;
    std::vector<float> x;
    NodeId in = h.input("x", T, C, x, 11);
    std::vector<float> got = h.run(h.b.unary(c.op, in), T);
    std::vector<double> want(x.size());
    for (size_t i = 0; i < x.size(); ++i) want[i] = c.f(x[i]);
    SCOPED_TRACE(op_name(c.op));
    expect_close(got, want, 1e-5);
  }
}

TEST(Ops, ScaleAndSoftCap) {
  OpHarness h;
  std::vector<float> x;
  NodeId in = h.input("x", 2, 8, x, 12);
  NodeId y = h.b.softcap(h.b.scale(in, 7.5), 3.0);
  std::vector<float> got = h.run(y, 2);
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = 3.0 * std::tanh(x[i] * 7.5 / 3.0);
  expect_close(got, want, 1e-6);
}

TEST(Ops, SliceAndConcat) {
  OpHarness h;
  std::vector<float> x;
  NodeId in = h.input("x", 3, 12, x, 13);
  NodeId y = h.b.concat({h.b.slice(in, 8, 4), h.b.slice(in, 0, 5)});
  std::vector<float> got = h.run(y, 3);
  std::vector<double> want;
  for (int t = 0; t < 3; ++t) {
    for (int c = 8; c < 12; ++c) want.push_back(x[size_t(t * 12 + c)]);
    for (int c = 0; c < 5; ++c) want.push_back(x[size_t(t * 12 + c)]);
  }
  expect_close(got, want, 0);
}

TEST(Ops, OutputRowsSelectsRequestedTokens) {
  OpHarness h;
  std::vector<float> x;
  NodeId in = h.input("x", 4, 3, x, 14);
  h.model->graph = h.b.finish(h.b.output_rows(in));
  h.model->info.vocab_size = 100;
  Executor ex(h.model, RuntimeConfig{}, std::vector<std::string>{"cpu"});
  Batch b;
  for (int t = 0; t < 4; ++t) b.add(t, t, 0, t == 1 || t == 3);
  const HostTensor& out = ex.step(b);
  ASSERT_EQ(out.rows, 2);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(out.row(0)[c], x[size_t(1 * 3 + c)]);
    EXPECT_EQ(out.row(1)[c], x[size_t(3 * 3 + c)]);
  }
}

TEST(Ops, RopeRotatesHalfAndPairsWithPartialDims) {
  const int64_t T = 5, D = 16, H = 2, C = H * D;
  for (bool pairs : {false, true}) {
    for (int64_t F : {int64_t(8), int64_t(6)}) {  // full rotary (2F = D) and partial
      OpHarness h;
      std::vector<float> x;
      NodeId in = h.input("x", T, C, x, 15);
      std::vector<float> freq = rope_inv_freq(10000.0, 2 * F);
      NodeId y = h.b.rope(in, h.weight("freq", 0, F, freq), D, pairs, 1.0);
      const int32_t pos0 = 7;
      std::vector<float> got = h.run(y, T, pos0);
      std::vector<double> want(x.begin(), x.end());
      for (int64_t t = 0; t < T; ++t)
        for (int64_t hh = 0; hh < H; ++hh)
          for (int64_t i = 0; i < F; ++i) {
            const double ang = double(pos0 + t) * freq[size_t(i)];
            const int64_t a = hh * D + (pairs ? 2 * i : i), b = hh * D + (pairs ? 2 * i + 1 : i + F);
            const double xa = x[size_t(t * C + a)], xb = x[size_t(t * C + b)];
            want[size_t(t * C + a)] = xa * std::cos(ang) - xb * std::sin(ang);
            want[size_t(t * C + b)] = xb * std::cos(ang) + xa * std::sin(ang);
          }
      expect_close(got, want, 1e-5);
    }
  }
}

namespace {
// Naive causal attention over one sequence of T tokens at positions 0..T-1.
std::vector<double> attention_reference(const std::vector<float>& q, const std::vector<float>& k,
                                        const std::vector<float>& v, int64_t T, int64_t H, int64_t KVH, int64_t D,
                                        double scale, int64_t window, double softcap) {
  std::vector<double> out(size_t(T * H * D));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kh = h / (H / KVH);
      std::vector<double> s;
      for (int64_t j = 0; j <= t; ++j) {
        if (window && t - j >= window) {
          s.push_back(-INFINITY);
          continue;
        }
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(q[size_t(t * H * D + h * D + d)]) * k[size_t(j * KVH * D + kh * D + d)];
        double sc = dot * scale;
        if (softcap) sc = softcap * std::tanh(sc / softcap);
        s.push_back(sc);
      }
      double mx = -INFINITY, sum = 0;
      for (double x : s) mx = std::max(mx, x);
      for (double& x : s) sum += x = std::exp(x - mx);
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j <= t; ++j) acc += s[size_t(j)] / sum * v[size_t(j * KVH * D + kh * D + d)];
        out[size_t(t * H * D + h * D + d)] = acc;
      }
    }
  return out;
}
}  // namespace

TEST(Ops, AttentionGqaWindowSoftcapPrefill) {
  const int64_t T = 20, H = 4, KVH = 2, D = 8;
  for (int64_t window : {int64_t(0), int64_t(5)}) {
    for (double softcap : {0.0, 2.0}) {
      OpHarness h;
      std::vector<float> q, k, v;
      NodeId nq = h.input("q", T, H * D, q, 16), nk = h.input("k", T, KVH * D, k, 17), nv = h.input("v", T, KVH * D, v, 18);
      GraphBuilder::AttentionSpec s;
      s.heads = H, s.kv_heads = KVH, s.head_dim = D, s.scale = 0.3, s.window = window, s.softcap = softcap;
      RuntimeConfig cfg;
      cfg.max_batch = 32, cfg.n_ctx = 64;
      std::vector<float> got = h.run(h.b.attention(nq, nk, nv, s), T, 0, cfg);
      SCOPED_TRACE(testing::Message() << "window " << window << " softcap " << softcap);
      expect_close(got, attention_reference(q, k, v, T, H, KVH, D, 0.3, window, softcap), 1e-5);
    }
  }
}

// Feeding tokens one at a time (through the cache, with a ring buffer when windowed) gives the same
// outputs as one prefill, and sequences in one batch do not see each other.
TEST(Ops, AttentionStepwiseRingBufferAndSequences) {
  const int64_t T = 30, H = 2, KVH = 1, D = 4, window = 6;
  OpHarness h;
  std::vector<float> q, k, v;
  NodeId nq = h.input("q", T, H * D, q, 19), nk = h.input("k", T, KVH * D, k, 20), nv = h.input("v", T, KVH * D, v, 21);
  GraphBuilder::AttentionSpec s;
  s.heads = H, s.kv_heads = KVH, s.head_dim = D, s.scale = 0.5, s.window = window;
  h.model->graph = h.b.finish(h.b.output_rows(h.b.attention(nq, nk, nv, s)));
  h.model->info.vocab_size = 1 << 20;
  RuntimeConfig cfg;
  cfg.max_batch = 4, cfg.n_ctx = 256, cfg.max_seqs = 2;  // ring of window + max_batch = 10 slots
  Executor ex(h.model, cfg, std::vector<std::string>{"cpu"});
  const std::vector<double> want = attention_reference(q, k, v, T, H, KVH, D, 0.5, window, 0);
  // Sequence 0 gets tokens in steps of 1..4; sequence 1 gets the same tokens in the same batches, one
  // step later, so every batch mixes sequences at different positions.
  std::vector<float> got0, got1;
  int32_t p0 = 0, p1 = 0;
  int step = 0;
  while (p1 < T) {
    Batch b;
    const int n0 = std::min<int>(1 + step % 3, int(T - p0));
    for (int i = 0; i < n0 && p0 < T; ++i, ++p0) b.add(p0, p0, 0, true);
    if (step > 0 && p1 < T) b.add(p1, p1, 1, true), ++p1;
    ++step;
    if (b.size() == 0) continue;
    const HostTensor& out = ex.step(b);
    int r = 0;
    for (int64_t t = 0; t < b.size(); ++t, ++r) {
      auto& dst = b.seqs[size_t(t)] == 0 ? got0 : got1;
      dst.insert(dst.end(), out.row(r), out.row(r) + out.cols);
    }
  }
  expect_close(got0, want, 1e-5);
  expect_close(got1, want, 1e-5);
  // Truncation rolls a sequence back: re-feeding the last 3 tokens reproduces their outputs.
  ex.seq_truncate(0, T - 3);
  Batch b;
  for (int32_t p = int32_t(T - 3); p < T; ++p) b.add(p, p, 0, true);
  const HostTensor& out = ex.step(b);
  std::vector<float> again(out.data.begin(), out.data.end());
  std::vector<double> tail(want.end() - 3 * H * D, want.end());
  expect_close(again, tail, 1e-5);
}
