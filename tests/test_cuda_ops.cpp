// The CUDA backend's ops against the CPU reference on random shapes: every op, every weight type, the
// decode (matrix-vector) and prefill (tiled) paths, the fused patterns, and the KV cache over many
// steps (ring buffers, mixed sequences, truncation). Skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "cuda_harness.h"
#include "runtime/sampler.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

std::vector<QuantSpec> all_weight_types() {
  return {{DType::F32, 0, DType::F16},  {DType::F16, 0, DType::F16},  {DType::BF16, 0, DType::F16},
          {DType::Q8, 32, DType::F16},  {DType::Q8, 64, DType::F32},  {DType::Q4, 32, DType::F16},
          {DType::Q4, 128, DType::F16}, {DType::Q4M, 32, DType::F16}, {DType::Q4M, 64, DType::F32}};
}

// Tolerance of a product against the CPU's float32 arithmetic: float32 paths differ by summation
// order only; the tensor-core paths round x (and decoded w) to 16 bits.
double product_tolerance(DType act, DType weight, int64_t T) {
  const bool gemv = T <= 8;
  // The gemv takes quantized weights with int8 activations (32-value blocks, like the CPU's kernels);
  // the reference multiplies float activations.
  if (gemv) return is_quantized(weight) ? 1e-2 : 2e-5;
  if (act == DType::F32 && !is_quantized(weight)) return 2e-5;
  return act == DType::BF16 || weight == DType::BF16 ? 2e-2 : 4e-3;
}

// A Llama-style block: the fused norm prologue, q/k/v siblings (bias on q, and on k when k_bias), o and
// down with residual adds, a gated MLP (act(x Wg) * (x Wu)); weights of `type`.
struct BlockSpec {
  int64_t H, I, k_rows, v_rows;
  bool k_bias, add_one;  // add_one: the second norm's weight is 1 + w (Gemma)
  Op act;
};

NodeId llama_block(CudaCase& c, int64_t T, const BlockSpec& s, const QuantSpec& type) {
  const int64_t H = s.H;
  NodeId x = c.input("x", T, H);
  NodeId h = c.b.rms_norm(x, c.weight("n1", 0, H), 1e-5);
  NodeId q = c.b.matmul(h, c.weight("wq", H, H, type, 0.2f), c.weight("bq", 0, H));
  NodeId k = c.b.matmul(h, c.weight("wk", s.k_rows, H, type, 0.2f), s.k_bias ? c.weight("bk", 0, s.k_rows) : kNone);
  NodeId v = c.b.matmul(h, c.weight("wv", s.v_rows, H, type, 0.2f));
  NodeId a = c.b.concat({q, k, v});
  x = c.b.add(x, c.b.matmul(a, c.weight("wo", H, H + s.k_rows + s.v_rows, type, 0.1f)));
  h = c.b.rms_norm(x, c.weight("n2", 0, H), 1e-5, s.add_one);
  NodeId g = c.b.matmul(h, c.weight("wg", s.I, H, type, 0.2f));
  NodeId u = c.b.matmul(h, c.weight("wu", s.I, H, type, 0.2f));
  NodeId m = c.b.mul(c.b.unary(s.act, g), u);
  return c.b.add(x, c.b.matmul(m, c.weight("wd", H, s.I, type, 0.1f)));
}

}  // namespace

TEST(CudaOps, MatMulEveryWeightTypeDecodeAndPrefillShapes) {
  ELM_REQUIRE_CUDA();
  std::mt19937 rng(42);
  for (const QuantSpec& type : all_weight_types()) {
    for (DType act : {DType::F32, DType::BF16}) {
      for (int64_t T : {1, 3, 8, 9, 70, 130, 0}) {
        // Rows of 1 to 40 blocks: the decode products give short rows (up to 16 chunks) 8 or 16 lanes each.
        int64_t K = 32 * (1 + rng() % 40) * (type.group > 32 ? type.group / 32 : 1);
        int64_t N = 1 + rng() % 300;
        if (T == 0) {  // a small model's output head: many short rows, several per sub-warp
          T = 1, N = 36001, K = 32 * (4 + rng() % 9) * (type.group > 32 ? type.group / 32 : 1);
        }
        const bool bias = rng() % 2;
        CudaCase c;
        NodeId x = c.input("x", T, K);
        NodeId w = c.weight("w", N, K, type, 0.5f);
        NodeId y = c.b.matmul(x, w, bias ? c.weight("b", 0, N) : kNone);
        c.finish(y);
        RuntimeConfig cfg;
        cfg.max_batch = 256, cfg.act_dtype = act;
        CudaPair p(c.model, cfg);
        p.expect_all_on_cuda();
        const double err = p.step(make_batch(T));
        EXPECT_LT(err, product_tolerance(act, type.type, T))
            << dtype_name(type.type) << " g" << type.group << " act " << dtype_name(act) << " T " << T << " K " << K
            << " N " << N;
      }
    }
  }
}

