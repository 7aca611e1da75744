// Matmul against quantized weights (Q8, Q4, Q4M) with integer dot products.
//
// The activations x [R, K] are quantized once per matmul to int8 in blocks of 32 values (like
// llama.cpp's Q8 activations): x ~= d * q, d = max|x| / 127 per block, q rounded to nearest even.
// Then every output is a sum over blocks b of
//     d_a[b] * d_w[g(b)] * (sum_k q_a * q_w  -  off * sum_k q_a)      (Q8 packed: off = 128, Q4: off = 8)
//   + d_a[b] * min_w[g(b)] * sum_k q_a                                 (Q4M only)
// where the integer dot products run on VNNI / maddubs / sdot units.
//
// Weights come in two layouts:
// - plain: the layout of core/dtype.h, used in place from the model file (decode kernels read it
//   directly; prefill packs a few rows at a time into a small buffer first);
// - packed: what `elm compile` stores (CpuBackend::compile), 16 weight rows interleaved so that one
//   64-byte load holds 4 consecutive k values for each of 16 output columns, which is the operand
//   shape of vpdpbusd (one broadcast dword of activations against 16 lanes). Layout of one panel
//   (rows 16p .. 16p+15), for each group of `group` columns, for each block of 32 columns kb:
//     Q8:      8 chunks c of 64 bytes; chunk c, lane n (bytes 4n .. 4n+3) = q_w[n, 32kb + 4c + j] + 128
//              (stored unsigned: the u8 operand of vpdpbusd; the +128 is removed with off = 128)
//     Q4, Q4M: 4 chunks c of 64 bytes; chunk c, lane n, byte j: low nibble = q_w[n, 32kb + 8c + j],
//              high nibble = q_w[n, 32kb + 8c + 4 + j]
//   then, per group, 16 scales (the tensor's scale type), then for Q4M 16 mins. Rows past N are
//   zero. The layout does not depend on the ISA: AVX2, AVX-512 and NEON kernels all read it.
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend/cpu/cpu_features.h"
#include "core/tensor.h"

namespace elm::cpu {

constexpr int64_t kActBlock = 32;   // activation values per int8 scale
constexpr int64_t kPanelRows = 16;  // weight rows per packed panel

// Activations quantized for integer dot products (see above). cols is a multiple of 32.
struct Int8Rows {
  int64_t rows = 0, cols = 0;
  const int8_t* q = nullptr;     // [rows, cols]
  const float* d = nullptr;      // [rows, cols / 32]
  const int32_t* sum = nullptr;  // [rows, cols / 32]: sum of q over the block
};

// The reference quantizer for one row of K values (K a multiple of 32); SIMD versions must give
// identical bytes.
void quantize_row_int8_ref(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum);

// A quantized weight [N, K] in the plain layout, as kernels see it.
struct QMatrix {
  DType type = DType::Q8;
  int64_t n = 0, k = 0;
  int group = 32;
  bool f32_scales = false;
  const uint8_t* quants = nullptr;
  const uint8_t* scales = nullptr;
  const uint8_t* mins = nullptr;  // Q4M only
};
QMatrix qmatrix(const TensorView& w);

// A quantized weight in the packed layout.
struct PackedQ {
  DType type = DType::Q8;
  int64_t n = 0, k = 0;
  int group = 32;
  bool f32_scales = false;
  const uint8_t* data = nullptr;  // panels, each packed_panel_bytes() long
  int64_t panels() const { return (n + kPanelRows - 1) / kPanelRows; }
};
size_t packed_panel_bytes(DType type, int64_t k, int group, bool f32_scales);
inline size_t packed_bytes(const QMatrix& w) {
  return size_t((w.n + kPanelRows - 1) / kPanelRows) * packed_panel_bytes(w.type, w.k, w.group, w.f32_scales);
}
// Packs panels [p0, p1) of w into out (packed_panel_bytes each). Portable.
void pack_panels(const QMatrix& w, int64_t p0, int64_t p1, uint8_t* out);
// Row n of a packed weight as floats [K], equal to dequantize_row of the plain original: embedding
// lookups of a tied table read the packed copy the output head uses, so the original stays out of memory.
void unpack_row(const PackedQ& w, int64_t n, float* out);

// One ISA's kernels. y is [a.rows, ldy] row-major with output column n at y[n] (bias[n]; bias may
// be null). Each call writes its own columns only, so threads split N between them.
struct QKernels {
  // One row of activations (K a multiple of 32), bit-identical to quantize_row_int8_ref.
  void (*quantize_row)(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum);
  // All rows of a against panels [p0, p1) of a packed weight.
  void (*gemm_packed)(const PackedQ& w, const Int8Rows& a, int64_t p0, int64_t p1, const float* bias, float* y,
                      int64_t ldy);
  // pack_panels, bit-identical, faster.
  void (*pack)(const QMatrix& w, int64_t p0, int64_t p1, uint8_t* out);
  // Decode on the plain layout (few rows, groups of 32, 64 or 128; null when the ISA has none):
  // the activations are rearranged once per matmul (gemv_prep, gemv_prep_bytes of scratch), then
  // every thread reads its weight rows [n0, n1) in place.
  size_t (*gemv_prep_bytes)(DType type, int64_t rows, int64_t K, int group);
  void (*gemv_prep)(DType type, const Int8Rows& a, int group, uint8_t* out);
  void (*gemv_plain)(const QMatrix& w, const Int8Rows& a, const uint8_t* prep, int64_t n0, int64_t n1,
                     const float* bias, float* y, int64_t ldy);
};
constexpr int64_t kGemvMaxRows = 4;  // rows up to which gemv_plain is used
// Null for ISAs without integer kernels (Generic: matmul_ref is used).
const QKernels* qkernels(Isa isa);

// Per-ISA tables, defined in qgemm_<isa>.cpp (only those compiled in exist).
extern const QKernels kQKernelsAvx512;
extern const QKernels kQKernelsAvx2;
extern const QKernels kQKernelsNeon;

}  // namespace elm::cpu
