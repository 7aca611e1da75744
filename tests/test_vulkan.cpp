// The Vulkan backend against the CPU reference: every op on random shapes (a one-op graph run on an
// Executor with backends {vulkan, cpu} and one with {cpu}), the fusions of decode steps, the kv cache
// (multi-sequence batches, sliding-window rings, truncation), stored artifacts, and the tiny
// transformers fixtures end to end. Runs on whatever Vulkan device exists (lavapipe in CI), with
// subgroup operations and with the shared-memory fallback; skips when there is none.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "batch_invariance.h"
#include "fixture_check.h"
#include "op_harness.h"
#include "quant/quantize.h"
#include "runtime/sampler.h"
#include "util.h"

#ifdef ELM_WITH_VULKAN
#include "backend/vulkan/vk_context.h"
#include "backend/vulkan/vk_program.h"
#include "backend/vulkan/vulkan_backend.h"

using namespace elm;
using namespace elm::test;

namespace {

bool vulkan_available() {
  static const bool ok = [] {
    try {
      make_vulkan_backend(RuntimeConfig{});
      return true;
    } catch (const Error& e) {
      std::fprintf(stderr, "no Vulkan device: %s\n", e.what());
      return false;
    }
  }();
  return ok;
}

#define REQUIRE_VULKAN() \
  if (!vulkan_available()) GTEST_SKIP() << "no Vulkan device"

// The default device has integer dot products: gemv_i8 (int8 activations) runs there, and by default.
bool vulkan_int8() {
  static const bool ok = vulkan_available() && vk::Context::get()->info().integer_dot_product;
  return ok;
}

#define REQUIRE_VULKAN_INT8()                                                   \
  REQUIRE_VULKAN();                                                             \
  if (!vulkan_int8()) GTEST_SKIP() << "the Vulkan device has no integer dot products"

// Executors over the same model: {vulkan, cpu} and {cpu}.
std::pair<std::unique_ptr<Executor>, std::unique_ptr<Executor>> executors(std::shared_ptr<Model> m,
                                                                          const RuntimeConfig& cfg,
                                                                          const VulkanOptions& o) {
  std::vector<std::unique_ptr<Backend>> vk;
  vk.push_back(make_vulkan_backend(cfg, o));
  vk.push_back(make_cpu_backend(cfg));
  std::vector<std::unique_ptr<Backend>> cpu;
  cpu.push_back(make_cpu_backend(cfg));
  return {std::make_unique<Executor>(m, cfg, std::move(vk)), std::make_unique<Executor>(m, cfg, std::move(cpu))};
}

// Test parameter: subgroup reductions on (where the device has them) or the shared-memory fallback.
class VulkanOps : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override { REQUIRE_VULKAN(); }
  // With subgroups, the matvec runs both ways: row groups of one subgroup (subgroupAdd alone) here,
  // and of several (subgroupAdd, then shared memory) in the fixture tests. Quantized weights take the
  // shared-x matvec (x staged in shared memory, whole blocks per load) with subgroups, the global-x
  // one without.
  // The decode products take gemv.comp (16-byte chunks, x in shared memory; "2,1,sg": one chunk per
  // pass, so rows take several passes) unless `legacy_` asks for matvec.comp; `matvec_` overrides the
  // tuning. Float activations unless `int8_` (gemv_i8 for quantized weights, against the CPU's own
  // int8-activation kernels rather than its exact float products).
  VulkanOptions options() const {
    VulkanOptions o;
    o.subgroups = GetParam() ? -1 : 0;
    o.shared_x = GetParam() ? 1 : 0;
    o.legacy_matvec = legacy_ ? 1 : 0;
    o.int8 = int8_ ? 1 : 0;
    if (GetParam()) o.matvec = "2,1,sg";
    if (!matvec_.empty()) o.matvec = matvec_;
    o.attn_split = attn_split_;
    return o;
  }
  bool legacy_ = false, int8_ = false;
  int attn_split_ = 0;
  std::string matvec_;
  // Finishes the harness graph with `out` and runs one step of T tokens (positions pos0.., outputs
  // where `want` says) on both executors; returns the largest relative difference.
  double compare_step(OpHarness& h, NodeId out, int64_t T, int32_t pos0 = 0, RuntimeConfig cfg = {},
                      std::vector<uint8_t> want = {}) const;
};

// max |a - b| / max(1, max |b|).
double max_err(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double mx = 0, scale = 1;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    mx = std::max(mx, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return mx / scale;
}

// Every compute node of the graph ran on Vulkan (backend 0), not on the CPU fallback.
void expect_all_on_vulkan(const Executor& ex) {
  const Graph& g = ex.model().graph;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (ex.plan().node_backend[i] >= 0) {
      EXPECT_EQ(ex.plan().node_backend[i], 0) << "node " << i << " (" << op_name(g.nodes[i].op) << ") is not on Vulkan";
    }
  }
}

