#include "graph/builders/gemma_blocks.h"

#include <cmath>

#include "core/error.h"
#include "graph/builders/family.h"

namespace elm {

GemmaTextConfig read_gemma_text_config(const HfConfig& c, const WeightStore& w) {
  GemmaTextConfig g;
  g.prefix = text_model_prefix(w);
  const std::string family = c.model_type();
  g.vocab = c.i("vocab_size");
  g.hidden = c.i("hidden_size");
  g.layers = c.i("num_hidden_layers");
  g.heads = c.i("num_attention_heads");
  g.kv_heads = c.i("num_key_value_heads", g.heads);
  g.head_dim = c.i("head_dim", g.heads > 0 ? g.hidden / g.heads : 0);
  ELM_CHECK(g.vocab > 0 && g.hidden > 0 && g.layers > 0 && g.heads > 0 && g.kv_heads > 0 && g.head_dim > 0,
            family, ": sizes must be positive");
  ELM_CHECK(g.heads % g.kv_heads == 0, family, ": num_attention_heads must be a multiple of num_key_value_heads");
  g.eps = c.f("rms_norm_eps", 1e-6);
  g.final_softcap = c.f("final_logit_softcapping", 0.0);
  g.tied = c.b("tie_word_embeddings", true);
  g.window = c.i("sliding_window", 512);
  const std::string act = c.s("hidden_activation", c.s("hidden_act", "gelu_pytorch_tanh"));
  if (act == "gelu_pytorch_tanh" || act == "gelu_new") g.activation = Op::GeluTanh;
  else if (act == "gelu") g.activation = Op::Gelu;
  else if (act == "silu") g.activation = Op::Silu;
  else fail(family, ": activation '", act, "' is not supported");
  g.ple_dim = c.i("hidden_size_per_layer_input", 0);
  g.ple_vocab = c.i("vocab_size_per_layer_input", g.vocab);
  g.types = c.strings("layer_types");
  ELM_CHECK(g.types.size() == size_t(g.layers), family, ": layer_types needs one entry per layer");
  for (const auto& t : g.types)
    ELM_CHECK(t == "sliding_attention" || t == "full_attention", family, ": unknown layer type '", t, "'");
  const int64_t shared = c.i("num_kv_shared_layers", 0);
  ELM_CHECK(shared >= 0 && shared < g.layers, family, ": num_kv_shared_layers must be in [0, num_hidden_layers)");
  g.first_shared = g.layers - shared;
  for (int64_t l = g.first_shared; l < g.layers; ++l) (void)kv_source_layer(g, l);  // every shared layer has a source
  return g;
}

int64_t kv_source_layer(const GemmaTextConfig& g, int64_t l) {
  if (l < g.first_shared) return -1;
  for (int64_t s = g.first_shared - 1; s >= 0; --s)
    if (g.types[size_t(s)] == g.types[size_t(l)]) return s;
  fail("layer ", l, " shares the KV cache of an earlier ", g.types[size_t(l)], " layer, but there is none");
}

NodeId gemma_embed(GraphBuilder& b, const GemmaTextConfig& g, NodeId table) {
  return b.scale(b.embed(table, b.token_ids()), std::sqrt(double(g.hidden)));
}

NodeId per_layer_inputs(GraphBuilder& b, const GemmaTextConfig& g, NodeId embeds) {
  const int64_t width = g.layers * g.ple_dim;
  const NodeId table = b.weight(g.prefix + "embed_tokens_per_layer.weight", {g.ple_vocab, width});
  const NodeId own = b.scale(b.embed(table, b.token_ids()), std::sqrt(double(g.ple_dim)));
  NodeId proj = b.matmul(embeds, b.weight(g.prefix + "per_layer_model_projection.weight", {width, g.hidden}), kNone,
                         "ple_proj");
  proj = b.scale(proj, 1.0 / std::sqrt(double(g.hidden)));
  const NodeId proj_norm = b.weight(g.prefix + "per_layer_projection_norm.weight", {g.ple_dim});
  proj = b.rms_norm(proj, proj_norm, g.eps, false, g.ple_dim);
  return b.scale(b.add(proj, own), 1.0 / std::sqrt(2.0));
}

NodeId per_layer_input_update(GraphBuilder& b, const GemmaTextConfig& g, const std::string& L, NodeId x, NodeId ple) {
  NodeId h = b.matmul(x, b.weight(L + "per_layer_input_gate.weight", {g.ple_dim, g.hidden}), kNone, "ple_gate");
  h = b.mul(b.unary(g.activation, h), ple);
  h = b.matmul(h, b.weight(L + "per_layer_projection.weight", {g.hidden, g.ple_dim}), kNone, "ple_out");
  return b.rms_norm(h, b.weight(L + "post_per_layer_input_norm.weight", {g.hidden}), g.eps);
}

NodeId gemma_attention(GraphBuilder& b, const GemmaTextConfig& g, const std::string& L, int64_t l, NodeId h,
                       const GemmaAttentionSpec& s, int32_t* state_out) {
  const int64_t D = s.head_dim, H = g.hidden;
  const std::string A = L + "self_attn.";
  GraphBuilder::AttentionSpec as;
  as.heads = g.heads, as.kv_heads = s.kv_heads, as.head_dim = D, as.scale = 1.0, as.window = s.window;
  const NodeId freq = b.constant("rope.inv_freq." + std::to_string(l), s.inv_freq);

  NodeId q = b.matmul(h, b.weight(A + "q_proj.weight", {g.heads * D, H}), kNone, "q");
  q = b.rms_norm(q, b.weight(A + "q_norm.weight", {D}), g.eps, false, D);
  q = b.rope(q, freq, D);
  NodeId a;
  if (s.shared_state >= 0) {
    a = b.attention_shared(q, s.shared_state, as);
  } else {
    const NodeId k_raw = b.matmul(h, b.weight(A + "k_proj.weight", {s.kv_heads * D, H}), kNone, "k");
    const NodeId v_raw =
        s.k_eq_v ? k_raw : b.matmul(h, b.weight(A + "v_proj.weight", {s.kv_heads * D, H}), kNone, "v");
    NodeId k = b.rms_norm(k_raw, b.weight(A + "k_norm.weight", {D}), g.eps, false, D);
    k = b.rope(k, freq, D);
    const NodeId v = b.rms_norm(v_raw, kNone, g.eps, false, D);
    a = b.attention(q, k, v, as, state_out);
  }
  return b.matmul(a, b.weight(A + "o_proj.weight", {H, g.heads * D}), kNone, "o");
}

NodeId gemma_mlp(GraphBuilder& b, const GemmaTextConfig& g, const std::string& L, NodeId h, int64_t inter,
                 double sparsity_std_mult) {
  NodeId gate = b.matmul(h, b.weight(L + "mlp.gate_proj.weight", {inter, g.hidden}), kNone, "gate");
  if (sparsity_std_mult != 0) gate = b.gaussian_topk(gate, sparsity_std_mult);
  const NodeId up = b.matmul(h, b.weight(L + "mlp.up_proj.weight", {inter, g.hidden}), kNone, "up");
  const NodeId act = b.mul(b.unary(g.activation, gate), up);
  return b.matmul(act, b.weight(L + "mlp.down_proj.weight", {g.hidden, inter}), kNone, "down");
}

NodeId gemma_logits(GraphBuilder& b, const GemmaTextConfig& g, WeightStore& w, NodeId x, NodeId table) {
  x = b.rms_norm(x, b.weight(g.prefix + "norm.weight", {g.hidden}), g.eps);
  const bool has_head = w.has("lm_head.weight");
  ELM_CHECK(g.tied || has_head, "checkpoint has no lm_head.weight and tie_word_embeddings is false");
  const NodeId head = has_head ? b.weight("lm_head.weight", {g.vocab, g.hidden}) : table;
  NodeId logits = b.matmul(x, head, kNone, "lm_head");
  if (g.final_softcap > 0) logits = b.softcap(logits, g.final_softcap);
  return logits;
}

}  // namespace elm
