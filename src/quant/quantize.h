// Weight quantization: float matrices -> the group-wise formats of core/dtype.h, and the per-tensor
// policy that decides which weights of a model get which format.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "graph/graph.h"

namespace elm {

struct QuantSpec {
  DType type = DType::Q4;        // F32, F16, BF16 (plain) or Q8, Q4, Q4M
  int group = 32;                // values per scale (quantized types)
  DType scale_dtype = DType::F16;
  bool operator==(const QuantSpec&) const = default;
};

// Quantizes x [rows, cols] into the layout of `spec.type` (round to nearest). Returns the bytes;
// `out_view` (optional) receives the tensor description (data pointer left null).
std::vector<uint8_t> quantize_matrix(const float* x, int64_t rows, int64_t cols, const QuantSpec& spec,
                                     TensorView* out_view = nullptr);

// Role of a weight in the graph, which the policy keys on.
enum class WeightRole { Embedding, Output, Attention, FeedForward, Other, Small };
// Small: vectors and anything not consumed by a matmul or embedding (norms, biases, tables): never
// quantized. Output: the lm_head matmul weight (also the embedding when tied).
WeightRole weight_role(const Graph& g, const std::string& tensor);

struct QuantPolicy {
  std::string name = "f32";   // what the user asked for: f32, bf16, f16, int8, int4, ...
  QuantSpec base{DType::F32, 0, DType::F16};
  std::optional<QuantSpec> embedding, output, attention;  // overrides for those roles

  // Parses --quant values: f32, bf16, f16, int8, int4 (the measured default), int4-g32/g64/g128,
  // int4m-g32/... (asymmetric); Error on unknown names.
  static QuantPolicy parse(const std::string& name);
  // The format a tensor of this role and shape gets (plain types for what cannot be quantized, e.g.
  // columns not divisible by the group).
  QuantSpec spec_for(WeightRole role, const Shape& shape) const;
};

struct Model;
// Quantizes a loaded model's weights in memory under `policy` (the weights become owned buffers; the
// originals stay mapped but untouched). For benchmarks and tests; `elm convert` streams to a file.
// Returns the bytes of the weights afterwards.
size_t quantize_weights(Model& model, const QuantPolicy& policy);

}  // namespace elm