double VulkanOps::compare_step(OpHarness& h, NodeId out, int64_t T, int32_t pos0, RuntimeConfig cfg,
                               std::vector<uint8_t> want) const {
  h.model->graph = h.b.finish(h.b.output_rows(out));
  h.model->info.vocab_size = 1 << 20;
  cfg.threads = 2;
  // The CPU side as reference: quantized weights times float activations, or (int8_) the CPU's
  // quantized kernels, which round x to int8 per 32-value block as gemv_i8 does.
  cfg.exact_matmul = !int8_;
  auto [vk, cpu] = executors(h.model, cfg, options());
  expect_all_on_vulkan(*vk);
  Batch b;
  for (int64_t i = 0; i < T; ++i) b.add(int32_t(i), pos0 + int32_t(i), 0, want.empty() || want[size_t(i)]);
  const std::vector<float> got = vk->step(b).data;
  const std::vector<float> ref = cpu->step(b).data;
  EXPECT_EQ(got.size(), ref.size());
  return max_err(got, ref);
}

// A weight of dtype `dt` (quantized in groups of 32 where quantized) with random values.
NodeId typed_weight(OpHarness& h, const std::string& name, int64_t rows, int64_t cols, DType dt, uint32_t seed) {
  std::vector<float> w = random_vector(size_t(rows * cols), seed, 0.5f);
  TensorView v;
  std::vector<uint8_t> bytes = quantize_matrix(w.data(), rows, cols, {dt, is_quantized(dt) ? 32 : 0, DType::F16}, &v);
  h.model->weights.add_owned_bytes(name, v, bytes);
  return h.b.weight(name, {rows, cols});
}

// A Llama-shaped decode block on input `in` [T, C]: RMSNorm into q/k/v (kv_width-wide k and v, with
// biases), o and a residual add, a (1 + w) RMSNorm into gate/up with `act`, down and a residual add;
// every matrix of dtype `dt`. The shape the decode fusions target.
NodeId llama_block(OpHarness& h, NodeId in, int64_t C, int64_t I, int64_t kv_width, DType dt, Op act) {
  NodeId hn = h.b.rms_norm(in, h.weight("n1", 0, C, random_vector(size_t(C), 5)), 1e-5);
  NodeId q = h.b.matmul(hn, typed_weight(h, "wq", C, C, dt, 6), h.weight("bq", 0, C, random_vector(size_t(C), 7)));
  NodeId k = h.b.matmul(hn, typed_weight(h, "wk", kv_width, C, dt, 8),
                        h.weight("bk", 0, kv_width, random_vector(size_t(kv_width), 9)));
  NodeId v = h.b.matmul(hn, typed_weight(h, "wv", kv_width, C, dt, 10),
                        h.weight("bv", 0, kv_width, random_vector(size_t(kv_width), 11)));
  NodeId a = h.b.concat({q, k, v});
  NodeId o = h.b.matmul(a, typed_weight(h, "wo", C, C + 2 * kv_width, dt, 12));
  NodeId x2 = h.b.add(in, o);
  NodeId h2 = h.b.rms_norm(x2, h.weight("n2", 0, C, random_vector(size_t(C), 13)), 1e-5, true);
  NodeId g = h.b.matmul(h2, typed_weight(h, "wg", I, C, dt, 14));
  NodeId u = h.b.matmul(h2, typed_weight(h, "wu", I, C, dt, 15));
  NodeId m = h.b.mul(h.b.unary(act, g), u);
  return h.b.add(x2, h.b.matmul(m, typed_weight(h, "wd", C, I, dt, 16)));
}

const DType kAllTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8, DType::Q4, DType::Q4M};

}  // namespace

TEST_P(VulkanOps, EmbedEveryWeightType) {
  for (DType dt : kAllTypes) {
    OpHarness h;
    NodeId table = typed_weight(h, "table", 50, 64, dt, 1);
    EXPECT_EQ(compare_step(h, h.b.embed(table, h.b.token_ids()), 7), 0.0) << dtype_name(dt);
  }
}

