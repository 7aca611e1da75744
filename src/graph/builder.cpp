#include "graph/builder.h"

#include <cmath>

#include "core/error.h"

namespace elm {

NodeId GraphBuilder::node(Op op, std::vector<NodeId> inputs, int64_t rows, int64_t cols, Attrs attrs,
                          std::string name) {
  Node n;
  n.op = op;
  n.inputs = std::move(inputs);
  n.rows = rows;
  n.cols = cols;
  n.attrs = std::move(attrs);
  n.name = name.empty() && op != Op::Weight ? label_ + op_name(op) : std::move(name);
  g_.nodes.push_back(std::move(n));
  return NodeId(g_.nodes.size() - 1);
}

NodeId GraphBuilder::weight_if(const std::string& name, const Shape& shape) {
  if (!w_.has(name)) return kNone;
  return weight(name, shape);
}

NodeId GraphBuilder::weight(const std::string& name, const Shape& shape) {
  auto it = weight_nodes_.find(name);
  if (it != weight_nodes_.end()) return it->second;
  const TensorView& t = w_.get(name);
  ELM_CHECK(t.shape == shape, "tensor '", name, "' has shape ", shape_str(t.shape), ", expected ", shape_str(shape));
  ELM_CHECK(shape.size() == 1 || shape.size() == 2, "tensor '", name, "': only 1-D and 2-D weights are supported");
  ELM_CHECK(t.dtype != DType::I32 && t.dtype != DType::I8, "tensor '", name, "' has integer dtype ",
            dtype_name(t.dtype), ", expected floating point weights");
  int64_t rows = shape.size() == 2 ? shape[0] : 1;
  NodeId id = node(Op::Weight, {}, rows, shape.back(), {}, name);
  weight_nodes_[name] = id;
  return id;
}

NodeId GraphBuilder::constant(const std::string& name, const std::vector<float>& values) {
  if (!w_.has(name)) w_.add_owned(name, {int64_t(values.size())}, values);
  return weight(name, {int64_t(values.size())});
}

NodeId GraphBuilder::token_ids() {
  if (token_ids_ == kNone) token_ids_ = node(Op::TokenIds, {}, kRowsT, 1, {}, "token_ids");
  return token_ids_;
}

NodeId GraphBuilder::positions() {
  if (positions_ == kNone) positions_ = node(Op::Positions, {}, kRowsT, 1, {}, "positions");
  return positions_;
}

NodeId GraphBuilder::embed(NodeId table, NodeId ids) { return node(Op::Embed, {table, ids}, kRowsT, cols(table)); }

NodeId GraphBuilder::matmul(NodeId x, NodeId w, NodeId bias, const std::string& label) {
  std::vector<NodeId> in{x, w};
  if (bias != kNone) in.push_back(bias);
  return node(Op::MatMul, in, at(x).rows, at(w).rows, {}, label.empty() ? "" : label_ + label);
}

NodeId GraphBuilder::rms_norm(NodeId x, NodeId w, double eps, bool add_one, int64_t group) {
  Attrs a;
  a.set("eps", eps);
  if (add_one) a.set("add_one", true);
  if (group) a.set("group", group);
  std::vector<NodeId> in{x};
  if (w != kNone) in.push_back(w);
  return node(Op::RmsNorm, in, at(x).rows, cols(x), a);
}

NodeId GraphBuilder::add(NodeId a, NodeId b) { return node(Op::Add, {a, b}, at(a).rows, cols(a)); }
NodeId GraphBuilder::mul(NodeId a, NodeId b) { return node(Op::Mul, {a, b}, at(a).rows, cols(a)); }

NodeId GraphBuilder::scale(NodeId x, double s) {
  return node(Op::Scale, {x}, at(x).rows, cols(x), Attrs().set("scale", s));
}

NodeId GraphBuilder::unary(Op op, NodeId x) { return node(op, {x}, at(x).rows, cols(x)); }

NodeId GraphBuilder::softcap(NodeId x, double cap) {
  return node(Op::SoftCap, {x}, at(x).rows, cols(x), Attrs().set("cap", cap));
}

NodeId GraphBuilder::slice(NodeId x, int64_t start, int64_t len) {
  return node(Op::Slice, {x}, at(x).rows, len, Attrs().set("start", start).set("len", len));
}

NodeId GraphBuilder::slice_groups(NodeId x, int64_t group, int64_t start, int64_t len) {
  const int64_t groups = group > 0 ? cols(x) / group : 0;
  return node(Op::SliceGroups, {x}, at(x).rows, groups * len,
              Attrs().set("group", group).set("start", start).set("len", len));
}

NodeId GraphBuilder::concat(const std::vector<NodeId>& parts) {
  int64_t c = 0;
  for (NodeId p : parts) c += cols(p);
  return node(Op::Concat, parts, at(parts.at(0)).rows, c);
}

NodeId GraphBuilder::output_rows(NodeId x) { return node(Op::OutputRows, {x}, kRowsOut, cols(x)); }

NodeId GraphBuilder::rope(NodeId x, NodeId inv_freq, int64_t head_dim, bool pairs, double attn_factor) {
  Attrs a;
  a.set("head_dim", head_dim);
  if (pairs) a.set("pairs", true);
  if (attn_factor != 1.0) a.set("attn_factor", attn_factor);
  return node(Op::Rope, {x, positions(), inv_freq}, at(x).rows, cols(x), a);
}

NodeId GraphBuilder::rms_rescale(NodeId x, NodeId ref, double floor) {
  return node(Op::RmsRescale, {x, ref}, at(x).rows, cols(x), Attrs().set("floor", floor));
}

NodeId GraphBuilder::gaussian_topk(NodeId x, double std_mult) {
  return node(Op::GaussianTopK, {x}, at(x).rows, cols(x), Attrs().set("std_mult", std_mult));
}

NodeId GraphBuilder::stream_mix(NodeId x, NodeId coefs, int64_t streams) {
  const int64_t width = streams > 0 ? cols(x) / streams : 0, out_streams = streams > 0 ? cols(coefs) / streams : 0;
  return node(Op::StreamMix, {x, coefs}, at(x).rows, out_streams * width, Attrs().set("streams", streams));
}

NodeId GraphBuilder::causal_conv1d(NodeId x, NodeId w) {
  StateDecl st;
  st.kind = "conv";
  st.attrs.set("channels", cols(x)).set("kernel", cols(w));
  const int32_t state = add_state(std::move(st));
  return node(Op::CausalConv1d, {x, w}, at(x).rows, cols(x), Attrs().set("state", int64_t(state)));
}

NodeId GraphBuilder::gated_delta_rule(NodeId q, NodeId k, NodeId v, NodeId g, NodeId beta, const DeltaRuleSpec& s) {
  const int64_t dv = s.v_head_dim ? s.v_head_dim : s.head_dim;
  StateDecl st;
  st.kind = "delta";
  st.attrs.set("heads", s.v_heads).set("k_head_dim", s.head_dim).set("v_head_dim", dv);
  const int32_t state = add_state(std::move(st));
  Attrs a;
  a.set("k_heads", s.k_heads).set("v_heads", s.v_heads).set("head_dim", s.head_dim).set("v_head_dim", dv);
  a.set("scale", s.scale).set("state", int64_t(state));
  if (s.l2norm) a.set("l2norm", true);
  return node(Op::GatedDeltaRule, {q, k, v, g, beta}, at(q).rows, s.v_heads * dv, a);
}

int32_t GraphBuilder::add_state(StateDecl s) {
  g_.states.push_back(std::move(s));
  return int32_t(g_.states.size() - 1);
}

namespace {
Attrs attention_attrs(const GraphBuilder::AttentionSpec& s, int32_t state, bool write) {
  Attrs a;
  a.set("heads", s.heads).set("kv_heads", s.kv_heads).set("head_dim", s.head_dim).set("scale", s.scale);
  if (s.v_head_dim && s.v_head_dim != s.head_dim) a.set("v_head_dim", s.v_head_dim);
  if (s.window) a.set("window", s.window);
  if (s.softcap) a.set("softcap", s.softcap);
  a.set("state", int64_t(state));
  if (!write) a.set("write", false);
  return a;
}
}  // namespace

NodeId GraphBuilder::attention(NodeId q, NodeId k, NodeId v, const AttentionSpec& s, int32_t* state_out) {
  StateDecl st;
  st.kind = "kv";
  const int64_t dv = s.v_head_dim ? s.v_head_dim : s.head_dim;
  st.attrs.set("kv_heads", s.kv_heads).set("head_dim", s.head_dim).set("v_head_dim", dv).set("window", s.window);
  int32_t state = add_state(std::move(st));
  if (state_out) *state_out = state;
  return node(Op::Attention, {q, k, v}, at(q).rows, s.heads * dv, attention_attrs(s, state, true));
}

NodeId GraphBuilder::attention_shared(NodeId q, int32_t state, const AttentionSpec& s) {
  const int64_t dv = s.v_head_dim ? s.v_head_dim : s.head_dim;
  return node(Op::Attention, {q}, at(q).rows, s.heads * dv, attention_attrs(s, state, false));
}

Graph GraphBuilder::finish(NodeId logits) {
  g_.output = logits;
  g_.validate(w_.shapes());
  return std::move(g_);
}

std::vector<float> rope_inv_freq(double theta, int64_t dim) {
  std::vector<float> f(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), in float32
    float expo = float(2 * i) / float(dim);
    f[size_t(i)] = 1.0f / std::pow(float(theta), expo);
  }
  return f;
}

}  // namespace elm
