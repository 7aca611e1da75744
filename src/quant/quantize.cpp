#include "quant/quantize.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "quant/calibration.h"
#include "quant/gptq.h"
#include "runtime/model.h"

namespace elm {

namespace {

// The layers whose feed-forward down projection `wide_down` widens: half of them, spread evenly from
// the first to the last (6 layers: 0, 3, 5). On ref-28m the first layer's matters most: {0, 3, 5}
// KLD 0.00212, {0, 1, 5} 0.00213, {0, 2, 4} 0.00216, {0, 1, 2} 0.00220, {1, 3, 5} 0.00266.
bool wide_down_layer(int layer, int layers) {
  const int wide = (layers + 1) / 2;
  if (wide <= 1) return layer == 0;
  for (int i = 0; i < wide; ++i)
    if ((i * (layers - 1) + (wide - 1) / 2) / (wide - 1) == layer) return true;
  return false;
}

// Scales are stored in the tensor's scale dtype; quantize against the stored (rounded) value so the
// quants and the scale the kernels see agree.
float store_scale(uint8_t* plane, size_t index, float v, DType st) {
  if (st == DType::F32) {
    std::memcpy(plane + index * 4, &v, 4);
    return v;
  }
  const uint16_t h = f32_to_f16(v);
  std::memcpy(plane + index * 2, &h, 2);
  return f16_to_f32(h);
}

// Weighted squared error: sum_j w_j e_j^2 with w the column weights of calibration
// (quant/calibration.h), or 1 for every value when there are none.
inline double weight_of(const float* w, int64_t j) { return w ? double(w[j]) : 1.0; }

// The symmetric 4-bit scale of one group (values d * (q - 8), q in 0..15) with the least squared
// error. The value of largest magnitude mapping to -8 (llama.cpp's Q4_0) is the first candidate;
// slightly larger or smaller steps trade clipping that one value for finer steps everywhere else,
// and each candidate's rounding is followed by the least-squares step for those integers.
float q4_scale(const float* x, const float* w, int64_t G) {
  float amax = 0, signed_max = 0;
  for (int64_t j = 0; j < G; ++j)
    if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), signed_max = x[j];
  if (amax == 0) return 0;
  auto error_of = [&](float d, float* refit) {
    const float id = 1.f / d;
    double err = 0, xq = 0, qq = 0;
    for (int64_t j = 0; j < G; ++j) {
      const float q = std::clamp(std::nearbyint(x[j] * id), -8.f, 7.f);
      const double e = x[j] - d * q, wj = weight_of(w, j);
      err += wj * e * e;
      xq += wj * x[j] * q;
      qq += wj * q * q;
    }
    *refit = qq > 0 ? float(xq / qq) : d;
    return err;
  };
  float best_d = signed_max / -8.f, refit = 0;
  double best = error_of(best_d, &refit);
  for (int k = -4; k <= 8; ++k) {
    const float d = signed_max / (-8.f + 0.25f * float(k));
    for (float cand : {d, 0.f}) {
      if (cand == 0.f) cand = refit;  // the least-squares step of the previous candidate's integers
      if (cand == 0.f || !std::isfinite(cand)) continue;
      float next_refit;
      const double e = error_of(cand, &next_refit);
      if (e < best) best = e, best_d = cand;
      refit = next_refit;
    }
  }
  return best_d;
}

// The asymmetric 4-bit step and minimum of one group (values m + d * q, q in 0..15) with the least
// squared error. [min, max] mapped onto 0..15 is the first candidate; ranges trimmed by up to half a
// step at either end trade clipping an extreme for finer steps, and every candidate's integers are
// refitted by least squares (x ~ d q + m).
void q4m_step_and_min(const float* x, const float* w, int64_t G, float* step, float* min) {
  float lo = x[0], hi = x[0];
  for (int64_t j = 1; j < G; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
  *step = (hi - lo) / 15.f;
  *min = lo;
  if (!(hi > lo)) return;
  struct Fit {
    double err;
    float d, m;
  };
  // The error of rounding under (d, m), and the least-squares (d, m) for the integers it chose.
  auto fit = [&](float d, float m) {
    const float id = 1.f / d;
    double err = 0, sw = 0, sq = 0, sqq = 0, sx = 0, sxq = 0;
    for (int64_t j = 0; j < G; ++j) {
      const double q = std::clamp(std::nearbyint((x[j] - m) * id), 0.f, 15.f);
      const double e = x[j] - (m + d * q), wj = weight_of(w, j);
      err += wj * e * e;
      sw += wj, sq += wj * q, sqq += wj * q * q, sx += wj * x[j], sxq += wj * x[j] * q;
    }
    const double det = sw * sqq - sq * sq;
    const double rd = det > 0 ? (sw * sxq - sq * sx) / det : d;
    const double rm = sw > 0 ? (sx - rd * sq) / sw : m;
    return std::pair<Fit, Fit>{{err, d, m}, {0, float(rd), float(rm)}};
  };
  const float unit = (hi - lo) / 90.f;  // a sixth of a step
  Fit best = fit(*step, lo).first;
  for (int top = 0; top <= 3; ++top)
    for (int bottom = 0; bottom <= 3; ++bottom) {
      const float a = lo + float(bottom) * unit, b = hi - float(top) * unit;
      auto [plain, refit] = fit((b - a) / 15.f, a);
      if (plain.err < best.err) best = plain;
      if (refit.d > 0 && std::isfinite(refit.d) && std::isfinite(refit.m)) {
        const Fit r = fit(refit.d, refit.m).first;
        if (r.err < best.err) best = r;
      }
    }
  *step = best.d;
  *min = best.m;
}

}  // namespace

std::vector<uint8_t> quantize_matrix(const float* x, int64_t rows, int64_t cols, const QuantSpec& spec,
                                     TensorView* out_view, const MatrixCalibration& cal) {
  TensorView v;
  v.dtype = spec.type;
  v.shape = {rows, cols};
  std::vector<uint8_t> out;
  const size_t n = size_t(rows * cols);
  switch (spec.type) {
    case DType::F32:
      out.resize(n * 4);
      std::memcpy(out.data(), x, n * 4);
      break;
    case DType::F16:
    case DType::BF16: {
      out.resize(n * 2);
      auto* p = reinterpret_cast<uint16_t*>(out.data());
      for (size_t i = 0; i < n; ++i) p[i] = spec.type == DType::F16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
      break;
    }
    case DType::Q8:
    case DType::Q4:
    case DType::Q4M: {
      v.group = spec.group;
      v.scale_dtype = spec.scale_dtype;
      const QuantLayout l = quant_layout(spec.type, rows, cols, spec.group, spec.scale_dtype);
      out.assign(l.total_bytes, 0);
      const int64_t G = spec.group, n_groups = cols / G;
      const float* cw = cal.column_weights;
      // GPTQ (4-bit only): the row as the rounding errors of earlier columns are spread onto it.
      const bool gptq = cal.gptq_factor && spec.type != DType::Q8;
      std::vector<float> work(gptq ? size_t(cols) : 0);
      std::vector<uint8_t> codes(static_cast<size_t>(G));
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = x + r * cols;
        if (gptq) {
          std::copy_n(row, cols, work.begin());
          row = work.data();
        }
        for (int64_t g = 0; g < n_groups; ++g) {
          const float* xg = row + g * G;
          const float* wg = cw ? cw + g * G : nullptr;
          const size_t si = size_t(r * n_groups + g);
          if (spec.type == DType::Q8) {
            float amax = 0;
            for (int64_t j = 0; j < G; ++j) amax = std::max(amax, std::fabs(xg[j]));
            const float d = store_scale(out.data() + l.scales_offset, si, amax / 127.f, spec.scale_dtype);
            const float id = d ? 1.f / d : 0.f;
            auto* q = reinterpret_cast<int8_t*>(out.data()) + r * cols + g * G;
            for (int64_t j = 0; j < G; ++j) q[j] = int8_t(std::clamp(std::nearbyint(xg[j] * id), -127.f, 127.f));
            continue;
          }
          float d, m = 0, offset;
          if (spec.type == DType::Q4) {
            d = store_scale(out.data() + l.scales_offset, si, q4_scale(xg, wg, G), spec.scale_dtype);
            offset = 8;
          } else {
            float step, lo;
            q4m_step_and_min(xg, wg, G, &step, &lo);
            d = store_scale(out.data() + l.scales_offset, si, step, spec.scale_dtype);
            m = store_scale(out.data() + l.mins_offset, si, lo, spec.scale_dtype);
            offset = 0;
          }
          const float id = d ? 1.f / d : 0.f;
          for (int64_t j = 0; j < G; ++j) {
            // GPTQ reads each value only now, after the errors of the columns before it were spread.
            codes[size_t(j)] = uint8_t(std::clamp(std::nearbyint((xg[j] - m) * id + offset), 0.f, 15.f));
            if (gptq)
              gptq_spread_error(work.data(), cal.gptq_factor, cols, g * G + j, m + d * (float(codes[size_t(j)]) - offset));
          }
          uint8_t* q = out.data() + size_t(r * cols + g * G) / 2;
          for (int64_t b = 0; b < G / 32; ++b)
            for (int j = 0; j < 16; ++j) q[b * 16 + j] = uint8_t(codes[size_t(b * 32 + j)] | codes[size_t(b * 32 + j + 16)] << 4);
        }
      }
      break;
    }
    default: fail("cannot quantize to ", dtype_name(spec.type));
  }
  v.nbytes = out.size();
  if (out_view) *out_view = v;
  return out;
}

