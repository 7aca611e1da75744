// The CUDA kernels, as host functions that enqueue them on a stream. Activations are float32 row-major
// [rows, cols] device matrices; weights stay in elm's layouts (core/dtype.h), so the mapped file's bytes
// are uploaded as they are and dequantized in registers. Each function checks its launch.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace elm::cuda {

// A weight matrix [rows, cols] on the device, in elm's layout.
struct DeviceWeight {
  const uint8_t* data = nullptr;
  int64_t rows = 0, cols = 0;
  DType dtype = DType::F32;
  int group = 0;             // quantized types: values per scale
  bool scale_f32 = false;    // quantized types: scales (and mins) are f32, else f16
  int64_t scales_offset = 0, mins_offset = 0;
};

// Whether the kernels handle this weight as a matmul operand / embedding table.
bool weight_supported(DType t, int64_t cols);

// out[t] = row ids[t] of table, dequantized. ids must be in range (checked by the caller on the host).
void embed(const DeviceWeight& table, const int32_t* ids, int T, float* out, cudaStream_t s);

// ---- Matrix products ----

// Arithmetic of the tiled (prefill) products: F32 is exact float arithmetic on CUDA cores; F16 / BF16
// round x (and w) to that type and use the tensor cores with float accumulation.
enum class MmaType { F32, F16, BF16 };
// Activation of a gated product.
enum class GateAct { None, Silu, Gelu, GeluTanh };

// y_i [T, N_i] = norm?(x) w_i^T + bias_i + residual_i for up to 3 weights sharing x (q, k, v), or, when
// gate != None, y_0 = act(x w_0^T + bias_0) * (x w_1^T + bias_1) (gated MLP). norm applies an RMSNorm to
// each row of x first (weights norm_w, optional). All weights share dtype, group and K.
struct MatmulArgs {
  const float* x = nullptr;
  int T = 0, K = 0;
  bool norm = false, norm_add_one = false;
  const float* norm_w = nullptr;
  float eps = 0;
  int n = 1;
  DeviceWeight w[3];
  float* y[3] = {nullptr, nullptr, nullptr};
  const float* bias[3] = {nullptr, nullptr, nullptr};
  const float* residual[3] = {nullptr, nullptr, nullptr};
  GateAct gate = GateAct::None;
  MmaType mma = MmaType::F32;
  // Scratch for prefill sizes (16-bit x and weights, gate and up products): matmul_scratch_floats().
  float* scratch = nullptr;
};
// Most tokens the matrix-vector kernel takes for this K (beyond it the tiled kernels run).
int gemv_max_tokens(int K, DType w);
// Scratch floats matmul() needs for these products at up to max_T tokens.
size_t matmul_scratch_floats(const MatmulArgs& a, int max_T);
void matmul(const MatmulArgs& a, cudaStream_t s);

// ---- Elementwise and layout ----

void rms_norm(const float* x, int R, int C, const float* w, int group, float eps, bool add_one, float* y,
              cudaStream_t s);

enum class EwOp { Add, Mul, Scale, Silu, Gelu, GeluTanh, Sigmoid, Softplus, Tanh, SoftCap };
// y = a op b (b: [R, C], or one row when b_broadcast) for Add / Mul; y = f(a) for the rest (param: the
// scale or the cap).
void elementwise(EwOp op, const float* a, const float* b, bool b_broadcast, int R, int C, float param, float* y,
                 cudaStream_t s);
// y[r, y_off + c] = x[r, start + c] for c < len (Slice, Concat).
void copy_cols(const float* x, int R, int x_cols, int start, int len, float* y, int y_cols, int y_off,
               cudaStream_t s);
// y[i] = x[rows[i]] for i < n (OutputRows).
void gather_rows(const float* x, int C, const int32_t* rows, int n, float* y, cudaStream_t s);

// RoPE parameters (ops.def Rope): rotates the first 2F dims of every head_dim-wide head.
struct RopeArgs {
  const float* inv_freq = nullptr;  // device, F floats; null = no rotation
  int F = 0, head_dim = 0;
  bool pairs = false;
  float attn_factor = 1;
};
void rope(const float* x, int T, int C, const int32_t* positions, const RopeArgs& r, float* y, cudaStream_t s);

// ---- KV cache and attention ----

// One attention state's cache on the device: per sequence K [cap, kv_heads, head_dim], V [cap, kv_heads,
// v_head_dim] (float or half) and pos [cap] (-1 = empty). ring: slot = pos % cap, else slot = pos.
struct KvView {
  void* k = nullptr;
  void* v = nullptr;
  int32_t* pos = nullptr;
  int cap = 0, kv_heads = 0, head_dim = 0, v_head_dim = 0;
  bool ring = false, half = false;
};

// Stores k, v rows of the step's tokens (k rotated by rope when given) at their positions.
void kv_write(const KvView& kv, const float* k, const float* v, int T, const int32_t* positions,
              const int32_t* seqs, const RopeArgs& rope_k, cudaStream_t s);
void kv_reset(const KvView& kv, int seq, cudaStream_t s);
void kv_truncate(const KvView& kv, int seq, int32_t n_past, cudaStream_t s);

struct AttnArgs {
  const float* q = nullptr;  // [T, heads * head_dim], rotated by rope_q first when given
  RopeArgs rope_q;
  // The step's keys and values to store first (null: the attention only reads the cache); k is
  // rotated by rope_k first when given.
  const float* k_new = nullptr;
  const float* v_new = nullptr;
  RopeArgs rope_k;
  int T = 0, heads = 0;
  float scale = 1, softcap = 0;
  int window = 0;
  bool single_seq = false;  // every token of the step belongs to one sequence: the tiled kernel may run
  // 16-bit activations: prefill over an f16 cache may score and weight on the tensor cores (queries
  // and probabilities rounded to f16, float32 accumulation); float32 activations keep float32 arithmetic.
  bool tensor_cores = false;
  float* out = nullptr;     // [T, heads * v_head_dim]
  float* work = nullptr;    // attention_work_floats(...) floats
  int* counters = nullptr;  // attention_counters(...) ints, zero before the first launch
};
// Workspace of the split-key (flash-decoding) kernel for up to max_T tokens.
size_t attention_work_floats(int max_T, int heads, int v_head_dim, int cap);
size_t attention_counters(int max_T, int heads);
// Whether the attention kernels handle these head shapes.
bool attention_supported(int heads, int kv_heads, int head_dim, int v_head_dim);
void attention(const AttnArgs& a, const KvView& kv, const int32_t* positions, const int32_t* seqs, cudaStream_t s);

// ---- Sampling ----

// out[r] = argmax of row r of x [R, C] (ties: the lowest index). `scratch`: argmax_scratch_bytes(R)
// bytes of device memory (or more, for calls of up to that many rows), zeroed before the first call
// (the kernel leaves the counters in it at zero again).
size_t argmax_scratch_bytes(int R);
void argmax_rows(const float* x, int R, int C, int32_t* out, void* scratch, cudaStream_t s);

}  // namespace elm::cuda