// Both kernels (matrix-vector for steps of up to 8 tokens, tiled above), every weight type, with
// and without bias, reduction lengths that are and are not multiples of 32 (plain types) or of a
// 16-byte chunk (F16/BF16 with K 36: the legacy matvec). The matrix-vector kernel in three shapes:
// the suite's tuning, gemv with 3 rows a row group (the last group past the 37 rows) and 4 chunks of
// 64 invocations (K 544: rows that end inside a pass), and the legacy kernel.
TEST_P(VulkanOps, MatMulEveryWeightTypeAndStepSize) {
  for (int config = 0; config < 3; ++config) {
    legacy_ = config == 2;
    matvec_ = config == 1 ? "3,4,64" : "";
    for (DType dt : kAllTypes) {
      for (int64_t K : {int64_t(96), int64_t(40), int64_t(36), int64_t(544)}) {
        if (K % 32 && is_quantized(dt)) continue;
        for (int64_t T : {int64_t(1), int64_t(5), int64_t(9), int64_t(70)}) {
          if (config > 0 && T > 8) continue;  // the tiled kernel does not depend on the matvec's tuning
          for (bool bias : {false, true}) {
            OpHarness h;
            const int64_t N = 37;
            std::vector<float> x, bv = random_vector(size_t(N), 9);
            NodeId in = h.input("x", T, K, x, 2);
            NodeId w = typed_weight(h, "w", N, K, dt, 3);
            NodeId y = h.b.matmul(in, w, bias ? h.weight("b", 0, N, bv) : kNone);
            EXPECT_LT(compare_step(h, y, T), 1e-5)
                << dtype_name(dt) << " K " << K << " T " << T << " bias " << bias << " config " << config;
          }
        }
      }
    }
  }
}

// The decode-step fusions on a Llama-shaped block: RMSNorm into q/k/v (one launch), gate/up with the
// activation and product (GLU), residual adds after o and down; qkv bias (Qwen2); GELU variants.
TEST_P(VulkanOps, FusedBlockMatchesCpuAtEveryStepSize) {
  for (bool legacy : {false, true}) {
    legacy_ = legacy;
    for (Op act : {Op::Silu, Op::GeluTanh, Op::Gelu}) {
      for (DType dt : {DType::Q4, DType::F16}) {
        for (int64_t T : {int64_t(1), int64_t(3), int64_t(12)}) {
          OpHarness h;
          const int64_t C = 64, I = 96;
          std::vector<float> x;
          NodeId y = llama_block(h, h.input("x", T, C, x, 4), C, I, 32, dt, act);
          EXPECT_LT(compare_step(h, y, T), 1e-5) << op_name(act) << " " << dtype_name(dt) << " T " << T << " legacy " << legacy;
        }
      }
    }
  }
}

// gemv_i8 (int8 activations, integer dot products) for every quantized type against the CPU's
// int8-activation kernels: decode step sizes, with and without bias, one and several passes, rows
// that end inside a pass (K 544, "3,4,64"), Q8 rows of an odd number of 16-byte chunks per block
// half (K 96), and K 2048. Within 1e-2 of the output's range, as the CUDA gemv's products (both sides
// round x the same way; what is left is the order of float sums and ties).
TEST_P(VulkanOps, MatMulInt8ActivationsMatchCpuKernels) {
  if (!vulkan_int8()) GTEST_SKIP() << "the Vulkan device has no integer dot products";
  int8_ = true;
  double worst = 0;
  for (int config = 0; config < 2; ++config) {
    matvec_ = config == 1 ? "3,4,64" : "";
    for (DType dt : {DType::Q8, DType::Q4, DType::Q4M}) {
      for (int64_t K : {int64_t(96), int64_t(544), int64_t(2048)}) {
        for (int64_t T : {int64_t(1), int64_t(5), int64_t(8)}) {
          for (bool bias : {false, true}) {
            OpHarness h;
            const int64_t N = 37;
            std::vector<float> x, bv = random_vector(size_t(N), 9);
            NodeId in = h.input("x", T, K, x, 2);
            NodeId w = typed_weight(h, "w", N, K, dt, 3);
            NodeId y = h.b.matmul(in, w, bias ? h.weight("b", 0, N, bv) : kNone);
            const double err = compare_step(h, y, T);
            worst = std::max(worst, err);
            EXPECT_LT(err, 1e-2) << dtype_name(dt) << " K " << K << " T " << T << " bias " << bias << " config " << config;
          }
        }
      }
    }
  }
  RecordProperty("worst_rel_err", std::to_string(worst));
  std::printf("int8 products: worst %.3g\n", worst);
}

// The fused decode block with int8 activations (Q4, Q8 and Q4M weights): RMSNorm folded into q/k/v
// and gate/up (x * w quantized, the rms applied to the sums), residuals, GLU; against the CPU's
// int8-activation kernels within 5e-3, as the CUDA block test. Both sides round x alike, but a value
// within float rounding of a tie (x * 127 / amax at k + 0.5; the sums before it are ordered
// differently) can round the other way, which moves every later output of its token: with these
// random weights the activations grow about tenfold a product, and at C 256 one such flip in o's
// input showed as 1 % of y's range (lavapipe, subgroups). These shapes stay near 1e-6.
TEST_P(VulkanOps, FusedBlockInt8ActivationsMatchCpuKernels) {
  if (!vulkan_int8()) GTEST_SKIP() << "the Vulkan device has no integer dot products";
  int8_ = true;
  double worst = 0;
  for (Op act : {Op::Silu, Op::GeluTanh}) {
    for (DType dt : {DType::Q4, DType::Q8, DType::Q4M}) {
      for (int64_t T : {int64_t(1), int64_t(3), int64_t(8)}) {
        OpHarness h;
        const int64_t C = 128, I = 192;
        std::vector<float> x;
        NodeId y = llama_block(h, h.input("x", T, C, x, 4), C, I, 64, dt, act);
        const double err = compare_step(h, y, T);
        worst = std::max(worst, err);
        EXPECT_LT(err, 5e-3) << op_name(act) << " " << dtype_name(dt) << " T " << T;
      }
    }
  }
  RecordProperty("worst_rel_err", std::to_string(worst));
  std::printf("int8 fused block: worst %.3g\n", worst);
}

