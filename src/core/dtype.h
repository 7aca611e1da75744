// Element types of tensors, plain and quantized.
//
// Quantized weights are matrices [rows, cols] quantized along cols (the reduction dimension of a
// matmul) in groups of `group` values. Their bytes are three planes, each starting 64-byte aligned:
//   quants  rows x cols int8 (Q8), or rows x cols/2 bytes of packed nibbles (Q4, Q4M)
//   scales  rows x cols/group, f16 or f32 (the tensor's scale dtype)
//   mins    rows x cols/group, same dtype, Q4M only
// Q8:  x = scale * q,         q int8 in [-127, 127]
// Q4:  x = scale * (q - 8),   q in [0, 15]  (symmetric)
// Q4M: x = scale * q + min,   q in [0, 15]  (asymmetric, min per group)
// Nibble order: within every 32 values of a row, byte j (0..15) holds value j in its low nibble and
// value j + 16 in its high nibble (the order ggml's Q4_0 uses, so SIMD unpacking is two shifts).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace elm {

enum class DType : uint8_t {
  F32 = 0,
  F16 = 1,
  BF16 = 2,
  I32 = 3,
  I8 = 4,
  Q8 = 16,
  Q4 = 17,
  Q4M = 18,
};

inline bool is_quantized(DType t) { return t == DType::Q8 || t == DType::Q4 || t == DType::Q4M; }

// Bytes per element of a plain type (0 for quantized types).
size_t dtype_size(DType t);
std::string_view dtype_name(DType t);
// Parses the names dtype_name() prints and safetensors' names ("F32", "BF16", ...). Throws elm::Error.
DType dtype_from_name(std::string_view name);
// Parses the lower-case names command lines give activation and KV cache precisions: f32, f16, bf16,
// int8. Throws elm::Error.
DType dtype_from_flag(std::string_view name);

// Storage of one quantized matrix; see the layout above.
struct QuantLayout {
  size_t quant_bytes = 0;   // size of the quants plane
  size_t scales_offset = 0;  // from the start of the tensor
  size_t mins_offset = 0;    // 0 when the format has no mins
  size_t total_bytes = 0;
};

constexpr size_t kPlaneAlign = 64;
inline size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Layout of a quantized [rows, cols] matrix. Throws elm::Error when cols is not a multiple of group or
// group is not a positive multiple of 32.
QuantLayout quant_layout(DType t, int64_t rows, int64_t cols, int group, DType scale_type);

}  // namespace elm
