// Tensors as the loaders and backends see them: a typed view of bytes that live elsewhere (an mmap'd
// file, or a buffer owned by a WeightStore).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace elm {

using Shape = std::vector<int64_t>;  // outermost first, like PyTorch

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

struct TensorView {
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;
  size_t nbytes = 0;
  // Quantized types only: values per scale, and the scales' type.
  int group = 0;
  DType scale_dtype = DType::F16;

  int64_t numel() const { return shape_numel(shape); }
  int64_t rows() const;  // product of all but the last dim (1 for a vector)
  int64_t cols() const;  // last dim
  QuantLayout quant() const { return quant_layout(dtype, rows(), cols(), group, scale_dtype); }
};

// Bytes a tensor of this type and shape occupies (quantized: all planes). Throws on bad shapes.
size_t tensor_nbytes(DType t, const Shape& shape, int group = 0, DType scale_dtype = DType::F16);

// Scale `index` of a plane of quantization scales (or mins) of type st (F16 or F32).
float load_scale(const uint8_t* base, size_t index, DType st);
// Decodes row r of a 2-D (or 1-D, r = 0) tensor of any type into `out` (cols() floats).
void dequantize_row(const TensorView& t, int64_t r, float* out);
// Whole tensor to float32 (numel floats).
std::vector<float> to_f32(const TensorView& t);

}  // namespace elm
