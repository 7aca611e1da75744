#include "graph/builders/decoder.h"

#include <cmath>

#include "core/error.h"

namespace elm {

DecoderSpec decoder_spec_from_config(const HfConfig& c) {
  DecoderSpec s;
  s.vocab = c.i("vocab_size");
  s.hidden = c.i("hidden_size");
  s.inter = c.i("intermediate_size");
  s.layers = c.i("num_hidden_layers");
  s.heads = c.i("num_attention_heads");
  s.kv_heads = c.i("num_key_value_heads", s.heads);
  ELM_CHECK(s.vocab > 0 && s.hidden > 0 && s.inter > 0 && s.layers > 0 && s.heads > 0 && s.kv_heads > 0,
            "config.json: sizes must be positive");
  ELM_CHECK(s.heads % s.kv_heads == 0, "config.json: num_attention_heads (", s.heads,
            ") must be a multiple of num_key_value_heads (", s.kv_heads, ")");
  s.head_dim = c.i("head_dim", s.hidden / s.heads);
  ELM_CHECK(s.head_dim > 0 && s.head_dim % 2 == 0, "config.json: head_dim must be positive and even");
  s.eps = c.f("rms_norm_eps", 1e-6);
  s.tied = c.b("tie_word_embeddings", false);
  const std::string act = c.s("hidden_act", c.s("hidden_activation", "silu"));
  if (act == "silu" || act == "swish") s.activation = Op::Silu;
  else if (act == "gelu_pytorch_tanh" || act == "gelu_new") s.activation = Op::GeluTanh;
  else if (act == "gelu") s.activation = Op::Gelu;
  else fail("config.json: activation '", act, "' is not supported");

  const RopeParams rope = c.rope();
  const int64_t rot = int64_t(double(s.head_dim) * rope.partial_rotary_factor);
  ELM_CHECK(rot > 0 && rot % 2 == 0 && rot <= s.head_dim, "config.json: partial_rotary_factor gives ", rot,
            " rotated dims of ", s.head_dim);
  double attn_factor = 1.0;
  std::vector<float> inv = rope_frequencies(rope, rot, c.i("max_position_embeddings", 4096), &attn_factor);
  s.layer.assign(size_t(s.layers), DecoderLayerSpec{0, inv, attn_factor});
  return s;
}

Graph build_decoder(const DecoderSpec& s, WeightStore& weights) {
  ELM_CHECK(s.layer.size() == size_t(s.layers), "decoder spec: ", s.layer.size(), " layer specs for ", s.layers,
            " layers");
  GraphBuilder b(weights);
  const int64_t H = s.hidden, D = s.head_dim, q_dim = s.heads * D, kv_dim = s.kv_heads * D;
  const std::string& P = s.prefix;

  const NodeId table = b.weight(P + "embed_tokens.weight", {s.vocab, H});
  NodeId x = b.embed(table, b.token_ids());
  if (s.embed_scale != 1.0) x = b.scale(x, s.embed_scale);

  GraphBuilder::AttentionSpec as;
  as.heads = s.heads, as.kv_heads = s.kv_heads, as.head_dim = D;
  as.scale = s.attn_scale ? s.attn_scale : 1.0 / std::sqrt(double(D));
  as.softcap = s.attn_softcap;

  for (int64_t l = 0; l < s.layers; ++l) {
    const DecoderLayerSpec& ls = s.layer[size_t(l)];
    const std::string L = P + "layers." + std::to_string(l) + ".";
    b.set_label("l" + std::to_string(l) + ".");
    auto norm_w = [&](const std::string& name, int64_t n) { return b.weight(L + name + ".weight", {n}); };

    // Attention block.
    NodeId h = b.rms_norm(x, norm_w("input_layernorm", H), s.eps, s.norm_add_one);
    NodeId q, k, v;
    if (s.qkv_fused) {
      NodeId qkv = b.matmul(h, b.weight(L + "self_attn.qkv_proj.weight", {q_dim + 2 * kv_dim, H}), kNone, "qkv");
      q = b.slice(qkv, 0, q_dim), k = b.slice(qkv, q_dim, kv_dim), v = b.slice(qkv, q_dim + kv_dim, kv_dim);
    } else {
      auto bias = [&](const char* name, int64_t n) {
        return s.qkv_bias ? b.weight(L + "self_attn." + name + ".bias", {n}) : kNone;
      };
      q = b.matmul(h, b.weight(L + "self_attn.q_proj.weight", {q_dim, H}), bias("q_proj", q_dim), "q");
      k = b.matmul(h, b.weight(L + "self_attn.k_proj.weight", {kv_dim, H}), bias("k_proj", kv_dim), "k");
      v = b.matmul(h, b.weight(L + "self_attn.v_proj.weight", {kv_dim, H}), bias("v_proj", kv_dim), "v");
    }
    if (s.qk_norm) {
      q = b.rms_norm(q, b.weight(L + "self_attn.q_norm.weight", {D}), s.eps, s.norm_add_one, D);
      k = b.rms_norm(k, b.weight(L + "self_attn.k_norm.weight", {D}), s.eps, s.norm_add_one, D);
    }
    if (!ls.inv_freq.empty()) {
      const NodeId freq = b.constant("rope.inv_freq." + std::to_string(l), ls.inv_freq);
      q = b.rope(q, freq, D, false, ls.rope_attn_factor);
      k = b.rope(k, freq, D, false, ls.rope_attn_factor);
    }
    as.window = ls.window;
    NodeId a = b.attention(q, k, v, as);
    a = b.matmul(a, b.weight(L + "self_attn.o_proj.weight", {H, q_dim}), kNone, "o");
    if (s.sandwich_norms) a = b.rms_norm(a, norm_w("post_attention_layernorm", H), s.eps, s.norm_add_one);
    x = b.add(x, a);

    // Feed-forward block.
    const char* pre_ffn = s.sandwich_norms ? "pre_feedforward_layernorm" : "post_attention_layernorm";
    h = b.rms_norm(x, norm_w(pre_ffn, H), s.eps, s.norm_add_one);
    NodeId gate, up;
    if (s.gate_up_fused) {
      NodeId gu = b.matmul(h, b.weight(L + "mlp.gate_up_proj.weight", {2 * s.inter, H}), kNone, "gate_up");
      gate = b.slice(gu, 0, s.inter), up = b.slice(gu, s.inter, s.inter);
    } else {
      gate = b.matmul(h, b.weight(L + "mlp.gate_proj.weight", {s.inter, H}), kNone, "gate");
      up = b.matmul(h, b.weight(L + "mlp.up_proj.weight", {s.inter, H}), kNone, "up");
    }
    h = b.mul(b.unary(s.activation, gate), up);
    h = b.matmul(h, b.weight(L + "mlp.down_proj.weight", {H, s.inter}), kNone, "down");
    if (s.sandwich_norms) h = b.rms_norm(h, norm_w("post_feedforward_layernorm", H), s.eps, s.norm_add_one);
    x = b.add(x, h);
  }

  b.set_label("");
  x = b.output_rows(x);
  x = b.rms_norm(x, b.weight(P + "norm.weight", {H}), s.eps, s.norm_add_one);
  // Tied checkpoints sometimes still store lm_head.weight (a copy); use it when present.
  const bool has_head = weights.has("lm_head.weight");
  ELM_CHECK(s.tied || has_head, "checkpoint has no lm_head.weight and tie_word_embeddings is false");
  const NodeId head = has_head ? b.weight("lm_head.weight", {s.vocab, H}) : table;
  NodeId logits = b.matmul(x, head, kNone, "lm_head");
  if (s.final_softcap > 0) logits = b.softcap(logits, s.final_softcap);
  return b.finish(logits);
}

}  // namespace elm