TEST_P(VulkanOps, RmsNormGroupsWeightsAndAddOne) {
  for (int64_t group : {int64_t(0), int64_t(16)}) {
    for (int wmode = 0; wmode < 3; ++wmode) {  // no weight, w, 1 + w
      OpHarness h;
      const int64_t T = 6, C = 96;
      std::vector<float> x;
      NodeId in = h.input("x", T, C, x, 20);
      const int64_t G = group ? group : C;
      NodeId w = wmode ? h.weight("w", 0, G, random_vector(size_t(G), 21)) : kNone;
      NodeId y = h.b.rms_norm(in, w, 1e-6, wmode == 2, group);
      EXPECT_LT(compare_step(h, y, T), 1e-5) << "group " << group << " mode " << wmode;
    }
  }
}

TEST_P(VulkanOps, ElementwiseUnaryBinaryAndLayout) {
  const int64_t T = 5, C = 48;
  for (Op op : {Op::Silu, Op::Gelu, Op::GeluTanh, Op::Sigmoid, Op::Softplus, Op::Tanh}) {
    OpHarness h;
    std::vector<float> x;
    NodeId in = h.b.scale(h.input("x", T, C, x, 30), 12.0);  // values past softplus' linear threshold too
    EXPECT_LT(compare_step(h, h.b.unary(op, in), T), 2e-6) << op_name(op);
  }
  {
    OpHarness h;
    std::vector<float> x;
    NodeId y = h.b.softcap(h.b.scale(h.input("x", T, C, x, 31), 40.0), 30.0);
    EXPECT_LT(compare_step(h, y, T), 2e-6) << "softcap";
  }
  for (bool broadcast : {false, true}) {
    for (bool mul : {false, true}) {
      OpHarness h;
      std::vector<float> a, b;
      NodeId na = h.input("a", T, C, a, 32);
      NodeId nb = broadcast ? h.weight("b", 0, C, random_vector(size_t(C), 33)) : h.input("b", T, C, b, 34);
      EXPECT_EQ(compare_step(h, mul ? h.b.mul(na, nb) : h.b.add(na, nb), T), 0.0);
    }
  }
  {
    OpHarness h;
    std::vector<float> a, b;
    NodeId na = h.input("a", T, C, a, 35), nb = h.input("b", T, 20, b, 36);
    NodeId y = h.b.concat({h.b.slice(na, 7, 13), nb, h.b.slice(na, 0, 5)});
    EXPECT_EQ(compare_step(h, y, T), 0.0) << "slice/concat";
  }
  {
    OpHarness h;
    std::vector<float> a;
    NodeId na = h.input("a", T, C, a, 37);
    EXPECT_EQ(compare_step(h, na, T, 0, {}, {0, 1, 0, 1, 1}), 0.0) << "output rows";
  }
}

TEST_P(VulkanOps, RopeHalfPairsPartialAndLargePositions) {
  const int64_t T = 6, D = 32, H = 3, C = H * D;
  for (bool pairs : {false, true}) {
    for (int64_t F : {int64_t(16), int64_t(12)}) {
      for (int32_t pos0 : {0, 4000}) {
        OpHarness h;
        std::vector<float> x;
        NodeId in = h.input("x", T, C, x, 40);
        NodeId y = h.b.rope(in, h.weight("f", 0, F, rope_inv_freq(10000.0, 2 * F)), D, pairs, 0.9);
        RuntimeConfig cfg;
        cfg.n_ctx = 4096;
        EXPECT_LT(compare_step(h, y, T, pos0, cfg), 2e-5) << pairs << " " << F << " " << pos0;
      }
    }
  }
}