// A Llama-style block: the fused norm prologue, q/k/v siblings with bias, gated MLP, residual adds;
// on the decode path and the prefill path, fused and (ELM_CUDA_FUSE=0) unfused.
TEST(CudaOps, FusedBlockPatternsMatchTheCpu) {
  ELM_REQUIRE_CUDA();
  for (const char* fuse : {"1", "0"}) {
    setenv("ELM_CUDA_FUSE", fuse, 1);
    for (const QuantSpec& type : {QuantSpec{DType::F32, 0, DType::F16}, QuantSpec{DType::Q4, 32, DType::F16}}) {
      for (int64_t T : {1, 5, 40}) {
        CudaCase c;
        c.finish(llama_block(c, T, {128, 192, 64, 64, /*k_bias=*/true, /*add_one=*/true, Op::GeluTanh}, type));
        RuntimeConfig cfg;
        cfg.max_batch = 64;
        // Quantized decode steps (the int8-activation gemv) against the CPU's int8-activation kernels:
        // against float activations, the rounding of x compounds over the block's chained products
        // (1.6-1.8 % of the output's range on an H100).
        const bool int8_x = is_quantized(type.type) && T <= 8;
        CudaPair p(c.model, cfg, /*cpu_kernels=*/int8_x);
        p.expect_all_on_cuda();
        const double tol = int8_x ? 5e-3 : is_quantized(type.type) ? 4e-3 : 2e-5;  // see product_tolerance
        EXPECT_LT(p.step(make_batch(T)), tol) << "fuse " << fuse << " " << dtype_name(type.type) << " T " << T;
      }
    }
  }
  unsetenv("ELM_CUDA_FUSE");
}

// The quantized decode products (int8 activations) over a Llama-style block for each quantized type:
// short rows taking 8 or 16 lanes (H 256, 384) and whole warps (512), long rows with all their chunks
// requested at once (the down product's 4608-5120 values), q/k/v of uneven rows sharing x, gated pairs
// with a partial last group, the fused norms, bias and residual, 1-8 tokens; against the CPU's
// int8-activation kernels.
TEST(CudaOps, DecodeProductsQuantizedBlockShapes) {
  ELM_REQUIRE_CUDA();
  std::mt19937 rng(7);
  const std::vector<QuantSpec> types = {{DType::Q8, 32, DType::F16}, {DType::Q8, 64, DType::F32},
                                        {DType::Q4, 32, DType::F16}, {DType::Q4, 128, DType::F16},
                                        {DType::Q4M, 32, DType::F16}};
  for (const QuantSpec& type : types) {
    for (auto [H, I] : {std::pair<int64_t, int64_t>{256, 768}, {384, 1024}, {512, 4608}}) {
      for (int64_t T : {1, 3, 8}) {
        const int64_t I2 = I + 512 * int64_t(rng() % 2);
        CudaCase c;
        c.finish(llama_block(c, T, {H, I2, 136, 120, /*k_bias=*/false, /*add_one=*/false, Op::Silu}, type));
        RuntimeConfig cfg;
        cfg.max_batch = 8;
        CudaPair p(c.model, cfg, /*cpu_kernels=*/true);
        p.expect_all_on_cuda();
        EXPECT_LT(p.step(make_batch(T)), 5e-3)
            << dtype_name(type.type) << " g" << type.group << " H " << H << " I " << I2 << " T " << T;
      }
    }
  }
}

