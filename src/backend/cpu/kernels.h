// CPU kernels over float32 activations. Activations are row-major [rows, cols]. These are the
// reference implementations every faster variant (SIMD, GPU) is tested against; `matmul` dispatches
// to the fastest variant the CPU supports (matmul.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/qgemm.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace elm::cpu {

// out[t] = row ids[t] of table. Throws elm::Error for ids outside [0, table rows).
void embed(const TensorView& table, const int32_t* ids, int64_t T, float* out);
// The same from the packed copy of a quantized table (a tied output head's, see unpack_row).
void embed(const PackedQ& table, const int32_t* ids, int64_t T, float* out);

// A matmul weight as the kernels take it: the model's tensor, plus its packed form (qgemm.h) when
// `elm compile` stored one (packed.data null otherwise).
struct MatmulWeight {
  const TensorView* plain = nullptr;
  PackedQ packed;
};

// y [R, N] = x [R, K] w^T (+ bias [N]); w is [N, K] of any weight dtype. Runs the fastest kernels of
// `isa` (default: the active family, cpu_features.h). act: the activation mode (RuntimeConfig::
// act_dtype); with BF16, BF16 weights may multiply x rounded to bf16 (fgemm.h's bf16 dot product).
void matmul(const float* x, int64_t R, const MatmulWeight& w, const float* bias, float* y, ThreadPool& pool,
            Isa isa = active_isa(), DType act = DType::F32);
inline void matmul(const float* x, int64_t R, const TensorView& w, const float* bias, float* y, ThreadPool& pool) {
  matmul(x, R, MatmulWeight{&w, {}}, bias, y, pool);
}
// Several products of the same x [R, K] (q, k and v; gate and up): y_i = x w_i^T (+ bias_i). With
// packed quantized weights x is quantized once and all of them run as one parallel job (one
// dispatch and one wait instead of one per product: a decode step has hundreds); otherwise one
// matmul each. Results equal separate matmul calls bit for bit.
struct MatmulJob {
  const MatmulWeight* w = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
};
void matmul_group(const float* x, int64_t R, const std::vector<MatmulJob>& jobs, ThreadPool& pool,
                  Isa isa = active_isa(), DType act = DType::F32);
// A gated feed-forward product: y [R, N] = act(x wg^T + bg) * (x wu^T + bu), where act is Silu
// (vec_ops' silu, as the Silu op runs), Gelu or GeluTanh (unary), both weights packed quantized
// with the same shape. A few panels of both products at a time, combined while still in L1, in
// place of two products, an activation pass and a product pass over [R, N] buffers. round: the
// activation type (F32, or BF16 / F16: each intermediate rounded as the separate ops round it),
// so results equal the unfused ops bit for bit. Returns false (nothing done) for weights it cannot
// take: the caller runs the ops one by one.
enum class Unary;
bool matmul_glu(const float* x, int64_t R, const MatmulJob& gate, const MatmulJob& up, Unary act, DType round,
                float* y, ThreadPool& pool, Isa isa = active_isa());
// The plain reference: dequantizes each weight row and takes float dot products.
void matmul_ref(const float* x, int64_t R, const TensorView& w, const float* bias, float* y, ThreadPool& pool);

// RMSNorm over runs of `group` columns; w has `group` values or is null.
void rms_norm(const float* x, int64_t R, int64_t C, const float* w, int64_t group, float eps, bool add_one, float* y);

// Each row of x [R, C] times rms(ref row) / sqrt(max(mean(x row^2), floor)); ref is [R, ref_cols].
void rms_rescale(const float* x, int64_t R, int64_t C, const float* ref, int64_t ref_cols, float floor, float* y);

// Activation sparsity: y = max(0, x - (mean + std_mult * std)) per row of x [R, C].
void gaussian_topk(const float* x, int64_t R, int64_t C, float std_mult, float* y);

// x [R, n*C] holds n streams per row; y [R, m*C] stream j = sum_i coefs[j*n + i] * x stream i, where
// coefs is [R, m*n] or one broadcast row.
void stream_mix(const float* x, int64_t R, int64_t n, int64_t C, const float* coefs, int64_t m, bool coefs_broadcast,
                float* y);

