// Building blocks Gemma 3n and Gemma 4 share: their common config, per-layer embeddings (PLE), the
// attention block with q/k/v norms and KV sharing, the gated MLP and the per-layer-input gate.
#pragma once
#include <string>
#include <vector>

#include "core/weight_store.h"
#include "graph/builder.h"
#include "graph/builders/hf_config.h"

namespace elm {

struct GemmaTextConfig {
  int64_t vocab = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t window = 0;               // sliding window of "sliding_attention" layers
  int64_t ple_dim = 0, ple_vocab = 0;  // per-layer embeddings: hidden_size_per_layer_input, its vocab
  int64_t first_shared = 0;         // first layer reading another layer's KV cache (= layers: none)
  double eps = 1e-6, final_softcap = 0;
  bool tied = true;
  Op activation = Op::GeluTanh;
  std::vector<std::string> types;  // per layer: sliding_attention / full_attention
  std::string prefix = "model.";   // of the language model's tensors
};
GemmaTextConfig read_gemma_text_config(const HfConfig& c, const WeightStore& w);

// KV sharing: the layer whose cache layer l reads (the last layer before first_shared with l's type),
// or -1 when l computes its own keys and values.
int64_t kv_source_layer(const GemmaTextConfig& g, int64_t l);

// Token embeddings scaled by sqrt(hidden) [T, hidden].
NodeId gemma_embed(GraphBuilder& b, const GemmaTextConfig& g, NodeId table);

// PLE: [T, layers * ple_dim], layer l's inputs in columns l * ple_dim. The sum of the token's own
// per-layer embedding (scaled by sqrt(ple_dim)) and an RMS-normed projection of the scaled token
// embedding, times 1/sqrt(2).
NodeId per_layer_inputs(GraphBuilder& b, const GemmaTextConfig& g, NodeId embeds);

// The per-layer-input gate of layer L: post_norm(proj(act(gate(x)) * ple)), [T, hidden].
NodeId per_layer_input_update(GraphBuilder& b, const GemmaTextConfig& g, const std::string& L, NodeId x, NodeId ple);

struct GemmaAttentionSpec {
  int64_t kv_heads = 0, head_dim = 0, window = 0;
  std::vector<float> inv_freq;  // RoPE frequencies, head_dim / 2 or fewer
  bool k_eq_v = false;          // values are the key projection (before the key norm)
  int32_t shared_state = -1;    // >= 0: read this KV state instead of projecting keys and values
};
// q/k/v projections, per-head RMSNorm on q and k (with weights) and v (without), RoPE, attention
// with scale 1, o_proj. `state_out` receives the KV state the layer writes (when not shared).
NodeId gemma_attention(GraphBuilder& b, const GemmaTextConfig& g, const std::string& L, int64_t l, NodeId h,
                       const GemmaAttentionSpec& s, int32_t* state_out);

// down(act(gate(h)) * up(h)); sparsity_std_mult != 0 applies GaussianTopK to the gate first.
NodeId gemma_mlp(GraphBuilder& b, const GemmaTextConfig& g, const std::string& L, NodeId h, int64_t inter,
                 double sparsity_std_mult = 0);

// Final norm, tied or own head, soft-capping: the logits [Out, vocab] of the hidden state x [Out, hidden].
NodeId gemma_logits(GraphBuilder& b, const GemmaTextConfig& g, WeightStore& w, NodeId x, NodeId table);

}  // namespace elm
