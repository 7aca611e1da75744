// Gemma 4 (text): Gemma 3's four norms per layer, with norms scaling by w (not 1 + w), RMSNorm on
// every q, k and v head (v without scale) and attention scale 1. Per-layer attention geometry:
// global layers have their own head_dim (and optionally kv head count, with values = keys), and
// rotate only part of each head ("proportional" RoPE). The last num_kv_shared_layers layers attend
// over the cache of the last earlier layer of their type. Per-layer embeddings (PLE) are gated into
// the residual after every layer, which is then scaled by the layer's scalar.
#include "core/error.h"
#include "graph/builders/family.h"
#include "graph/builders/gemma_blocks.h"

namespace elm {

namespace {

struct LayerGeometry {
  int64_t head_dim = 0, kv_heads = 0;
  bool k_eq_v = false;
};

// transformers 5.15+ writes per-layer overrides as per_layer_config {"<layer>": {"head_dim": ...}};
// earlier configs have flat global_head_dim / num_global_key_value_heads for the full layers.
std::vector<LayerGeometry> layer_geometry(const HfConfig& c, const GemmaTextConfig& g) {
  const bool k_eq_v = c.b("attention_k_eq_v", false);
  std::vector<LayerGeometry> out(size_t(g.layers));
  nlohmann::json overrides = nlohmann::json::object();
  if (c.has("per_layer_config")) {
    overrides = c.json()["per_layer_config"];
    ELM_CHECK(overrides.is_object(), "gemma4: per_layer_config must be an object");
  } else {  // what transformers synthesizes for such configs
    nlohmann::json global = {{"head_dim", c.i("global_head_dim", 512)}};
    if (k_eq_v && c.has("num_global_key_value_heads"))
      global["num_key_value_heads"] = c.i("num_global_key_value_heads");
    for (int64_t l = 0; l < g.layers; ++l)
      if (g.types[size_t(l)] == "full_attention") overrides[std::to_string(l)] = global;
  }
  for (int64_t l = 0; l < g.layers; ++l) {
    LayerGeometry& lg = out[size_t(l)];
    lg.head_dim = g.head_dim, lg.kv_heads = g.kv_heads;
    lg.k_eq_v = k_eq_v && g.types[size_t(l)] == "full_attention";
    const std::string key = std::to_string(l);
    if (!overrides.contains(key)) continue;
    const nlohmann::json& o = overrides[key];
    ELM_CHECK(o.is_object(), "gemma4: per_layer_config[", key, "] must be an object");
    for (const auto& [name, value] : o.items()) {
      ELM_CHECK(value.is_number_integer() && value.get<int64_t>() > 0, "gemma4: per_layer_config[", key, "].", name,
                " must be a positive integer");
      if (name == "head_dim") lg.head_dim = value.get<int64_t>();
      else if (name == "num_key_value_heads") lg.kv_heads = value.get<int64_t>();
      else fail("gemma4: per_layer_config attribute '", name, "' is not supported");
    }
    ELM_CHECK(g.heads % lg.kv_heads == 0 && lg.head_dim % 2 == 0, "gemma4: layer ", l, " has a bad attention shape");
  }
  return out;
}

}  // namespace

Graph build_gemma4(const HfConfig& c, WeightStore& w) {
  const GemmaTextConfig g = read_gemma_text_config(c, w);
  ELM_CHECK(!c.b("enable_moe_block", false), "gemma4: mixture-of-experts checkpoints are not supported yet");
  ELM_CHECK(c.s("use_bidirectional_attention", "") != "all", "gemma4: bidirectional attention is not supported");
  const std::vector<LayerGeometry> geometry = layer_geometry(c, g);
  const int64_t H = g.hidden, inter = c.i("intermediate_size"), max_pos = c.i("max_position_embeddings", 131072);
  const bool double_wide = c.b("use_double_wide_mlp", false);

  GraphBuilder b(w);
  const NodeId table = b.weight(g.prefix + "embed_tokens.weight", {g.vocab, H});
  NodeId x = gemma_embed(b, g, table);
  const NodeId ple = g.ple_dim > 0 ? per_layer_inputs(b, g, x) : kNone;

  std::vector<int32_t> kv_state(size_t(g.layers), -1);
  for (int64_t l = 0; l < g.layers; ++l) {
    const std::string L = g.prefix + "layers." + std::to_string(l) + ".";
    b.set_label("l" + std::to_string(l) + ".");
    auto norm = [&](NodeId v, const std::string& name) { return b.rms_norm(v, b.weight(L + name, {H}), g.eps); };
    const std::string& type = g.types[size_t(l)];
    const LayerGeometry& lg = geometry[size_t(l)];

    GemmaAttentionSpec as;
    as.kv_heads = lg.kv_heads, as.head_dim = lg.head_dim, as.k_eq_v = lg.k_eq_v;
    as.window = type == "sliding_attention" ? g.window : 0;
    const RopeParams rope = c.rope(type);
    const int64_t rot = rope.type == "proportional" ? lg.head_dim
                                                    : int64_t(double(lg.head_dim) * rope.partial_rotary_factor);
    ELM_CHECK(rot > 0 && rot % 2 == 0 && rot <= lg.head_dim, "gemma4: layer ", l, " rotates ", rot, " of ",
              lg.head_dim, " dims");
    double attn_factor = 1.0;
    as.inv_freq = rope_frequencies(rope, rot, max_pos, &attn_factor);
    ELM_CHECK(attn_factor == 1.0, "gemma4: RoPE scaling with an attention factor is not supported");
    const int64_t src = kv_source_layer(g, l);
    if (src >= 0) {
      const LayerGeometry& sg = geometry[size_t(src)];
      ELM_CHECK(sg.head_dim == lg.head_dim && sg.kv_heads == lg.kv_heads, "gemma4: layer ", l,
                " shares the KV cache of layer ", src, " whose heads differ");
      as.shared_state = kv_state[size_t(src)];
    }
    const NodeId attn = gemma_attention(b, g, L, l, norm(x, "input_layernorm.weight"), as, &kv_state[size_t(l)]);
    x = b.add(x, norm(attn, "post_attention_layernorm.weight"));

    const int64_t I = inter * (double_wide && l >= g.first_shared ? 2 : 1);
    const NodeId ffn = gemma_mlp(b, g, L, norm(x, "pre_feedforward_layernorm.weight"), I);
    x = b.add(x, norm(ffn, "post_feedforward_layernorm.weight"));

    if (ple != kNone)
      x = b.add(x, per_layer_input_update(b, g, L, x, b.slice(ple, l * g.ple_dim, g.ple_dim)));
    // The layer's output scalar is a one-element tensor: folded into a Scale (skipped when 1).
    if (w.has(L + "layer_scalar")) {
      const TensorView& t = w.get(L + "layer_scalar");
      ELM_CHECK(t.numel() == 1, "gemma4: tensor '", L, "layer_scalar' must hold one value");
      const float s = to_f32(t)[0];
      if (s != 1.0f) x = b.scale(x, double(s));
    }
  }
  b.set_label("");
  return b.finish(gemma_logits(b, g, w, b.output_rows(x), table));
}

}  // namespace elm
