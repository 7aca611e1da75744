// Qwen3.5 (text): Gated DeltaNet linear-attention layers mixed with gated full-attention layers.
// - Linear attention: one projection gives q, k, v, which pass a causal depthwise conv1d (SiLU); the
//   gated delta rule (l2-normed q, k; decay g = -exp(A_log) softplus(a + dt_bias), rate
//   beta = sigmoid(b)) keeps a [k_dim, v_dim] state per head; its output is RMS-normed per head and
//   gated by silu(z).
// - Full attention: q_proj yields per head [query | gate]; q/k RMSNorm, partial RoPE, and the output
//   multiplied by sigmoid(gate) before o_proj.
// Norms scale by (1 + w), except the gated norm of the linear attention (w).
#include <cmath>

#include "core/error.h"
#include "graph/builder.h"
#include "graph/builders/family.h"

namespace elm {

namespace {

struct Qwen35Config {
  int64_t vocab = 0, hidden = 0, inter = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t k_heads = 0, v_heads = 0, k_dim = 0, v_dim = 0, conv_kernel = 0;  // linear attention
  double eps = 1e-6;
  bool tied = false;
  std::vector<std::string> types;  // linear_attention / full_attention
  std::vector<float> inv_freq;
  std::string prefix;
};

Qwen35Config read_config(const HfConfig& c, const WeightStore& w) {
  Qwen35Config q;
  q.vocab = c.i("vocab_size"), q.hidden = c.i("hidden_size"), q.inter = c.i("intermediate_size");
  q.layers = c.i("num_hidden_layers"), q.heads = c.i("num_attention_heads");
  q.kv_heads = c.i("num_key_value_heads", q.heads);
  q.head_dim = c.i("head_dim", q.heads > 0 ? q.hidden / q.heads : 0);
  q.k_heads = c.i("linear_num_key_heads"), q.v_heads = c.i("linear_num_value_heads");
  q.k_dim = c.i("linear_key_head_dim"), q.v_dim = c.i("linear_value_head_dim");
  q.conv_kernel = c.i("linear_conv_kernel_dim", 4);
  for (int64_t v : {q.vocab, q.hidden, q.inter, q.layers, q.heads, q.kv_heads, q.head_dim, q.k_heads, q.v_heads,
                    q.k_dim, q.v_dim, q.conv_kernel})
    ELM_CHECK(v > 0, "qwen3_5: sizes must be positive");
  ELM_CHECK(q.heads % q.kv_heads == 0 && q.v_heads % q.k_heads == 0,
            "qwen3_5: head counts must be multiples of the key/value head counts");
  ELM_CHECK(c.s("hidden_act", "silu") == "silu", "qwen3_5: only the SiLU activation is supported");
  ELM_CHECK(!c.b("attention_bias", false), "qwen3_5: attention_bias checkpoints are not supported");
  q.eps = c.f("rms_norm_eps", 1e-6);
  q.tied = c.b("tie_word_embeddings", false);
  q.types = c.strings("layer_types");
  if (q.types.empty()) {  // Qwen3-Next style: every Nth layer is full attention
    const int64_t every = c.i("full_attention_interval", 4);
    for (int64_t l = 0; l < q.layers; ++l)
      q.types.push_back((l + 1) % every == 0 ? "full_attention" : "linear_attention");
  }
  ELM_CHECK(q.types.size() == size_t(q.layers), "qwen3_5: layer_types needs one entry per layer");
  const RopeParams rope = c.rope();
  const int64_t rot = int64_t(double(q.head_dim) * rope.partial_rotary_factor);
  ELM_CHECK(rot > 0 && rot % 2 == 0 && rot <= q.head_dim, "qwen3_5: partial_rotary_factor gives ", rot,
            " rotated dims of ", q.head_dim);
  double attn_factor = 1.0;
  q.inv_freq = rope_frequencies(rope, rot, c.i("max_position_embeddings", 32768), &attn_factor);
  ELM_CHECK(attn_factor == 1.0, "qwen3_5: RoPE scaling with an attention factor is not supported");
  q.prefix = text_model_prefix(w);
  return q;
}

// Gated DeltaNet token mixer of layer prefix L, on the normed hidden state h [T, hidden].
NodeId gated_delta_net(GraphBuilder& b, WeightStore& w, const Qwen35Config& q, const std::string& L, NodeId h) {
  const std::string A = L + "linear_attn.";
  const int64_t H = q.hidden, Kd = q.k_heads * q.k_dim, Vd = q.v_heads * q.v_dim, conv_dim = 2 * Kd + Vd;
  // q, k, v through the causal conv (PyTorch stores the depthwise kernel as [C, 1, K]).
  NodeId qkv = b.matmul(h, b.weight(A + "in_proj_qkv.weight", {conv_dim, H}), kNone, "qkv");
  const std::string conv = A + "conv1d.weight";
  if (w.has(conv) && w.get(conv).shape == Shape{conv_dim, 1, q.conv_kernel}) w.reshape(conv, {conv_dim, q.conv_kernel});
  qkv = b.unary(Op::Silu, b.causal_conv1d(qkv, b.weight(conv, {conv_dim, q.conv_kernel})));
  const NodeId qq = b.slice(qkv, 0, Kd), kk = b.slice(qkv, Kd, Kd), vv = b.slice(qkv, 2 * Kd, Vd);

  // Per token and value head: write rate beta and log-decay g = A softplus(a + dt_bias), where
  // A = -exp(A_log) (Mamba's parametrization) is computed once here.
  const NodeId beta = b.unary(Op::Sigmoid, b.matmul(h, b.weight(A + "in_proj_b.weight", {q.v_heads, H}), kNone, "b"));
  NodeId dt = b.matmul(h, b.weight(A + "in_proj_a.weight", {q.v_heads, H}), kNone, "a");
  dt = b.unary(Op::Softplus, b.add(dt, b.weight(A + "dt_bias", {q.v_heads})));
  ELM_CHECK(w.has(A + "A_log") && w.get(A + "A_log").numel() == q.v_heads, "qwen3_5: tensor '", A,
            "A_log' must hold one value per value head");
  std::vector<float> decay_rate = to_f32(w.get(A + "A_log"));
  for (float& x : decay_rate) x = -std::exp(x);
  const NodeId g = b.mul(dt, b.constant(A + "A", decay_rate));

  GraphBuilder::DeltaRuleSpec ds;
  ds.k_heads = q.k_heads, ds.v_heads = q.v_heads, ds.head_dim = q.k_dim, ds.v_head_dim = q.v_dim;
  ds.scale = 1.0 / std::sqrt(double(q.k_dim));
  ds.l2norm = true;
  NodeId o = b.gated_delta_rule(qq, kk, vv, g, beta, ds);

  const NodeId z = b.matmul(h, b.weight(A + "in_proj_z.weight", {Vd, H}), kNone, "z");
  o = b.rms_norm(o, b.weight(A + "norm.weight", {q.v_dim}), q.eps, false, q.v_dim);
  o = b.mul(o, b.unary(Op::Silu, z));
  return b.matmul(o, b.weight(A + "out_proj.weight", {H, Vd}), kNone, "out");
}

// Full attention with an output gate, of layer l, on the normed hidden state h [T, hidden].
NodeId gated_attention(GraphBuilder& b, WeightStore& w, const Qwen35Config& q, const std::string& L, int64_t l,
                       NodeId h) {
  const std::string A = L + "self_attn.";
  const int64_t H = q.hidden, D = q.head_dim, q_dim = q.heads * D, kv_dim = q.kv_heads * D;
  const bool gated = w.has(A + "q_proj.weight") && w.get(A + "q_proj.weight").shape == Shape{2 * q_dim, H};
  NodeId qg = b.matmul(h, b.weight(A + "q_proj.weight", {gated ? 2 * q_dim : q_dim, H}), kNone, "q");
  NodeId qs = gated ? b.slice_groups(qg, 2 * D, 0, D) : qg;
  qs = b.rms_norm(qs, b.weight(A + "q_norm.weight", {D}), q.eps, true, D);
  NodeId k = b.matmul(h, b.weight(A + "k_proj.weight", {kv_dim, H}), kNone, "k");
  k = b.rms_norm(k, b.weight(A + "k_norm.weight", {D}), q.eps, true, D);
  const NodeId v = b.matmul(h, b.weight(A + "v_proj.weight", {kv_dim, H}), kNone, "v");
  const NodeId freq = b.constant("rope.inv_freq." + std::to_string(l), q.inv_freq);
  qs = b.rope(qs, freq, D), k = b.rope(k, freq, D);

  GraphBuilder::AttentionSpec as;
  as.heads = q.heads, as.kv_heads = q.kv_heads, as.head_dim = D, as.scale = 1.0 / std::sqrt(double(D));
  NodeId a = b.attention(qs, k, v, as);
  if (gated) a = b.mul(a, b.unary(Op::Sigmoid, b.slice_groups(qg, 2 * D, D, D)));
  return b.matmul(a, b.weight(A + "o_proj.weight", {H, q_dim}), kNone, "o");
}

}  // namespace

Graph build_qwen3_5(const HfConfig& c, WeightStore& w) {
  const Qwen35Config q = read_config(c, w);
  const int64_t H = q.hidden;
  GraphBuilder b(w);
  const NodeId table = b.weight(q.prefix + "embed_tokens.weight", {q.vocab, H});
  NodeId x = b.embed(table, b.token_ids());
  for (int64_t l = 0; l < q.layers; ++l) {
    const std::string L = q.prefix + "layers." + std::to_string(l) + ".";
    b.set_label("l" + std::to_string(l) + ".");
    auto norm = [&](NodeId v, const std::string& name) {
      return b.rms_norm(v, b.weight(L + name, {H}), q.eps, true);
    };
    const std::string& type = q.types[size_t(l)];
    const NodeId h = norm(x, "input_layernorm.weight");
    if (type == "linear_attention") x = b.add(x, gated_delta_net(b, w, q, L, h));
    else if (type == "full_attention") x = b.add(x, gated_attention(b, w, q, L, l, h));
    else fail("qwen3_5: unknown layer type '", type, "'");

    const NodeId m = norm(x, "post_attention_layernorm.weight");
    const NodeId gate = b.matmul(m, b.weight(L + "mlp.gate_proj.weight", {q.inter, H}), kNone, "gate");
    const NodeId up = b.matmul(m, b.weight(L + "mlp.up_proj.weight", {q.inter, H}), kNone, "up");
    const NodeId act = b.mul(b.unary(Op::Silu, gate), up);
    x = b.add(x, b.matmul(act, b.weight(L + "mlp.down_proj.weight", {H, q.inter}), kNone, "down"));
  }
  b.set_label("");
  x = b.rms_norm(b.output_rows(x), b.weight(q.prefix + "norm.weight", {H}), q.eps, true);
  const bool has_head = w.has("lm_head.weight");
  ELM_CHECK(q.tied || has_head, "qwen3_5: checkpoint has no lm_head.weight and tie_word_embeddings is false");
  const NodeId head = has_head ? b.weight("lm_head.weight", {q.vocab, H}) : table;
  return b.finish(b.matmul(x, head, kNone, "lm_head"));
}

}  // namespace elm