WeightRole weight_role(const Graph& g, const std::string& tensor) {
  int32_t id = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op == Op::Weight && g.nodes[i].name == tensor) id = int32_t(i);
  if (id < 0 || g.nodes[size_t(id)].rows == 1) return WeightRole::Small;
  bool embedding = false, matmul = false, output = false, other = false;
  for (const Node& n : g.nodes) {
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (n.inputs[k] != id) continue;
      if (n.op == Op::Embed && k == 0) embedding = true;
      else if (n.op == Op::MatMul && k == 1) {
        matmul = true;
        if (n.rows == kRowsOut && n.cols == g.nodes[size_t(g.output)].cols) output = true;
      } else other = true;
    }
  }
  if (other || (!embedding && !matmul)) return WeightRole::Small;
  if (output) return WeightRole::Output;
  if (embedding) return WeightRole::Embedding;
  auto has = [&](const char* part) { return tensor.find(part) != std::string::npos; };
  if (has("attn") || has("attention")) return has("q_proj") || has("k_proj") ? WeightRole::AttentionQK : WeightRole::Attention;
  if (has("mlp") || has("ffn") || has("feed_forward")) return has("down_proj") ? WeightRole::FeedForwardDown : WeightRole::FeedForward;
  return WeightRole::Other;
}

