// GraphBuilder: the small vocabulary family builders write graphs in. Every method appends one node
// (with its output shape computed) and returns its id. Weight lookups check the tensor exists and has
// the shape the family expects, so a wrong checkpoint fails at load with the tensor's name.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/weight_store.h"
#include "graph/graph.h"

namespace elm {

using NodeId = int32_t;
constexpr NodeId kNone = -1;

class GraphBuilder {
 public:
  explicit GraphBuilder(WeightStore& weights) : w_(weights) {}

  // Weights. `shape` is the expected PyTorch shape; Error when the tensor is missing or differs.
  NodeId weight(const std::string& name, const Shape& shape);
  // Optional weight: kNone when the checkpoint has no such tensor.
  NodeId weight_if(const std::string& name, const Shape& shape);
  bool has_weight(const std::string& name) const { return w_.has(name); }
  // A float32 constant owned by the model (stored in .elm files like any weight).
  NodeId constant(const std::string& name, const std::vector<float>& values);

  NodeId token_ids();
  NodeId positions();

  NodeId embed(NodeId table, NodeId ids);
  NodeId matmul(NodeId x, NodeId w, NodeId bias = kNone, const std::string& label = "");
  NodeId rms_norm(NodeId x, NodeId w, double eps, bool add_one = false, int64_t group = 0);
  NodeId add(NodeId a, NodeId b);
  NodeId mul(NodeId a, NodeId b);
  NodeId scale(NodeId x, double s);
  NodeId unary(Op op, NodeId x);  // Silu, Gelu, GeluTanh, Sigmoid, Softplus, Tanh
  NodeId softcap(NodeId x, double cap);
  NodeId slice(NodeId x, int64_t start, int64_t len);
  NodeId slice_groups(NodeId x, int64_t group, int64_t start, int64_t len);
  NodeId concat(const std::vector<NodeId>& parts);
  NodeId output_rows(NodeId x);
  NodeId rope(NodeId x, NodeId inv_freq, int64_t head_dim, bool pairs = false, double attn_factor = 1.0);
  NodeId rms_rescale(NodeId x, NodeId ref, double floor);
  NodeId gaussian_topk(NodeId x, double std_mult);
  NodeId stream_mix(NodeId x, NodeId coefs, int64_t streams);

  struct AttentionSpec {
    int64_t heads = 0, kv_heads = 0, head_dim = 0, v_head_dim = 0;  // v_head_dim 0 = head_dim
    double scale = 0;
    int64_t window = 0;  // 0 = full causal attention
    double softcap = 0;
  };
  // Declares a kv state for this layer and attends over it (writing k, v).
  NodeId attention(NodeId q, NodeId k, NodeId v, const AttentionSpec& spec, int32_t* state_out = nullptr);
  // Attends over the kv state another layer wrote (KV sharing); writes nothing.
  NodeId attention_shared(NodeId q, int32_t state, const AttentionSpec& spec);

  // Recurrent layers: each declares its own per-sequence state.
  NodeId causal_conv1d(NodeId x, NodeId w);  // w [channels, kernel]
  struct DeltaRuleSpec {
    int64_t k_heads = 0, v_heads = 0, head_dim = 0, v_head_dim = 0;
    double scale = 0;
    bool l2norm = false;
  };
  NodeId gated_delta_rule(NodeId q, NodeId k, NodeId v, NodeId g, NodeId beta, const DeltaRuleSpec& spec);

  // Appends a node of any op with explicit shape and attrs (new ops use this before growing helpers).
  NodeId node(Op op, std::vector<NodeId> inputs, int64_t rows, int64_t cols, Attrs attrs = {},
              std::string name = "");
  int32_t add_state(StateDecl s);

  const Node& at(NodeId id) const { return g_.nodes[size_t(id)]; }
  int64_t cols(NodeId id) const { return at(id).cols; }
  void set_label(const std::string& prefix) { label_ = prefix; }  // e.g. "l3." for layer 3

  // Sets the output (logits) and validates the whole graph against the weights.
  Graph finish(NodeId logits);

 private:
  WeightStore& w_;
  Graph g_;
  std::string label_;
  NodeId token_ids_ = kNone, positions_ = kNone;
  std::map<std::string, NodeId> weight_nodes_;
};

// HF-style RoPE inverse frequencies: 1 / theta^(2i / dim) for i < dim / 2, in float32 like transformers.
std::vector<float> rope_inv_freq(double theta, int64_t dim);

}  // namespace elm