TEST(CudaOps, RmsNormGroupsAddOneAndWeights) {
  ELM_REQUIRE_CUDA();
  for (int64_t group : {int64_t(0), int64_t(16), int64_t(96)}) {
    for (bool add_one : {false, true}) {
      for (bool with_w : {false, true}) {
        CudaCase c;
        const int64_t T = 7, C = 192, G = group ? group : C;
        NodeId x = c.input("x", T, C, 3.0f);
        c.finish(c.b.rms_norm(x, with_w ? c.weight("w", 0, G) : kNone, 1e-6, add_one, group));
        CudaPair p(c.model, {});
        p.expect_all_on_cuda();
        EXPECT_LT(p.step(make_batch(T)), 1e-5) << "group " << group << " add_one " << add_one << " w " << with_w;
      }
    }
  }
}

TEST(CudaOps, ElementwiseUnaryAndBroadcast) {
  ELM_REQUIRE_CUDA();
  const int64_t T = 6, C = 50;
  for (Op op : {Op::Silu, Op::Gelu, Op::GeluTanh, Op::Sigmoid, Op::Softplus, Op::Tanh}) {
    CudaCase c;
    c.finish(c.b.unary(op, c.input("x", T, C, 8.0f)));
    CudaPair p(c.model, {});
    p.expect_all_on_cuda();
    EXPECT_LT(p.step(make_batch(T)), 1e-6) << op_name(op);
  }
  for (Op op : {Op::Add, Op::Mul}) {
    for (bool broadcast : {false, true}) {
      CudaCase c;
      NodeId a = c.input("a", T, C);
      NodeId b = broadcast ? c.weight("b", 0, C) : c.input("b", T, C);
      c.finish(op == Op::Add ? c.b.add(a, b) : c.b.mul(a, b));
      CudaPair p(c.model, {});
      p.expect_all_on_cuda();
      EXPECT_LT(p.step(make_batch(T)), 1e-7) << op_name(op) << " broadcast " << broadcast;
    }
  }
  CudaCase c;
  c.finish(c.b.softcap(c.b.scale(c.input("x", T, C), 7.5), 3.0));
  CudaPair p(c.model, {});
  EXPECT_LT(p.step(make_batch(T)), 1e-6) << "scale, softcap";
}

TEST(CudaOps, SliceConcatAndOutputRows) {
  ELM_REQUIRE_CUDA();
  const int64_t T = 9;
  CudaCase c;
  NodeId x = c.input("x", T, 40);
  NodeId y = c.input("y", T, 13);
  c.finish(c.b.concat({c.b.slice(x, 7, 20), y, c.b.slice(x, 0, 3)}));
  CudaPair p(c.model, {});
  p.expect_all_on_cuda();
  Batch b = make_batch(T);
  for (int64_t t = 0; t < T; ++t) b.want_output[size_t(t)] = t % 3 == 1;
  EXPECT_EQ(p.step(b), 0.0);
  EXPECT_EQ(p.gpu->step(b).rows, 3);
}

TEST(CudaOps, RopeBothPairConventionsPartialAndScaled) {
  ELM_REQUIRE_CUDA();
  for (bool pairs : {false, true}) {
    for (int64_t F : {int64_t(32), int64_t(12)}) {
      for (int64_t T : {1, 21}) {
        CudaCase c;
        const int64_t D = 64, H = 3;
        NodeId x = c.input("x", T, H * D);
        NodeId f = c.b.constant("freq", rope_inv_freq(10000.0, 2 * F));
        c.finish(c.b.rope(x, f, D, pairs, 0.9));
        CudaPair p(c.model, {});
        p.expect_all_on_cuda();
        EXPECT_LT(p.step(make_batch(T, 1000)), 1e-5) << "pairs " << pairs << " F " << F << " T " << T;
      }
    }
  }
}

namespace {

// q, k, v inputs (k rotated through a fused RoPE when `rope`), one attention over kv state.
struct AttnCase {
  CudaCase c;
  AttnCase(int64_t rows, int64_t H, int64_t KVH, int64_t D, int64_t window, double softcap, bool rope) {
    NodeId q = c.input("q", rows, H * D), k = c.input("k", rows, KVH * D), v = c.input("v", rows, KVH * D);
    if (rope) {
      NodeId f = c.b.constant("freq", rope_inv_freq(10000.0, D));
      q = c.b.rope(q, f, D), k = c.b.rope(k, f, D);
    }
    GraphBuilder::AttentionSpec s;
    s.heads = H, s.kv_heads = KVH, s.head_dim = D, s.scale = 1.0 / std::sqrt(double(D)), s.window = window;
    s.softcap = softcap;
    c.finish(c.b.attention(q, k, v, s));
  }
};

}  // namespace