int weight_layer(const std::string& tensor) {
  const size_t at = tensor.find("layers.");
  if (at == std::string::npos || (at > 0 && tensor[at - 1] != '.')) return -1;
  int layer = -1;
  for (size_t i = at + 7; i < tensor.size() && std::isdigit(static_cast<unsigned char>(tensor[i])) && layer < 1000000; ++i)
    layer = std::max(layer, 0) * 10 + (tensor[i] - '0');
  return layer;
}

int layer_count(const Graph& g) {
  int layers = 0;
  for (const Node& n : g.nodes)
    if (n.op == Op::Weight) layers = std::max(layers, weight_layer(n.name) + 1);
  return layers;
}

QuantPolicy QuantPolicy::parse(const std::string& name) {
  QuantPolicy p;
  p.name = name;
  if (name == "f32") p.base = {DType::F32, 0, DType::F16};
  else if (name == "f16") p.base = {DType::F16, 0, DType::F16};
  else if (name == "bf16") p.base = {DType::BF16, 0, DType::F16};
  else if (name == "int8") p.base = {DType::Q8, 32, DType::F16};
  else if (name == "int4-mix" || name == "int4m-mix") {
    // 4-bit feed-forward matrices (most of a layer's weights); attention, embedding and output at 8
    // bits: the attention projections are small, and their errors reach every later position.
    // int4m-mix (the default) stores the embedding / output in groups of 128, which measured the
    // same KL divergence as 64 and pays for the per-group minimums of its feed-forward matrices.
    // int4m-mix also moves 8 bits from the query / key projections (whose errors the softmax
    // dampens) to the feed-forward down projections of half the layers (wide_down_layer): on
    // ref-28m the same file size, KL divergence 0.00276 -> 0.00212 (docs/quantization.md).
    const bool asym = name == "int4m-mix";
    p.base = {asym ? DType::Q4M : DType::Q4, 32, DType::F16};
    p.attention = QuantSpec{DType::Q8, 32, DType::F16};
    p.embedding = p.output = QuantSpec{DType::Q8, asym ? 128 : 64, DType::F16};
    if (asym) {
      p.attention_qk = QuantSpec{DType::Q4M, 32, DType::F16};
      p.wide_down = QuantSpec{DType::Q8, 32, DType::F16};
    }
  } else if (name == "int4" || name == "int4m") {
    // 4-bit layers in groups of 32 (int4m: with a per-group minimum); the embedding and output
    // matrices, which every token's logits go through, at 8 bits.
    p.base = {name == "int4m" ? DType::Q4M : DType::Q4, 32, DType::F16};
    p.embedding = p.output = QuantSpec{DType::Q8, 32, DType::F16};
  } else if (name.rfind("int4-g", 0) == 0 || name.rfind("int4m-g", 0) == 0) {
    const bool asym = name[4] == 'm';
    const std::string g = name.substr(asym ? 7 : 6);
    ELM_CHECK(g == "32" || g == "64" || g == "128", "quantization '", name, "': group must be 32, 64 or 128");
    p.base = {asym ? DType::Q4M : DType::Q4, std::stoi(g), DType::F16};
  } else {
    fail("unknown quantization '", name, "' (use f32, bf16, f16, int8, int4, int4m, int4-mix, int4m-mix, int4-g32/64/128, int4m-g32/64/128)");
  }
  return p;
}