enum class Unary { Silu, Gelu, GeluTanh, Sigmoid, Softplus, Tanh };
void unary(Unary f, const float* x, int64_t n, float* y);
void scale(const float* x, int64_t n, float s, float* y);
void softcap(const float* x, int64_t n, float cap, float* y);
// y = a + b / a * b; b has R rows or one broadcast row.
void add(const float* a, const float* b, int64_t R, int64_t C, bool b_broadcast, float* y);
void mul(const float* a, const float* b, int64_t R, int64_t C, bool b_broadcast, float* y);

// Recurrent layers process one sequence's tokens at a time: `rows` lists the n rows of the step that
// belong to the sequence, in order; the state block is that sequence's.

// Depthwise causal conv1d, x and y rows [C], w [C, K]. window [K - 1, C] holds the sequence's last
// K - 1 inputs (oldest first) and is advanced past the run.
void causal_conv1d(const float* x, const int64_t* rows, int64_t n, int64_t C, const float* w, int64_t K, float* window,
                   float* y);

// Gated delta rule (ops.def GatedDeltaRule). state: [v_heads, dk, dv] for the sequence.
struct DeltaRuleArgs {
  const float *q, *k, *v, *g, *beta;  // rows [Hk*dk], [Hk*dk], [Hv*dv], [Hv], [Hv]
  float* out;                         // rows [Hv*dv]
  int64_t k_heads = 0, v_heads = 0, dk = 0, dv = 0;
  float scale = 1;
  bool l2norm = false;
};
// Token by token: the reference form, and the one decode uses.
void gated_delta_rule_recurrent(const DeltaRuleArgs& a, const int64_t* rows, int64_t n, float* state,
                                ThreadPool& pool);
// Chunk by chunk (the WY / UT-transform form): the same values up to rounding, with the work in
// chunk-sized matrix products; prefill uses it.
void gated_delta_rule_chunked(const DeltaRuleArgs& a, const int64_t* rows, int64_t n, float* state, ThreadPool& pool);

// Rotates the first 2F dims of every head_dim-wide head of x [T, C] in place.
void rope(float* x, int64_t T, int64_t C, const int32_t* positions, const float* inv_freq, int64_t F, int64_t head_dim,
          bool pairs, float attn_factor);
// rope() in two steps, so a step's angles are computed once for all layers: row t of table [T, 2F]
// holds cos of pos * inv_freq[i] for i < F, then the sines (both times attn_factor); rope_apply
// writes y = x rotated with it (y may be x).
void rope_table(const int32_t* positions, int64_t T, const float* inv_freq, int64_t F, float attn_factor, float* table);
void rope_apply(const float* x, float* y, int64_t T, int64_t C, const float* table, int64_t F, int64_t head_dim,
                bool pairs);

// Fast variants of the light ops: SIMD (vec_ops.h) and, for prefill-sized inputs, split over rows
// on the pool. Tested against the references above (tests/test_ops.cpp runs them in the executor).
void rms_norm_fast(const float* x, int64_t R, int64_t C, const float* w, int64_t group, float eps, bool add_one,
                   float* y, ThreadPool& pool);
void add_fast(const float* a, const float* b, int64_t R, int64_t C, bool b_broadcast, float* y, ThreadPool& pool);
void mul_fast(const float* a, const float* b, int64_t R, int64_t C, bool b_broadcast, float* y, ThreadPool& pool);
void silu_fast(const float* x, int64_t n, float* y, ThreadPool& pool);
void rope_apply_fast(const float* x, float* y, int64_t T, int64_t C, const float* table, int64_t F, int64_t head_dim,
                     bool pairs, ThreadPool& pool);

// Activation modes (RuntimeConfig::act_dtype): every value an op produces is rounded to BF16 or F16
// precision (round to nearest even; F16 overflows to inf) as if feature maps were stored in that
// type, while the arithmetic inside each op stays f32. F32 does nothing.
void round_activations(DType t, float* x, int64_t n);

}  // namespace elm::cpu
