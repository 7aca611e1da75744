// Gemma 3n (text). Beyond Gemma 3:
// - AltUp: the residual is n parallel streams ([T, n*hidden]); each layer predicts all streams from a
//   per-token router (predict), runs the transformer block on the active one, then spreads the
//   block's correction back to every stream (correct). The extra streams start as projections of
//   the embedding rescaled to its magnitude, and are projected back and averaged at the end.
// - Laurel: a low-rank residual branch beside attention.
// - Per-layer embeddings (PLE), gated into streams 1.. after every layer.
// - Activation sparsity: GaussianTopK on the MLP gate of the first layers.
// - KV sharing: the last num_kv_shared_layers layers attend over the cache of the last earlier layer
//   of their type.
// Norms scale by w (not 1 + w); attention scale is 1; logits are soft-capped.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "graph/builders/family.h"
#include "graph/builders/gemma_blocks.h"

namespace elm {

namespace {

// Inverse of erf by Newton's method (erf is smooth and monotone; a few steps from a good start).
double erfinv(double y) {
  double x = 0;
  for (int i = 0; i < 60; ++i) {
    const double err = std::erf(x) - y;
    if (std::fabs(err) < 1e-17) break;
    x -= err / (2.0 / std::sqrt(M_PI) * std::exp(-x * x));
  }
  return x;
}

// The cutoff, in standard deviations above the mean, that keeps the top (1 - sparsity) of a normal
// distribution: its inverse CDF, rounded through float32 the way transformers computes it.
double sparsity_std_mult(double sparsity) {
  const float y = 2.0f * float(sparsity) - 1.0f;
  return double(float(erfinv(double(y))) * float(M_SQRT2));
}

// Per-layer list or one value for all layers.
std::vector<double> per_layer_numbers(const HfConfig& c, const std::string& key, int64_t layers, double def) {
  std::vector<double> out(size_t(layers), def);
  if (!c.has(key)) return out;
  const nlohmann::json& j = c.json()[key];
  if (j.is_number()) {
    std::fill(out.begin(), out.end(), j.get<double>());
    return out;
  }
  ELM_CHECK(j.is_array() && j.size() == size_t(layers), "config.json: '", key, "' needs one entry per layer");
  for (size_t l = 0; l < out.size(); ++l) {
    ELM_CHECK(j[l].is_number(), "config.json: '", key, "' must hold numbers");
    out[l] = j[l].get<double>();
  }
  return out;
}

// AltUp's correction coefficients [n, n], clamped to +-clip as transformers does before every use. A
// clamped copy is only made when clamping changes something.
NodeId correction_coefs(GraphBuilder& b, WeightStore& w, const std::string& L, int64_t n, double clip) {
  const std::string name = L + "altup.correction_coefs.weight";
  ELM_CHECK(w.has(name) && w.get(name).shape == Shape({n, n}), "gemma3n: tensor '", name, "' must exist with shape [",
            n, ", ", n, "]");
  std::vector<float> v = to_f32(w.get(name));
  bool changed = false;
  for (float& x : v) {
    const float clamped = clip > 0 ? std::clamp(x, -float(clip), float(clip)) : x;
    changed = changed || clamped != x;
    x = clamped;
  }
  if (!changed) return b.weight(name, {n, n});
  if (!w.has(name + ".clipped")) w.add_owned(name + ".clipped", {n, n}, std::move(v));
  return b.weight(name + ".clipped", {n, n});
}

}  // namespace

Graph build_gemma3n(const HfConfig& c, WeightStore& w) {
  const GemmaTextConfig g = read_gemma_text_config(c, w);
  const int64_t H = g.hidden, n = c.i("altup_num_inputs", 4), active = c.i("altup_active_idx", 0);
  ELM_CHECK(n >= 1 && n <= 64 && active >= 0 && active < n, "gemma3n: bad altup_num_inputs / altup_active_idx");
  ELM_CHECK(g.ple_dim > 0, "gemma3n: hidden_size_per_layer_input must be positive");
  const int64_t rank = c.i("laurel_rank");
  const bool correct_scale = c.b("altup_correct_scale", true);
  const double coef_clip = c.f("altup_coef_clip", 0.0);
  const std::vector<double> inter = per_layer_numbers(c, "intermediate_size", g.layers, 0);
  const std::vector<double> sparsity = per_layer_numbers(c, "activation_sparsity_pattern", g.layers, 0);
  for (double s : sparsity)
    ELM_CHECK(s >= 0 && s < 1, "gemma3n: activation_sparsity_pattern values must lie in [0, 1)");
  const int64_t max_pos = c.i("max_position_embeddings", 32768);

  GraphBuilder b(w);
  const NodeId table = b.weight(g.prefix + "embed_tokens.weight", {g.vocab, H});
  const NodeId x0 = gemma_embed(b, g, table);
  const NodeId ple = per_layer_inputs(b, g, x0);

  // The streams: the embedding, then its projections at the embedding's magnitude.
  constexpr double kMagnitudeFloor = 1e-5;
  std::vector<NodeId> streams{x0};
  for (int64_t i = 1; i < n; ++i) {
    const std::string name = g.prefix + "altup_projections." + std::to_string(i - 1) + ".weight";
    const NodeId p = b.matmul(x0, b.weight(name, {H, H}));
    streams.push_back(b.rms_rescale(p, x0, kMagnitudeFloor));
  }
  NodeId x = b.concat(streams);

  std::vector<float> ones(size_t(n), 1.f), fanout(size_t(n), 1.f), mean(size_t(n), 1.f / float(n));
  fanout[0] = 0.f;  // the per-layer input goes to every stream but the first
  const NodeId plus_one = b.constant("altup.ones", ones);
  const NodeId to_streams = b.constant("altup.fanout", fanout);
  const NodeId average = b.constant("altup.mean", mean);

  std::vector<int32_t> kv_state(size_t(g.layers), -1);
  for (int64_t l = 0; l < g.layers; ++l) {
    const std::string L = g.prefix + "layers." + std::to_string(l) + ".";
    b.set_label("l" + std::to_string(l) + ".");
    auto norm = [&](NodeId v, const std::string& name) { return b.rms_norm(v, b.weight(L + name, {H}), g.eps); };
    // AltUp router: per-token mixing coefficients from one stream, in (-1, 1).
    auto router = [&](NodeId v) {
      NodeId r = b.scale(norm(v, "altup.router_norm.weight"), 1.0 / double(H));
      return b.unary(Op::Tanh, b.matmul(r, b.weight(L + "altup.modality_router.weight", {n, H})));
    };

    // Predict: every stream plus a router-weighted mix of all streams.
    const NodeId pred_coefs = b.matmul(router(b.slice(x, active * H, H)),
                                       b.weight(L + "altup.prediction_coefs.weight", {n * n, n}));
    const NodeId pred = b.add(x, b.stream_mix(x, pred_coefs, n));
    const NodeId ap = b.slice(pred, active * H, H);
    const NodeId apn = norm(ap, "input_layernorm.weight");

    // Laurel: a low-rank residual branch.
    NodeId laurel = b.matmul(apn, b.weight(L + "laurel.linear_left.weight", {rank, H}));
    laurel = b.matmul(laurel, b.weight(L + "laurel.linear_right.weight", {H, rank}));
    laurel = b.add(apn, norm(laurel, "laurel.post_laurel_norm.weight"));

    // Attention (own or shared KV) and MLP on the active stream.
    GemmaAttentionSpec as;
    const std::string& type = g.types[size_t(l)];
    as.kv_heads = g.kv_heads, as.head_dim = g.head_dim;
    as.window = type == "sliding_attention" ? g.window : 0;
    double attn_factor = 1.0;
    as.inv_freq = rope_frequencies(c.rope(type), g.head_dim, max_pos, &attn_factor);
    ELM_CHECK(attn_factor == 1.0, "gemma3n: RoPE scaling with an attention factor is not supported");
    const int64_t src = kv_source_layer(g, l);
    if (src >= 0) as.shared_state = kv_state[size_t(src)];
    NodeId attn = gemma_attention(b, g, L, l, apn, as, &kv_state[size_t(l)]);
    attn = norm(attn, "post_attention_layernorm.weight");
    const NodeId h = b.scale(b.add(b.add(ap, attn), laurel), 1.0 / std::sqrt(2.0));
    const int64_t I = int64_t(inter[size_t(l)]);
    ELM_CHECK(I > 0, "gemma3n: intermediate_size must be positive");
    const double cut = sparsity[size_t(l)] > 0 ? sparsity_std_mult(sparsity[size_t(l)]) : 0;
    NodeId ffn = gemma_mlp(b, g, L, norm(h, "pre_feedforward_layernorm.weight"), I, cut);
    const NodeId activated = b.add(h, norm(ffn, "post_feedforward_layernorm.weight"));

    // Correct: every stream moves by a router-weighted share of the active stream's innovation.
    const NodeId innovation = b.add(activated, b.scale(ap, -1.0));
    const NodeId corr_coefs = b.add(b.matmul(router(activated), correction_coefs(b, w, L, n, coef_clip)), plus_one);
    const NodeId corrected = b.add(pred, b.stream_mix(innovation, corr_coefs, 1));

    // Per-layer input, from the (scaled) active stream, added to streams 1...
    NodeId first = b.slice(corrected, active * H, H);
    if (correct_scale) first = b.mul(first, b.weight(L + "altup.correct_output_scale", {H}));
    const NodeId update = per_layer_input_update(b, g, L, first, b.slice(ple, l * g.ple_dim, g.ple_dim));
    x = b.add(corrected, b.stream_mix(update, to_streams, 1));
  }

  // Back to one stream: project the others back, match the first's magnitude, average.
  b.set_label("");
  x = b.output_rows(x);
  const NodeId first = b.slice(x, 0, H);
  streams.assign(1, first);
  for (int64_t i = 1; i < n; ++i) {
    const std::string name = g.prefix + "altup_unembed_projections." + std::to_string(i - 1) + ".weight";
    const NodeId p = b.matmul(b.slice(x, i * H, H), b.weight(name, {H, H}));
    streams.push_back(b.rms_rescale(p, first, kMagnitudeFloor));
  }
  x = b.stream_mix(b.concat(streams), average, n);
  return b.finish(gemma_logits(b, g, w, x, table));
}

}  // namespace elm