QuantSpec QuantPolicy::spec_for(WeightRole role, const Shape& shape, int layer, int layers) const {
  if (role == WeightRole::Small) return {DType::F32, 0, DType::F16};
  QuantSpec s = base;
  if (role == WeightRole::Embedding && embedding) s = *embedding;
  if (role == WeightRole::Output && output) s = *output;
  if ((role == WeightRole::Attention || role == WeightRole::AttentionQK) && attention) s = *attention;
  if (role == WeightRole::AttentionQK && attention_qk) s = *attention_qk;
  if (role == WeightRole::FeedForwardDown && wide_down && layer >= 0 && wide_down_layer(layer, layers)) s = *wide_down;
  if (s.type == DType::Q8 && shape.size() == 2 && shape[1] % s.group != 0 && shape[1] % 32 == 0) {
    s.group = 32;  // a large 8-bit group that does not divide a narrow model's rows: the smallest group
  } else if (is_quantized(s.type) && (shape.size() != 2 || shape[1] % s.group != 0)) {
    // Columns the group does not divide: keep the weight in a plain type at similar precision.
    s = {s.type == DType::Q8 ? DType::F16 : DType::Q8, 32, s.scale_dtype};
    if (shape.size() != 2 || shape[1] % 32 != 0) s = {DType::F16, 0, DType::F16};
  }
  return s;
}

size_t quantize_weights(Model& m, const QuantPolicy& policy, const ActivationStats* stats, int threads) {
  const int layers = layer_count(m.graph);
  std::vector<std::string> names;
  for (const auto& [name, t] : m.weights.all()) names.push_back(name);
  // Per tensor: its new bytes, or nothing when it keeps its format.
  std::vector<std::pair<TensorView, std::vector<uint8_t>>> converted(names.size());
  std::vector<char> changed(names.size(), 0);
  auto convert = [&](size_t i) {
    const TensorView& t = m.weights.get(names[i]);
    const QuantSpec spec = policy.spec_for(weight_role(m.graph, names[i]), t.shape, weight_layer(names[i]), layers);
    if (spec.type == t.dtype && (!is_quantized(t.dtype) || (spec.group == t.group && spec.scale_dtype == t.scale_dtype)))
      return;
    const std::vector<float> f = to_f32(t);
    converted[i].second = quantize_matrix(f.data(), t.rows(), t.cols(), spec, &converted[i].first,
                                          stats ? stats->for_matrix(names[i], t.cols()) : MatrixCalibration{});
    converted[i].first.shape = t.shape;
    changed[i] = 1;
  };
  if (threads == 1) {
    for (size_t i = 0; i < names.size(); ++i) convert(i);
  } else {
    std::atomic<size_t> next{0};
    ThreadPool pool(threads);
    pool.run_on_all([&](int, int) {
      for (size_t i = next++; i < names.size(); i = next++) convert(i);
    });
  }
  WeightStore out;
  size_t total = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (changed[i]) out.add_owned_bytes(names[i], converted[i].first, std::move(converted[i].second));
    else out.add(names[i], m.weights.get(names[i]));
    total += out.get(names[i]).nbytes;
  }
  // The source pages were read once; unchanged tensors fault back in from the page cache on use.
  m.weights.release_mapped_pages();
  out.keep_alive(std::make_shared<WeightStore>(std::move(m.weights)));
  m.weights = std::move(out);
  return total;
}

}  // namespace elm
