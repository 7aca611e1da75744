// Qwen3.5's recurrent state (conv windows, delta-rule matrices) on the tiny fixture: carried across
// steps of any size, per sequence, rolled back through snapshots, and refused truncation that would
// need a state it no longer has. Reference: transformers' logits for the fixture's 64 tokens.
#include <gtest/gtest.h>

#include "core/error.h"
#include "fixture_check.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

constexpr const char* kFixture = "fixtures/tiny/qwen3_5";

// Logits of feeding `ids` to a fresh session in steps of the given sizes (cycled).
std::vector<float> fed_in_steps(std::shared_ptr<const Model> m, const std::vector<int32_t>& ids,
                                const std::vector<size_t>& steps, SessionOptions o = {}) {
  Session s(std::move(m), o);
  std::vector<float> all;
  for (size_t i = 0, k = 0; i < ids.size(); ++k) {
    const size_t n = std::min(steps[k % steps.size()], ids.size() - i);
    std::vector<float> part = s.feed_all(0, std::span<const int32_t>(ids).subspan(i, n));
    all.insert(all.end(), part.begin(), part.end());
    i += n;
  }
  return all;
}

// Relative error of rows [first, first + n) of got against the reference.
double rows_err(const std::vector<float>& got, size_t got_first, const FixtureRef& ref, size_t first, size_t n) {
  const size_t V = size_t(ref.vocab);
  return rel_max_err(got.data() + got_first * V, ref.logits.data() + first * V, n * V);
}

}  // namespace

TEST(Qwen35State, PrefillEqualsSingleDecodeSteps) {
  ELM_REQUIRE_SHARED(kFixture);
  auto model = Model::load(shared(kFixture));
  const FixtureRef ref = load_fixture_ref(shared(kFixture));
  const std::vector<float> prefill = fed_in_steps(model, ref.ids, {ref.ids.size()});
  const std::vector<float> single = fed_in_steps(model, ref.ids, {1});
  const std::vector<float> mixed = fed_in_steps(model, ref.ids, {5, 1, 17, 1, 1, 9});  // chunked from carried state
  ASSERT_EQ(single.size(), prefill.size());
  // The chunked (prefill) and token-by-token (decode) forms agree to float32 rounding (as amplified
  // by this random-weight model: see test_fixture_quantized.cpp); a lost state would be off by O(1).
  EXPECT_LT(rel_max_err(single.data(), prefill.data(), prefill.size()), 5e-5);
  EXPECT_LT(rel_max_err(mixed.data(), prefill.data(), prefill.size()), 5e-5);
  EXPECT_LT(rows_err(single, 0, ref, 0, ref.ids.size()), 1e-4);
}

TEST(Qwen35State, SequencesInterleavedInOneBatch) {
  ELM_REQUIRE_SHARED(kFixture);
  auto model = Model::load(shared(kFixture));
  const FixtureRef ref = load_fixture_ref(shared(kFixture));
  RuntimeConfig cfg;
  cfg.max_seqs = 2;
  Executor ex(model, cfg);
  // Sequence 1 starts 7 tokens later; both feed the fixture's ids, tokens alternating in each step.
  const size_t V = size_t(ref.vocab), lag = 7;
  size_t next[2] = {0, 0};
  std::vector<float> out[2];
  for (size_t step = 0; next[0] < ref.ids.size() || next[1] < ref.ids.size(); ++step) {
    const size_t n = step % 3 == 0 ? 6 : 1;
    Batch b;
    for (size_t i = 0; i < n; ++i)
      for (int seq = 0; seq < 2; ++seq) {
        size_t& p = next[seq];
        if (p >= ref.ids.size() || (seq == 1 && step == 0 && i < lag)) continue;
        b.add(ref.ids[p], int32_t(p), seq, true), ++p;
      }
    if (b.size() == 0) continue;
    const HostTensor& logits = ex.step(b);
    for (int64_t r = 0; r < b.size(); ++r)
      out[b.seqs[size_t(r)]].insert(out[b.seqs[size_t(r)]].end(), logits.row(r), logits.row(r) + V);
  }
  for (int seq = 0; seq < 2; ++seq)
    EXPECT_LT(rows_err(out[seq], 0, ref, 0, ref.ids.size()), 1e-4) << "sequence " << seq;
}

TEST(Qwen35State, SpeculativeRollbackThroughSnapshots) {
  ELM_REQUIRE_SHARED(kFixture);
  auto model = Model::load(shared(kFixture));
  const FixtureRef ref = load_fixture_ref(shared(kFixture));
  SessionOptions o;
  o.runtime.recurrent_snapshots = 4;  // draft length 3 + 1
  Session s(model, o);
  const std::span<const int32_t> ids(ref.ids);
  const size_t P = 23;
  s.feed_all(0, ids.first(P));
  // Verify step: the next true token, one correct draft, two wrong ones.
  const std::vector<int32_t> verify = {ids[P], ids[P + 1], int32_t((ids[P + 2] + 1) % 512), 7};
  std::vector<float> got = s.feed_all(0, verify);
  EXPECT_LT(rows_err(got, 0, ref, P, 2), 1e-4) << "the accepted part of the verify step";
  s.truncate(0, int32_t(P + 2));  // keep the true token and the accepted draft
  std::vector<float> rest = s.feed_all(0, ids.subspan(P + 2, 10));
  EXPECT_LT(rows_err(rest, 0, ref, P + 2, 10), 1e-4) << "after the rollback";
  // Rejecting the whole verify step needs the state at P, which the 4 snapshots no longer hold.
  EXPECT_THROW(s.truncate(0, int32_t(P)), Error);
}

TEST(Qwen35State, TruncationBeyondTheStateIsRefusedAndChangesNothing) {
  ELM_REQUIRE_SHARED(kFixture);
  auto model = Model::load(shared(kFixture));
  const FixtureRef ref = load_fixture_ref(shared(kFixture));
  Session s(model, SessionOptions{});
  const std::span<const int32_t> ids(ref.ids);
  s.feed_all(0, ids.first(30));
  EXPECT_THROW(s.truncate(0, 28), Error);
  EXPECT_EQ(s.n_past(0), 30);
  s.truncate(0, 30);  // to the current length: allowed, nothing happens
  std::vector<float> more = s.feed_all(0, ids.subspan(30, 5));
  EXPECT_LT(rows_err(more, 0, ref, 30, 5), 1e-4) << "state intact after the refusal";
  s.reset(0);
  std::vector<float> again = s.feed_all(0, ids.first(12));
  EXPECT_LT(rows_err(again, 0, ref, 0, 12), 1e-4) << "after reset";
  s.truncate(0, 0);
  again = s.feed_all(0, ids.first(12));
  EXPECT_LT(rows_err(again, 0, ref, 0, 12), 1e-4) << "after truncating to 0";
}