// Attention through the kv cache, step by step against the CPU: GQA, v_head_dim != head_dim, sliding
// windows small enough that the ring wraps, softcap, two sequences mixed in every batch, prefill and
// decode steps, truncation and reset; q and k through RoPE (folded into the attention kernels); cache
// entries in float32 and in halves (--kv-type f16); decode attention scanned by one workgroup per head
// and split into runs of 4 cache slots (a 96-slot cache: 24 runs, combined on the device).
TEST_P(VulkanOps, AttentionStepsRingsSequencesTruncation) {
  struct Case {
    int64_t H, KVH, D, DV, window;
    double softcap;
    int rope;  // 0 none, 1 rotate-half over all dims, 2 pairs over part of the dims, attn_factor 0.8
  };
  for (const int split : {0, 4})
  for (const DType kv : {DType::F32, DType::F16})
  for (const Case& c : {Case{4, 2, 16, 16, 0, 0, 1}, Case{4, 1, 64, 32, 5, 0, 2}, Case{2, 2, 80, 80, 0, 3.0, 0},
                        Case{6, 3, 8, 8, 7, 0, 1}, Case{2, 1, 10, 6, 0, 0, 1}}) {
    SCOPED_TRACE(testing::Message() << "H " << c.H << " KVH " << c.KVH << " D " << c.D << " window " << c.window
                                    << " kv " << dtype_name(kv) << " split " << split);
    attn_split_ = split;
    OpHarness h;
    const int64_t V = 64;  // table rows: token ids pick q, k, v rows
    std::vector<float> q, k, v;
    NodeId nq = h.input("q", V, c.H * c.D, q, 50), nk = h.input("k", V, c.KVH * c.D, k, 51);
    NodeId nv = h.input("v", V, c.KVH * c.DV, v, 52);
    GraphBuilder::AttentionSpec s;
    s.heads = c.H, s.kv_heads = c.KVH, s.head_dim = c.D, s.v_head_dim = c.DV, s.scale = 0.4;
    s.window = c.window, s.softcap = c.softcap;
    if (c.rope) {
      const int64_t F = c.rope == 1 ? c.D / 2 : c.D / 4;
      NodeId f = h.weight("freq", 0, F, rope_inv_freq(10000.0, 2 * F));
      nq = h.b.rope(nq, f, c.D, c.rope == 2, c.rope == 2 ? 0.8 : 1.0);
      nk = h.b.rope(nk, f, c.D, c.rope == 2, c.rope == 2 ? 0.8 : 1.0);
    }
    h.model->graph = h.b.finish(h.b.output_rows(h.b.attention(nq, nk, nv, s)));
    h.model->info.vocab_size = V;
    RuntimeConfig cfg;
    cfg.max_batch = 12, cfg.n_ctx = 96, cfg.max_seqs = 2, cfg.threads = 2;
    cfg.kv_dtype = kv;  // both sides round the cache's entries to halves alike
    auto [vk, cpu] = executors(h.model, cfg, options());
    expect_all_on_vulkan(*vk);
    std::mt19937 rng(7);
    int32_t pos[2] = {0, 0};
    double worst = 0;
    const auto step = [&](const Batch& b) {
      worst = std::max(worst, max_err(vk->step(b).data, cpu->step(b).data));
    };
    // Prefill chunks and decode steps, both sequences in most batches.
    for (int it = 0; it < 14; ++it) {
      Batch b;
      const int n0 = it < 3 ? 11 : 1 + it % 3;
      for (int i = 0; i < n0 && pos[0] < 90; ++i) b.add(int32_t(rng() % V), pos[0]++, 0, true);
      if (it % 2) b.add(int32_t(rng() % V), pos[1]++, 1, true);
      if (b.size()) step(b);
      if (it == 8) {  // roll sequence 0 back by 5 positions; reset sequence 1
        pos[0] -= 5;
        vk->seq_truncate(0, pos[0]), cpu->seq_truncate(0, pos[0]);
        pos[1] = 0;
        vk->seq_reset(1), cpu->seq_reset(1);
      }
    }
    EXPECT_LT(worst, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Subgroups, VulkanOps, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "subgroups" : "shared_memory"; });

// The fusions the decode list makes on a decoder block: norm + q/k/v one launch, ropes applied by
// the kv write (k) and the attention (q), residual adds folded, gate/up/activation/product one launch:
// a layer is 6 launches (norm+qkv, kv write, attention, o+add, norm+GLU, down+add).
// Greedy steps (Executor::step_argmax) take the argmax on the device and read back one id a row: the
// ids must be the argmax (lowest column among equal maxima) of the logits the same backend computes,
// over rows as wide as vocabularies and steps of several rows. The weight's second half repeats its
// first, so every row holds exact ties (equal rows give bit-equal products), won by the lower column.
TEST(VulkanGreedy, DeviceArgmaxOfWideRowsWithTies) {
  REQUIRE_VULKAN();
  for (int64_t N : {int64_t(100), int64_t(2050), int64_t(49152)}) {
    OpHarness h;
    const int64_t K = 64;
    std::vector<float> x, half = random_vector(size_t(N / 2 * K), 5), w(half);
    w.insert(w.end(), half.begin(), half.end());
    NodeId in = h.input("x", 16, K, x, 2);
    h.model->graph = h.b.finish(h.b.output_rows(h.b.matmul(in, h.weight("w", N, K, w))));
    h.model->info.vocab_size = 16;
    RuntimeConfig cfg;
    cfg.max_batch = 16, cfg.threads = 2;
    auto [vk, cpu] = executors(h.model, cfg, VulkanOptions{});
    auto [vk2, cpu2] = executors(h.model, cfg, VulkanOptions{});
    expect_all_on_vulkan(*vk);
    for (int64_t T : {1, 5, 16, 2}) {
      Batch b;
      for (int64_t i = 0; i < T; ++i) b.add(int32_t((i * 7 + T) % 16), int32_t(i), 0, i % 2 == 0 || i + 1 == T);
      const HostTensor& logits = vk2->step(b);
      std::vector<int32_t> want;
      for (int64_t r = 0; r < logits.rows; ++r) {
        want.push_back(argmax(std::span<const float>(logits.row(r), size_t(logits.cols))));
        EXPECT_LT(want.back(), N / 2) << "the tie goes to the lower column";
      }
      EXPECT_EQ(vk->step_argmax(b), want) << "N " << N << " T " << T;
    }
  }
}

TEST(VulkanProgram, DecodeListFusesNormQkvGluAndResiduals) {
  const std::string dir = shared("fixtures/tiny/llama");
  if (!have_shared("fixtures/tiny/llama")) GTEST_SKIP() << "missing fixtures";
  auto model = Model::load(dir);
  const Graph& g = model->graph;
  SegmentSpec spec;
  spec.graph = &g;
  spec.weights = &model->weights;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!is_source_op(g.nodes[i].op)) spec.nodes.push_back(int32_t(i));
  spec.outputs = {g.output};
  const vk::Program p = vk::build_program(spec, vk::Tuning{});
  int layers = 0;
  for (const StateDecl& s : g.states) layers += s.kind == "kv";
  ASSERT_EQ(layers, 3);
  // embed + 6 per layer + final (output rows, norm + lm_head)
  EXPECT_EQ(p.small.size(), size_t(1 + 6 * layers + 2));
  for (const vk::Kernel& k : p.small) EXPECT_NE(k.shader, "rope");
  for (const vk::Kernel& k : p.large) EXPECT_NE(k.shader, "rope");
  EXPECT_EQ(p.fused_matmuls, 5 * layers);
  int matvecs = 0;
  for (const vk::Kernel& k : p.small) matvecs += k.shader == "gemv";
  EXPECT_EQ(matvecs, 4 * layers + 1);
  EXPECT_GT(p.large.size(), p.small.size());

  // Quantized (int4: Q4 layers, Q8 head) with int8 activations: every decode product is gemv_i8.
  quantize_weights(*model, QuantPolicy::parse("int4"));
  vk::Tuning t;
  t.matvec_int8 = true;
  const vk::Program q = vk::build_program(spec, t);
  int i8 = 0;
  for (const vk::Kernel& k : q.small) i8 += k.shader == "gemv_i8";
  EXPECT_EQ(i8, 4 * layers + 1);
}

