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

// What calibration (quant/calibration.h) knows about the inputs a matrix multiplies; null: nothing.
struct MatrixCalibration {
  const float* column_weights = nullptr;  // [cols] E[a_k^2]: weights of each column's squared error
  const float* gptq_factor = nullptr;     // [cols, cols] quant/gptq.h's U: round with error compensation
};

// Quantizes x [rows, cols] into the layout of `spec.type`. 4-bit groups search their scale (and
// minimum) for the least squared error, weighted per column by `cal.column_weights` when given, and
// round column by column with GPTQ's error compensation when `cal.gptq_factor` is given; 8-bit groups
// round to nearest. Returns the bytes; `out_view` (optional) receives the tensor description (data
// pointer left null).
std::vector<uint8_t> quantize_matrix(const float* x, int64_t rows, int64_t cols, const QuantSpec& spec,
                                     TensorView* out_view = nullptr, const MatrixCalibration& cal = {});

// Role of a weight in the graph, which the policy keys on.
enum class WeightRole { Embedding, Output, Attention, AttentionQK, FeedForward, FeedForwardDown, Other, Small };
// Small: vectors and anything not consumed by a matmul or embedding (norms, biases, tables): never
// quantized. Output: the lm_head matmul weight (also the embedding when tied). AttentionQK: separate
// query / key projections (the rest of attention is Attention); FeedForwardDown: the feed-forward
// output projection.
WeightRole weight_role(const Graph& g, const std::string& tensor);

// Where a weight sits: the N of "layers.N." in its name (-1 for none), and how many layers the graph's
// weights name (max N + 1).
int weight_layer(const std::string& tensor);
int layer_count(const Graph& g);

// What `elm convert` (and the server's conversions) apply to Hugging Face checkpoints when no --quant
// is given: the measured choice, docs/quantization.md.
inline constexpr const char* kDefaultQuant = "int4m-mix";

struct QuantPolicy {
  std::string name = "f32";   // what the user asked for: f32, bf16, f16, int8, int4, ...
  QuantSpec base{DType::F32, 0, DType::F16};
  std::optional<QuantSpec> embedding, output, attention;  // overrides for those roles
  std::optional<QuantSpec> attention_qk;                  // query / key projections (else `attention`)
  std::optional<QuantSpec> wide_down;  // feed-forward down projections of half the layers (wide_down_layer)

  // Parses --quant values: f32, bf16, f16, int8, int4 (the measured default), int4-g32/g64/g128,
  // int4m-g32/... (asymmetric); Error on unknown names.
  static QuantPolicy parse(const std::string& name);
  // The format a tensor of this role and shape gets (plain types for what cannot be quantized, e.g.
  // columns not divisible by the group).
  // `layer` of `layers` places per-layer weights (weight_layer, layer_count; -1 / 0: unknown).
  QuantSpec spec_for(WeightRole role, const Shape& shape, int layer = -1, int layers = 0) const;
};

struct Model;
struct ActivationStats;
// Quantizes a loaded model's weights in memory under `policy` (the weights become owned buffers; the
// originals stay mapped but untouched), calibrated by `stats` when given. For benchmarks and tests;
// `elm convert` streams to a file. `threads` tensors at a time (<= 0: one per hardware thread; each
// holds a float32 copy of its tensor meanwhile). Returns the bytes of the weights afterwards.
size_t quantize_weights(Model& model, const QuantPolicy& policy, const ActivationStats* stats = nullptr,
                        int threads = 1);

}  // namespace elm
