// The recurrent ops (CausalConv1d, GatedDeltaRule) against direct double-precision recurrences written
// here: in one prefill, across steps with the state carried, with sequences interleaved in a batch;
// the chunked and token-by-token delta-rule kernels against each other; and the state's truncation
// and snapshot rules.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "backend/cpu/kernels.h"
#include "backend/cpu/recurrent_state.h"
#include "core/error.h"
#include "op_harness.h"

using namespace elm;
using namespace elm::test;

namespace {

std::vector<float> uniform_vector(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Token t of the step reads row t of every input table (the harness' convention).
NodeId table_input(OpHarness& h, const std::string& name, int64_t rows, int64_t cols, const std::vector<float>& v) {
  return h.b.embed(h.weight(name, rows, cols, v), h.b.token_ids());
}

// Runs a finished harness graph step by step. A token is {input row, position, sequence}.
class Stepper {
 public:
  Stepper(OpHarness& h, NodeId out, RuntimeConfig cfg = {}) : cols_(h.b.cols(out)) {
    h.model->graph = h.b.finish(h.b.output_rows(out));
    h.model->info.vocab_size = 1 << 20;
    cfg.threads = 2;
    ex_ = std::make_unique<Executor>(h.model, cfg, std::vector<std::string>{"cpu"});
  }
  std::vector<float> step(const std::vector<std::array<int32_t, 3>>& tokens) {
    Batch b;
    for (const auto& t : tokens) b.add(t[0], t[1], t[2], true);
    return ex_->step(b).data;
  }
  // Feeds rows first.. of one sequence, positions pos0.., in one step.
  std::vector<float> feed(int32_t first_row, int32_t pos0, int32_t n, int32_t seq = 0) {
    std::vector<std::array<int32_t, 3>> t;
    for (int32_t i = 0; i < n; ++i) t.push_back({first_row + i, pos0 + i, seq});
    return step(t);
  }
  Executor& executor() { return *ex_; }
  int64_t cols() const { return cols_; }

 private:
  int64_t cols_;
  std::unique_ptr<Executor> ex_;
};

// Direct causal conv of the rows `rows` of x [*, C] (one sequence, in order).
std::vector<double> conv_reference(const std::vector<float>& x, const std::vector<int>& rows, int64_t C,
                                   const std::vector<float>& w, int64_t K) {
  std::vector<double> y;
  for (size_t t = 0; t < rows.size(); ++t)
    for (int64_t c = 0; c < C; ++c) {
      double acc = 0;
      for (int64_t j = 0; j < K; ++j) {
        const int64_t src = int64_t(t) - (K - 1) + j;
        if (src >= 0) acc += double(w[size_t(c * K + j)]) * x[size_t(rows[size_t(src)] * C + c)];
      }
      y.push_back(acc);
    }
  return y;
}

struct DeltaInputs {
  int64_t Hk = 2, Hv = 4, Dk = 8, Dv = 6;
  double scale = 0.35;
  bool l2norm = true;
  std::vector<float> q, k, v, g, beta;  // per row: [Hk*Dk], [Hk*Dk], [Hv*Dv], [Hv], [Hv]
  DeltaInputs(int64_t rows, uint32_t seed) {
    q = random_vector(size_t(rows * Hk * Dk), seed);
    k = random_vector(size_t(rows * Hk * Dk), seed + 1);
    v = random_vector(size_t(rows * Hv * Dv), seed + 2);
    g = uniform_vector(size_t(rows * Hv), seed + 3, -1.5f, -0.01f);  // log decays
    beta = uniform_vector(size_t(rows * Hv), seed + 4, 0.f, 1.f);
  }
};

// The gated delta rule of ops.def, in double, over the rows `rows` (one sequence, from a zero state).
std::vector<double> delta_reference(const DeltaInputs& in, const std::vector<int>& rows) {
  const int64_t Hk = in.Hk, Hv = in.Hv, Dk = in.Dk, Dv = in.Dv;
  std::vector<double> S(size_t(Hv * Dk * Dv), 0.0), out;
  for (int r : rows) {
    std::vector<double> o(size_t(Hv * Dv));
    for (int64_t h = 0; h < Hv; ++h) {
      const int64_t kh = h / (Hv / Hk);
      std::vector<double> q(static_cast<size_t>(Dk)), k(static_cast<size_t>(Dk));
      double qn = 0, kn = 0;
      for (int64_t i = 0; i < Dk; ++i) {
        q[size_t(i)] = in.q[size_t((r * Hk + kh) * Dk + i)];
        k[size_t(i)] = in.k[size_t((r * Hk + kh) * Dk + i)];
        qn += q[size_t(i)] * q[size_t(i)], kn += k[size_t(i)] * k[size_t(i)];
      }
      for (int64_t i = 0; i < Dk; ++i) {
        if (in.l2norm) q[size_t(i)] /= std::sqrt(qn + 1e-6), k[size_t(i)] /= std::sqrt(kn + 1e-6);
        q[size_t(i)] *= in.scale;
      }
      double* Sh = &S[size_t(h * Dk * Dv)];
      const double decay = std::exp(double(in.g[size_t(r * Hv + h)])), beta = in.beta[size_t(r * Hv + h)];
      for (int64_t i = 0; i < Dk * Dv; ++i) Sh[i] *= decay;
      for (int64_t j = 0; j < Dv; ++j) {
        double kv = 0;
        for (int64_t i = 0; i < Dk; ++i) kv += Sh[i * Dv + j] * k[size_t(i)];
        const double u = beta * (in.v[size_t((r * Hv + h) * Dv + j)] - kv);
        for (int64_t i = 0; i < Dk; ++i) Sh[i * Dv + j] += k[size_t(i)] * u;
      }
      for (int64_t j = 0; j < Dv; ++j) {
        double acc = 0;
        for (int64_t i = 0; i < Dk; ++i) acc += Sh[i * Dv + j] * q[size_t(i)];
        o[size_t(h * Dv + j)] = acc;
      }
    }
    out.insert(out.end(), o.begin(), o.end());
  }
  return out;
}

NodeId delta_graph(OpHarness& h, const DeltaInputs& in, int64_t rows) {
  const NodeId q = table_input(h, "q", rows, in.Hk * in.Dk, in.q), k = table_input(h, "k", rows, in.Hk * in.Dk, in.k);
  const NodeId v = table_input(h, "v", rows, in.Hv * in.Dv, in.v), g = table_input(h, "g", rows, in.Hv, in.g);
  const NodeId beta = table_input(h, "beta", rows, in.Hv, in.beta);
  GraphBuilder::DeltaRuleSpec s;
  s.k_heads = in.Hk, s.v_heads = in.Hv, s.head_dim = in.Dk, s.v_head_dim = in.Dv, s.scale = in.scale;
  s.l2norm = in.l2norm;
  return h.b.gated_delta_rule(q, k, v, g, beta, s);
}

std::vector<int> iota_rows(int first, int n) {
  std::vector<int> r(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) r[size_t(i)] = first + i;
  return r;
}

}  // namespace

TEST(OpsRecurrent, CausalConv1dPrefillAndStepsMatchDirectConvolution) {
  const int64_t C = 6, K = 4, N = 11;
  const std::vector<float> x = random_vector(size_t(N * C), 1), w = random_vector(size_t(C * K), 2);
  const std::vector<double> want = conv_reference(x, iota_rows(0, int(N)), C, w, K);
  {  // one prefill
    OpHarness h;
    Stepper s(h, h.b.causal_conv1d(table_input(h, "x", N, C, x), h.weight("w", C, K, w)));
    expect_close(s.feed(0, 0, int32_t(N)).data(), want, 1e-6, "prefill");
  }
  {  // steps of 2 (shorter than the kernel), 1, 1, 4, 1, 2: the window carries across
    OpHarness h;
    Stepper s(h, h.b.causal_conv1d(table_input(h, "x", N, C, x), h.weight("w", C, K, w)));
    int32_t pos = 0;
    for (int32_t n : {2, 1, 1, 4, 1, 2}) {
      std::vector<float> got = s.feed(pos, pos, n);
      std::vector<double> part(want.begin() + pos * C, want.begin() + (pos + n) * C);
      expect_close(got.data(), part, 1e-6, "step at " + std::to_string(pos));
      pos += n;
    }
  }
}

TEST(OpsRecurrent, GatedDeltaRulePrefillMatchesDirectRecurrence) {
  // 150 tokens: two full 64-token chunks and a partial one, grouped query/key heads, l2-normed q, k.
  const int64_t N = 150;
  const DeltaInputs in(N, 10);
  OpHarness h;
  Stepper s(h, delta_graph(h, in, N));
  expect_close(s.feed(0, 0, int32_t(N)).data(), delta_reference(in, iota_rows(0, int(N))), 2e-4, "prefill");
}

TEST(OpsRecurrent, GatedDeltaRuleStateCarriesAcrossStepsOfAnySize) {
  // Prefill, single decode steps, then a chunked step starting from a non-zero state.
  const int64_t N = 120;
  DeltaInputs in(N, 20);
  in.l2norm = false;
  in.scale = 0.2;
  for (float& x : in.k) x *= 0.3f;  // keep the unnormalized state moderate
  const std::vector<double> want = delta_reference(in, iota_rows(0, int(N)));
  OpHarness h;
  Stepper s(h, delta_graph(h, in, N));
  const int64_t D = in.Hv * in.Dv;
  int32_t pos = 0;
  for (int32_t n : {37, 1, 1, 1, 70, 1, 9}) {
    std::vector<float> got = s.feed(pos, pos, n);
    std::vector<double> part(want.begin() + pos * D, want.begin() + (pos + n) * D);
    expect_close(got.data(), part, 2e-4, "step at " + std::to_string(pos));
    pos += n;
  }
}

TEST(OpsRecurrent, SequencesInterleavedInOneBatchKeepSeparateStates) {
  // Sequence 0 reads rows 0.., sequence 1 rows 40..; their tokens alternate within each step.
  const int64_t rows = 80, C = 5, K = 3;
  const DeltaInputs in(rows, 30);
  const std::vector<float> x = random_vector(size_t(rows * C), 31), w = random_vector(size_t(C * K), 32);
  for (bool conv : {true, false}) {
    OpHarness h;
    RuntimeConfig cfg;
    cfg.max_seqs = 2;
    Stepper s(h,
              conv ? h.b.causal_conv1d(table_input(h, "x", rows, C, x), h.weight("w", C, K, w))
                   : delta_graph(h, in, rows),
              cfg);
    const int64_t D = s.cols();
    std::vector<double> want[2];
    want[0] = conv ? conv_reference(x, iota_rows(0, 20), C, w, K) : delta_reference(in, iota_rows(0, 20));
    want[1] = conv ? conv_reference(x, iota_rows(40, 20), C, w, K) : delta_reference(in, iota_rows(40, 20));
    int32_t pos = 0;
    for (int32_t n : {6, 1, 8, 1, 4}) {
      std::vector<std::array<int32_t, 3>> tokens;
      for (int32_t i = 0; i < n; ++i) {
        tokens.push_back({pos + i, pos + i, 0});
        tokens.push_back({40 + pos + i, pos + i, 1});
      }
      std::vector<float> got = s.step(tokens);
      for (int32_t i = 0; i < n; ++i)
        for (int seq = 0; seq < 2; ++seq) {
          std::vector<double> row(want[seq].begin() + (pos + i) * D, want[seq].begin() + (pos + i + 1) * D);
          expect_close(got.data() + (2 * i + seq) * D, row, 2e-4,
                       std::string(conv ? "conv" : "delta") + " seq " + std::to_string(seq));
        }
      pos += n;
    }
  }
}

TEST(OpsRecurrent, ChunkedAndTokenByTokenKernelsAgree) {
  const int64_t N = 200;
  for (bool l2norm : {false, true}) {
    DeltaInputs in(N, 40);
    in.l2norm = l2norm;
    for (float& x : in.k) x *= 0.3f;
    cpu::DeltaRuleArgs a;
    a.q = in.q.data(), a.k = in.k.data(), a.v = in.v.data(), a.g = in.g.data(), a.beta = in.beta.data();
    a.k_heads = in.Hk, a.v_heads = in.Hv, a.dk = in.Dk, a.dv = in.Dv, a.scale = float(in.scale), a.l2norm = l2norm;
    // Every other row, so the kernels must follow the row list rather than assume contiguous rows.
    std::vector<int64_t> rows;
    for (int64_t r = 0; r < N; r += 2) rows.push_back(r);
    const size_t state = size_t(in.Hv * in.Dk * in.Dv);
    std::vector<float> s1(state, 0.f), s2(state, 0.f), o1(size_t(N * in.Hv * in.Dv)), o2(o1.size());
    ThreadPool pool(2);
    a.out = o1.data();
    cpu::gated_delta_rule_recurrent(a, rows.data(), int64_t(rows.size()), s1.data(), pool);
    a.out = o2.data();
    cpu::gated_delta_rule_chunked(a, rows.data(), int64_t(rows.size()), s2.data(), pool);
    for (int64_t r : rows)
      for (int64_t j = 0; j < in.Hv * in.Dv; ++j) {
        const size_t i = size_t(r * in.Hv * in.Dv + j);
        ASSERT_NEAR(o2[i], o1[i], 1e-4 * (1 + std::fabs(o1[i]))) << "output row " << r;
      }
    for (size_t i = 0; i < state; ++i) ASSERT_NEAR(s2[i], s1[i], 1e-4 * (1 + std::fabs(s1[i]))) << "state " << i;
  }
}

TEST(OpsRecurrent, RecurrentStateTruncatesOnlyToKnownLengths) {
  cpu::RecurrentState st(2, 3, 2);
  auto set = [&](int seq, float v) { std::fill(st.data(seq), st.data(seq) + 3, v); };
  set(0, 1.f), st.advance(0, 5, false);  // 5 tokens in one go: no snapshot
  set(0, 2.f), st.advance(0, 1, true);   // 6, kept
  set(0, 3.f), st.advance(0, 1, true);   // 7, kept
  EXPECT_TRUE(st.can_truncate(0, 7) && st.can_truncate(0, 6) && st.can_truncate(0, 0));
  EXPECT_FALSE(st.can_truncate(0, 5));
  EXPECT_THROW(st.truncate(0, 5), Error);
  EXPECT_EQ(st.length(0), 7);
  EXPECT_EQ(st.data(0)[0], 3.f);
  st.truncate(0, 6);
  EXPECT_EQ(st.length(0), 6);
  EXPECT_EQ(st.data(0)[2], 2.f);
  set(0, 4.f), st.advance(0, 2, false);  // 8 tokens again, along another path
  EXPECT_FALSE(st.can_truncate(0, 7)) << "the snapshot of the abandoned path is gone";
  st.truncate(0, 6);
  EXPECT_EQ(st.data(0)[0], 2.f);
  EXPECT_EQ(st.length(1), 0) << "sequences are independent";
  st.truncate(0, 0);
  EXPECT_EQ(st.length(0), 0);
  EXPECT_EQ(st.data(0)[1], 0.f);
}

TEST(OpsRecurrent, ExecutorRollsBackThroughSnapshotsAndRefusesWhatItCannot) {
  const int64_t C = 4, K = 3, rows = 30;
  const std::vector<float> x = random_vector(size_t(rows * C), 50), w = random_vector(size_t(C * K), 51);
  for (int snapshots : {0, 3}) {
    OpHarness h;
    RuntimeConfig cfg;
    cfg.recurrent_snapshots = snapshots;
    Stepper s(h, h.b.causal_conv1d(table_input(h, "x", rows, C, x), h.weight("w", C, K, w)), cfg);
    s.feed(0, 0, 8);
    EXPECT_THROW(s.feed(9, 9, 1), Error) << "a gap in positions";
    EXPECT_THROW(s.feed(7, 7, 1), Error) << "revisiting a position without truncating";
    if (snapshots == 0) {
      EXPECT_THROW(s.executor().seq_truncate(0, 6), Error);
    } else {
      EXPECT_THROW(s.executor().seq_truncate(0, 4), Error) << "older than the snapshots";
      s.executor().seq_truncate(0, 6);
      // Continue from position 6 with other inputs (rows 20, 21): as if they had followed rows 0..5.
      std::vector<float> got = s.step({{20, 6, 0}, {21, 7, 0}});
      std::vector<int> seq = iota_rows(0, 6);
      seq.push_back(20), seq.push_back(21);
      std::vector<double> want = conv_reference(x, seq, C, w, K);
      expect_close(got.data(), std::vector<double>(want.begin() + 6 * C, want.end()), 1e-6, "after rollback");
    }
    // Refused or not, the state is intact: truncating to 0 restarts the sequence.
    s.executor().seq_truncate(0, 0);
    expect_close(s.feed(0, 0, 5).data(), conv_reference(x, iota_rows(0, 5), C, w, K), 1e-6, "after restart");
  }
}
