// The decoder-only transformer most families share (Llama, Mistral, Qwen2/3, Phi-3, SmolLM3, Gemma 3):
// family builders translate their config into a DecoderSpec and this builds the graph.
//
//   x = embed(ids) * embed_scale
//   per layer:  h = norm(x); h = attn(h); [h = post_attn_norm(h)]; x = x + h
//               h = norm(x); h = mlp(h);  [h = post_ffn_norm(h)];  x = x + h
//   logits = lm_head(final_norm(x))  [softcapped]
#pragma once
#include <string>
#include <vector>

#include "core/weight_store.h"
#include "graph/builder.h"
#include "graph/builders/hf_config.h"

namespace elm {

struct DecoderLayerSpec {
  int64_t window = 0;             // sliding window, 0 = full attention
  std::vector<float> inv_freq;    // RoPE frequencies (rot_dim / 2 values); empty = no RoPE (NoPE layer)
  double rope_attn_factor = 1.0;
};

struct DecoderSpec {
  int64_t vocab = 0, hidden = 0, inter = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  double eps = 1e-6;
  double attn_scale = 0;  // 0: 1 / sqrt(head_dim)
  double attn_softcap = 0, final_softcap = 0;
  double embed_scale = 1.0;
  bool tied = false;
  bool qkv_fused = false;      // Phi-3: self_attn.qkv_proj holds q, k, v stacked
  bool gate_up_fused = false;  // Phi-3: mlp.gate_up_proj holds gate, up stacked
  bool qkv_bias = false;       // Qwen2
  bool qk_norm = false;        // Qwen3, Gemma 3: per-head RMSNorm of q and k before RoPE
  bool norm_add_one = false;   // Gemma: norms scale by (1 + w)
  bool sandwich_norms = false; // Gemma 3: post-attention and pre/post-feedforward norms
  Op activation = Op::Silu;
  std::vector<DecoderLayerSpec> layer;  // one per layer
  std::string prefix = "model.";
};

Graph build_decoder(const DecoderSpec& spec, WeightStore& weights);

// Common config fields shared by the Llama-like families (sizes, eps, tied head, per-layer RoPE).
DecoderSpec decoder_spec_from_config(const HfConfig& c);

}  // namespace elm