TEST(CudaOps, AttentionPrefillGqaWindowSoftcapRope) {
  ELM_REQUIRE_CUDA();
  for (int64_t D : {int64_t(16), int64_t(64), int64_t(128), int64_t(256)}) {
    for (int64_t T : {int64_t(5), int64_t(100)}) {  // decode kernel / tiled prefill kernel
      for (int64_t window : {int64_t(0), int64_t(17)}) {
        for (double softcap : {0.0, 30.0}) {
          for (bool rope : {false, true}) {
            // f16 activations over an f16 cache: prefill on the tensor cores (head dims 64 and 128),
            // queries and probabilities rounded to f16.
            for (auto [kv, act] : {std::pair{DType::F32, DType::F32}, std::pair{DType::F16, DType::F32},
                                   std::pair{DType::F16, DType::F16}}) {
              AttnCase a(T, 8, 2, D, window, softcap, rope);
              RuntimeConfig cfg;
              cfg.max_batch = 128, cfg.n_ctx = 512, cfg.kv_dtype = kv, cfg.act_dtype = act;
              CudaPair p(a.c.model, cfg);
              p.expect_all_on_cuda();
              const double tol = act == DType::F16 ? 1e-2 : kv == DType::F16 ? 3e-3 : 2e-5;
              EXPECT_LT(p.step(make_batch(T)), tol) << "D " << D << " T " << T << " window " << window << " softcap "
                                                    << softcap << " rope " << rope << " kv " << dtype_name(kv)
                                                    << " act " << dtype_name(act);
            }
          }
        }
      }
    }
  }
}

// The CPU test's scenario on both backends: sequences fed in steps of 1..3 tokens, mixed in one batch
// at different positions, a sliding window small enough for a ring buffer; then truncation and reset.
// An f16 cache takes the decode kernel of 8-lane teams (head dims in 8-value chunks), f32 the tiled one.
TEST(CudaOps, AttentionStepwiseRingBufferSequencesTruncateReset) {
  ELM_REQUIRE_CUDA();
  for (DType kv : {DType::F32, DType::F16}) {
    const double tol = kv == DType::F16 ? 3e-3 : 2e-5;
    for (int64_t window : {int64_t(0), int64_t(6)}) {
      const int64_t T = 40;
      AttnCase a(T, 4, 1, 32, window, 0.0, true);
      RuntimeConfig cfg;
      cfg.max_batch = 4, cfg.n_ctx = 256, cfg.max_seqs = 3, cfg.kv_dtype = kv;
      CudaPair p(a.c.model, cfg);
      p.expect_all_on_cuda();
      int32_t p0 = 0, p1 = 0;
      for (int step = 0; p1 < T; ++step) {
        Batch b;
        const int n0 = std::min<int>(1 + step % 3, int(T - p0));
        for (int i = 0; i < n0; ++i, ++p0) b.add(p0, p0, 0, true);
        if (step > 0 && p1 < T) b.add(p1, p1, 2, true), ++p1;
        if (b.size() == 0) continue;
        ASSERT_LT(p.step(b), tol) << "window " << window << " step " << step << " kv " << dtype_name(kv);
      }
      for (Executor* e : {p.gpu.get(), p.cpu.get()}) e->seq_truncate(0, int32_t(T - 5));
      Batch b = make_batch(3, int32_t(T - 5), 0, int32_t(T - 5));
      EXPECT_LT(p.step(b), tol) << "after truncate";
      for (Executor* e : {p.gpu.get(), p.cpu.get()}) e->seq_reset(2);
      EXPECT_LT(p.step(make_batch(4, 0, 2, 7)), tol) << "after reset";
      // Single tokens (the fused cache write) of both sequences, one step each.
      for (int32_t pos = 4; pos < 9; ++pos) ASSERT_LT(p.step(make_batch(1, pos, 2, pos + 7)), tol) << "decode " << pos;
    }
  }
}