// ELM_VULKAN_INT8 / VulkanOptions::int8 choose the activations of quantized decode products where the
// device has integer dot products (the description says which), and float activations elsewhere.
TEST(VulkanBackend, Int8ActivationsWhereTheDeviceHasDotProducts) {
  REQUIRE_VULKAN();
  for (int int8 : {-1, 0, 1}) {
    VulkanOptions o;
    o.int8 = int8;
    const std::string d = vulkan_device_description(*make_vulkan_backend(RuntimeConfig{}, o));
    const char* env = std::getenv("ELM_VULKAN_INT8");
    const bool off = int8 == 0 || (int8 < 0 && env && std::string(env) == "0");
    const bool want = !off && vulkan_int8();
    EXPECT_EQ(d.find("int8 x") != std::string::npos, want) << d;
  }
}

// The CPU's int8 cache entries have no Vulkan kernels: attention (with its cache) runs on the CPU, the
// rest on Vulkan, and the logits are the CPU's own with that cache.
TEST(VulkanBackend, Int8KvCacheLeavesAttentionToTheCpu) {
  REQUIRE_VULKAN();
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  auto model = Model::load(shared("fixtures/tiny/llama"));
  SessionOptions o;
  o.runtime.threads = 2, o.runtime.kv_dtype = DType::I8;
  SessionOptions on_cpu = o;
  o.backends = {"vulkan"};
  Session vk(model, o), cpu(model, on_cpu);
  const Graph& g = model->graph;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const int b = vk.executor().plan().node_backend[i];
    if (g.nodes[i].op == Op::Attention) EXPECT_EQ(b, 1) << "attention node " << i << " should run on the CPU";
    if (g.nodes[i].op == Op::MatMul) EXPECT_EQ(b, 0) << "matmul node " << i << " should run on Vulkan";
  }
  const std::vector<int32_t> ids = {1, 5, 9, 2, 7, 3, 11, 4};
  const std::vector<float> want = cpu.feed_all(0, ids), got = vk.feed_all(0, ids);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LT(rel_max_err(got.data(), want.data(), want.size()), 1e-4);
}