// Decoding deep into a long context: the key range is split over many blocks (flash-decoding). Group
// sizes 3 and 8 of 64-wide heads, 1 of 128-wide (the f16 cache's team kernel rounds the group up to 4 / 8
// / 1 heads and a 128-wide row to 2 chunks a lane).
TEST(CudaOps, AttentionLongContextDecodeSplits) {
  ELM_REQUIRE_CUDA();
  struct Shape { int64_t H, KVH, D; };
  for (DType kv : {DType::F32, DType::F16}) {
    for (Shape sh : {Shape{6, 2, 64}, Shape{16, 2, 64}, Shape{4, 4, 128}}) {
      if (kv == DType::F32 && sh.H != 6) continue;
      const double tol = kv == DType::F16 ? 3e-3 : 2e-5;
      const int64_t T = 1200;
      AttnCase a(T, sh.H, sh.KVH, sh.D, 0, 0.0, true);
      RuntimeConfig cfg;
      cfg.max_batch = 512, cfg.n_ctx = 2048, cfg.kv_dtype = kv;
      CudaPair p(a.c.model, cfg);
      int32_t pos = 0;
      while (pos < T - 4) {
        const int64_t n = std::min<int64_t>(512, T - 4 - pos);
        EXPECT_LT(p.step(make_batch(n, pos, 0, pos)), tol) << "prefill at " << pos;
        pos += int32_t(n);
      }
      for (; pos < T; ++pos)
        EXPECT_LT(p.step(make_batch(1, pos, 0, pos)), tol) << "decode at " << pos << " H " << sh.H << " D " << sh.D
                                                            << " kv " << dtype_name(kv);
    }
  }
}

TEST(CudaOps, EmbedEveryTableType) {
  ELM_REQUIRE_CUDA();
  for (const QuantSpec& type : all_weight_types()) {
    CudaCase c;
    const int64_t V = 50, C = 128;
    c.finish(c.b.embed(c.weight("table", V, C, type), c.b.token_ids()));
    CudaPair p(c.model, {});
    p.expect_all_on_cuda();
    Batch b;
    for (int32_t id : {49, 0, 17, 17, 3}) b.add(id, int32_t(b.size()), 0, true);
    EXPECT_EQ(p.step(b), 0.0) << dtype_name(type.type);
  }
}

// Decode steps replay captured graphs: many identical-shape steps give the CPU's results, and a
// token outside the table is an elm::Error before anything runs.
TEST(CudaOps, GraphReplayAndBadTokens) {
  ELM_REQUIRE_CUDA();
  AttnCase a(64, 4, 2, 32, 0, 0.0, true);
  RuntimeConfig cfg;
  cfg.max_batch = 8, cfg.n_ctx = 128;
  CudaPair p(a.c.model, cfg);
  for (int32_t pos = 0; pos < 20; ++pos) ASSERT_LT(p.step(make_batch(1, pos, 0, pos)), 2e-5) << pos;
  Batch bad = make_batch(1, 20, 0, 64);  // the input tables have 64 rows
  EXPECT_THROW(p.gpu->step(bad), Error);
  EXPECT_LT(p.step(make_batch(1, 20, 0, 20)), 2e-5) << "after the rejected step";
}

// The device argmax (greedy decoding, speculative verification) over rows as wide as a vocabulary,
// split across blocks, against the argmax of the CPU's logits; steps of varying row counts reuse its
// scratch (per-row counters the kernel leaves at zero).
TEST(CudaOps, DeviceArgmaxOfWideRows) {
  ELM_REQUIRE_CUDA();
  for (int64_t N : {100, 2049, 49152, 151936}) {
    CudaCase c;
    NodeId x = c.input("x", 80, 64);  // token ids index its rows
    c.finish(c.b.matmul(x, c.weight("w", N, 64)));
    RuntimeConfig cfg;
    cfg.max_batch = 64, cfg.exact_matmul = true;
    CudaPair p(c.model, cfg);
    for (int64_t T : {1, 5, 40, 2, 1, 64, 3}) {
      const Batch b = make_batch(T, 0, 0, int32_t(T % 7));
      const HostTensor& logits = p.cpu->step(b);
      std::vector<int32_t> want;
      for (int64_t r = 0; r < logits.rows; ++r)
        want.push_back(argmax(std::span<const float>(logits.row(r), size_t(logits.cols))));
      EXPECT_EQ(p.gpu->step_argmax(b), want) << "N " << N << " T " << T;
    }
  }
}