namespace {

class VulkanFixture : public testing::TestWithParam<std::string> {};

}  // namespace

// The tiny transformers fixtures on Vulkan: logits within 1e-4 of transformers' in one prefill and
// token by token, with every node on the GPU.
TEST_P(VulkanFixture, MatchesTransformers) {
  REQUIRE_VULKAN();
  const std::string rel = "fixtures/tiny/" + GetParam();
  ELM_REQUIRE_SHARED(rel);
  auto model = Model::load(shared(rel));
  const FixtureRef ref = load_fixture_ref(shared(rel));
  SessionOptions o;
  o.backends = {"vulkan"};
  o.runtime.threads = 2;
  {
    Session s(model, o);
    expect_all_on_vulkan(s.executor());
  }
  const FixtureErrors e = fixture_errors(model, ref, o);
  EXPECT_LT(e.prefill, 1e-4) << "prefill";
  EXPECT_LT(e.stepwise, 1e-4) << "stepwise";
  RecordProperty("prefill_rel_err", std::to_string(e.prefill));
  RecordProperty("stepwise_rel_err", std::to_string(e.stepwise));
}

INSTANTIATE_TEST_SUITE_P(CoreFamilies, VulkanFixture,
                         testing::Values("llama", "llama3", "mistral", "qwen2", "qwen3", "phi3", "smollm3", "gemma3",
                                         "gemma4"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

class VulkanHybridFixture : public testing::TestWithParam<std::string> {};

// Families with ops the Vulkan backend leaves to the CPU (AltUp streams, activation sparsity, conv and
// delta-rule recurrences): the graph is split into Vulkan and CPU segments, values cross between
// them, and KV sharing spans Vulkan segments (Gemma 3n). Same bound as on the CPU alone. (Gemma 4's
// per-layer head geometry and proportional RoPE run on Vulkan entirely: it is with the core families.)
TEST_P(VulkanHybridFixture, MatchesTransformersAcrossVulkanAndCpuSegments) {
  REQUIRE_VULKAN();
  const std::string rel = "fixtures/tiny/" + GetParam();
  ELM_REQUIRE_SHARED(rel);
  auto model = Model::load(shared(rel));
  const FixtureRef ref = load_fixture_ref(shared(rel));
  SessionOptions o;
  o.backends = {"vulkan"};
  o.runtime.threads = 2;
  {
    Session s(model, o);
    const PartitionPlan& plan = s.executor().plan();
    int on_vulkan = 0, on_cpu = 0;
    for (int b : plan.node_backend) on_vulkan += b == 0, on_cpu += b == 1;
    EXPECT_GT(on_vulkan, on_cpu) << "most nodes should run on Vulkan";
    EXPECT_GT(on_cpu, 0) << "this family has ops only the CPU runs";
    RecordProperty("segments", std::to_string(plan.segments.size()));
  }
  const FixtureErrors e = fixture_errors(model, ref, o);
  EXPECT_LT(e.prefill, 1e-4) << "prefill";
  EXPECT_LT(e.stepwise, 1e-4) << "stepwise";
}

INSTANTIATE_TEST_SUITE_P(HybridFamilies, VulkanHybridFixture, testing::Values("gemma3n", "qwen3_5"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// What greedy speculative decoding needs from Vulkan, as CpuBatchInvariance checks it on the CPU: every
// row of a decode step of up to 8 tokens (the gemv and attention launches a verification pass takes)
// equals what a one-token step computes, bit for bit, on float, int8 and int4 weights with GQA and
// sliding windows, with the device's default decode products (gemv_i8 where it has dot products) and
// float32 or f16 cache entries (a one-token step rounds its own key and value as the cache holds them).
// Also with decode attention split into runs of 16 cache slots (ELM_VULKAN_ATTN_SPLIT): the runs are
// combined in slot order whichever workgroup finishes last, so the split keeps the invariance.
TEST(VulkanBatchInvariance, DecodeStepsOfUpTo8TokensEqualOneTokenSteps) {
  REQUIRE_VULKAN();
  for (const char* split : {"0", "16"})
  for (const DType kv : {DType::F32, DType::F16}) {
    SCOPED_TRACE(testing::Message() << dtype_name(kv) << " split " << split);
    setenv("ELM_VULKAN_ATTN_SPLIT", split, 1);
    SessionOptions o;
    o.runtime.n_ctx = 512, o.runtime.max_batch = 64, o.runtime.threads = 2, o.runtime.kv_dtype = kv;
    o.backends = {"vulkan"};
    const size_t sizes[] = {3, 8, 1, 5, 2, 4};
    expect_fixtures_steps_equal_one_token_steps(o, 100, 40, sizes);
  }
  unsetenv("ELM_VULKAN_ATTN_SPLIT");
}

// Quantized weights (int4 policy: Q4 layers, Q8 embedding/head) give the CPU's logits, and a session
// rolled back with truncate continues exactly as the CPU's does: with float activations
// (ELM_VULKAN_INT8=0) against the CPU's exact products, and (where the device has integer dot
// products) with gemv_i8 against the CPU's int8-activation kernels, in steps of at most 8 tokens (the
// decode path; larger steps take the tiled float kernels on Vulkan).
TEST(VulkanModel, QuantizedFixtureAndTruncateMatchCpu) {
  REQUIRE_VULKAN();
  if (!have_shared("fixtures/tiny/qwen3")) GTEST_SKIP() << "missing fixtures";
  auto model = Model::load(shared("fixtures/tiny/qwen3"));
  quantize_weights(*model, QuantPolicy::parse("int4"));
  const FixtureRef ref = load_fixture_ref(shared("fixtures/tiny/qwen3"));
  const std::span<const int32_t> ids(ref.ids);
  for (bool int8 : {false, true}) {
    if (int8 && !vulkan_int8()) continue;
    setenv("ELM_VULKAN_INT8", int8 ? "1" : "0", 1);
    SessionOptions vo, co;
    vo.backends = {"vulkan"};
    vo.runtime.threads = co.runtime.threads = 2;
    co.runtime.exact_matmul = !int8;
    Session vs(model, vo), cs(model, co);
    unsetenv("ELM_VULKAN_INT8");
    const auto feed_both = [&](std::span<const int32_t> t) {
      const std::vector<float> a = vs.feed_all(0, t), b = cs.feed_all(0, t);
      return max_err(a, b);
    };
    const double tol = 1e-4;
    const double first = int8 ? std::max(feed_both(ids.first(5)), feed_both(ids.subspan(5, 5))) : feed_both(ids.first(10));
    EXPECT_LT(first, tol) << "int8 " << int8;
    for (size_t i = 10; i < 14; ++i) EXPECT_LT(feed_both(ids.subspan(i, 1)), tol) << "int8 " << int8;
    vs.truncate(0, 6), cs.truncate(0, 6);
    EXPECT_LT(feed_both(ids.subspan(20, 5)), tol) << "int8 " << int8;
  }
}

// `elm compile` stores the shaders; a segment prepared from them computes the same, and damaged
// artifacts are refused with an error rather than handed to the driver.
TEST(VulkanArtifact, CompiledShadersRunAndBadOnesAreRejected) {
  REQUIRE_VULKAN();
  if (!have_shared("fixtures/tiny/gemma3")) GTEST_SKIP() << "missing fixtures";
  auto model = Model::load(shared("fixtures/tiny/gemma3"));
  RuntimeConfig cfg;
  cfg.threads = 2;
  auto backend = make_vulkan_backend(cfg);
  const Graph& g = model->graph;
  SegmentSpec spec;
  spec.graph = &g;
  spec.weights = &model->weights;
  spec.config = cfg;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!is_source_op(g.nodes[i].op)) spec.nodes.push_back(int32_t(i));
  spec.outputs = {g.output};
  const std::vector<uint8_t> art = backend->compile(spec);
  ASSERT_FALSE(art.empty());
  EXPECT_TRUE(backend->accepts_artifact(art));

  Batch b;
  for (int t = 0; t < 5; ++t) b.add(t + 3, t, 0, true);
  BoundaryValues io_plain, io_art;
  backend->prepare(spec)->run(b, io_plain);
  SegmentSpec with = spec;
  with.artifact = art;
  backend->prepare(with)->run(b, io_art);
  EXPECT_EQ(io_plain.at(g.output).data, io_art.at(g.output).data);

  std::vector<uint8_t> bad = art;
  bad[9] ^= 1;  // ABI version
  EXPECT_FALSE(backend->accepts_artifact(bad));
  bad = art;
  bad.resize(bad.size() - 3);
  EXPECT_FALSE(backend->accepts_artifact(bad));
  bad = art;
  const size_t first_spirv = 24 + bad[16];  // magic, abi, count, name length, name, word count
  bad[first_spirv + 12] = 1, bad[first_spirv + 13] = bad[first_spirv + 14] = bad[first_spirv + 15] = 0;  // id bound 1
  EXPECT_FALSE(backend->accepts_artifact(bad));
  with.artifact = bad;
  EXPECT_THROW(backend->prepare(with), Error);
  EXPECT_FALSE(backend->accepts_artifact({}));
}

TEST(VulkanBackend, UnknownDeviceIsAClearError) {
  REQUIRE_VULKAN();
  VulkanOptions o;
  o.device = "no-such-gpu-anywhere";
  try {
    make_vulkan_backend(RuntimeConfig{}, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-gpu-anywhere"), std::string::npos) << e.what();
  }
}

#endif  // ELM_WITH_VULKAN
