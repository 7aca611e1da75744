#include "graph/submodel.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <type_traits>

#include "core/error.h"

namespace elm {

namespace {

// Layer of a node from its "l<N>." label, -1 for nodes outside layers (and for weights).
int64_t layer_of(const Node& n) {
  if (n.op == Op::Weight || n.name.size() < 3 || n.name[0] != 'l') return -1;
  size_t i = 1;
  int64_t l = 0;
  while (i < n.name.size() && std::isdigit(static_cast<unsigned char>(n.name[i]))) l = l * 10 + (n.name[i++] - '0');
  return i > 1 && i < n.name.size() && n.name[i] == '.' ? l : -1;
}

bool is_activation(const Node& n) { return n.op != Op::Weight && n.op != Op::TokenIds && n.op != Op::Positions; }

// Ops that may sit between the FFN projections of a narrowed layer: elementwise ones, and row-wise
// ones defined at any width (Gemma 3n's activation sparsity cuts at a statistic of the row).
bool narrowable(Op op) {
  switch (op) {
    case Op::Add: case Op::Mul: case Op::Scale: case Op::Silu: case Op::Gelu: case Op::GeluTanh:
    case Op::Sigmoid: case Op::Softplus: case Op::Tanh: case Op::SoftCap: case Op::GaussianTopK: return true;
    default: return false;
  }
}

std::vector<int64_t> parse_layers(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t dash = item.find('-');
    try {
      size_t used = 0;
      const int64_t a = std::stoll(item.substr(0, dash), &used);
      ELM_CHECK(used == (dash == std::string::npos ? item.size() : dash), "");
      int64_t b = a;
      if (dash != std::string::npos) {
        b = std::stoll(item.substr(dash + 1), &used);
        ELM_CHECK(used == item.size() - dash - 1, "");
      }
      ELM_CHECK(a >= 0 && b >= a && b - a < 100000, "");
      for (int64_t l = a; l <= b; ++l) out.push_back(l);
    } catch (const std::exception&) {
      fail("sub-model spec: bad layer list '", s, "' (expected e.g. 0-3,5)");
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// source[:rows, :cols]; the name carries the shape (a converter stores the slice under it, and loading
// finds it by it).
TensorSlice slice_of(const std::string& source, int64_t rows, int64_t cols) {
  return {source + "[:" + std::to_string(rows) + ",:" + std::to_string(cols) + "]", source, rows, cols};
}

// The whole of `value` as a number (std::stod / std::stoll), or an elm::Error naming `what`.
template <class T>
T parse_number(const std::string& value, const char* what) {
  try {
    size_t used = 0;
    const T v = std::is_floating_point_v<T> ? T(std::stod(value, &used)) : T(std::stoll(value, &used));
    if (used == value.size()) return v;
  } catch (const std::exception&) {
  }
  fail("sub-model spec: bad ", what, " '", value, "'");
}

}  // namespace

SubModelSpec SubModelSpec::parse(const std::string& text) {
  SubModelSpec s;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ';')) {
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    ELM_CHECK(eq != std::string::npos, "sub-model spec: '", part, "' is not key=value (layers=0-3,5;ffn=0.5)");
    const std::string key = part.substr(0, eq), value = part.substr(eq + 1);
    if (key == "layers") {
      s.layers = parse_layers(value);
    } else if (key == "ffn") {
      s.ffn_fraction = parse_number<double>(value, "ffn fraction");
      ELM_CHECK(s.ffn_fraction > 0 && s.ffn_fraction <= 1, "sub-model spec: ffn must be in (0, 1], got ", value);
    } else if (key == "vocab") {
      s.vocab = parse_number<int64_t>(value, "vocab size");
      ELM_CHECK(s.vocab > 0, "sub-model spec: vocab must be positive, got ", value);
    } else {
      fail("sub-model spec: unknown key '", key, "' (layers, ffn, vocab)");
    }
  }
  return s;
}

std::string SubModelSpec::to_string() const {
  std::string s = "layers=";
  for (size_t i = 0; i < layers.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(layers[i]);
  }
  if (layers.empty()) s += "all";
  std::ostringstream f;
  f << ";ffn=" << ffn_fraction;
  if (vocab > 0) f << ";vocab=" << vocab;
  return s + f.str();
}

SubModel carve_submodel(const Graph& g, const std::map<std::string, std::vector<int64_t>>& weight_shapes,
                        const SubModelSpec& spec) {
  const size_t N = g.nodes.size();
  std::vector<int64_t> layer(N);
  int64_t n_layers = 0;
  for (size_t i = 0; i < N; ++i) n_layers = std::max(n_layers, (layer[i] = layer_of(g.nodes[i])) + 1);
  ELM_CHECK(n_layers > 0, "sub-model: the graph has no layer labels (l<N>.)");
  std::vector<bool> keep_layer(size_t(n_layers), spec.layers.empty());
  for (int64_t l : spec.layers) {
    ELM_CHECK(l >= 0 && l < n_layers, "sub-model: layer ", l, " does not exist (the model has layers 0-", n_layers - 1, ")");
    keep_layer[size_t(l)] = true;
  }

  // Readers of every node, to find the values that leave a layer.
  std::vector<std::vector<int32_t>> readers(N);
  for (size_t i = 0; i < N; ++i)
    for (int32_t in : g.nodes[i].inputs)
      if (in >= 0) readers[size_t(in)].push_back(int32_t(i));

  // Skipped layers: every value read after the layer must be a residual sum x_in + ... (a chain of
  // Adds whose first operand leads back out of the layer, as builders write x = x + block(x)); it is
  // replaced by x_in.
  std::vector<int32_t> subst(N);
  for (size_t i = 0; i < N; ++i) subst[i] = int32_t(i);
  for (int64_t l = 0; l < n_layers; ++l) {
    if (keep_layer[size_t(l)]) continue;
    for (size_t i = 0; i < N; ++i) {
      if (layer[i] != l) continue;
      bool read_after = int32_t(i) == g.output;
      for (int32_t r : readers[i]) read_after = read_after || layer[size_t(r)] != l;
      if (!read_after) continue;
      int32_t x = int32_t(i);
      while (layer[size_t(x)] == l && g.nodes[size_t(x)].op == Op::Add) x = g.nodes[size_t(x)].inputs[0];
      ELM_CHECK(layer[size_t(x)] != l && is_activation(g.nodes[size_t(x)]) &&
                    g.nodes[size_t(x)].cols == g.nodes[i].cols && g.nodes[size_t(x)].rows == g.nodes[i].rows,
                "sub-model: layer ", l, " cannot be skipped: its output '", g.nodes[i].name,
                "' is not a residual sum of one of its inputs");
      subst[i] = subst[size_t(x)];
    }
  }

  // Narrowed FFNs: per kept layer, the width kept and the nodes whose width changes.
  SubModel sm;
  std::vector<int64_t> new_cols(N, -1);                  // changed widths
  std::map<int32_t, std::pair<int64_t, int64_t>> sliced;  // weight node -> kept (rows, cols)
  auto slice_weight = [&](int32_t w, int64_t rows, int64_t cols, int64_t l) {
    const Node& wn = g.nodes[size_t(w)];
    ELM_CHECK(wn.op == Op::Weight, "sub-model: node ", w, " is not a weight");
    for (int32_t r : readers[size_t(w)])
      ELM_CHECK(layer[size_t(r)] == l, "sub-model: tensor ", wn.name, " of layer ", l,
                "'s FFN is also read elsewhere, so it cannot be narrowed");
    sliced[w] = {rows, cols};
  };
  if (spec.ffn_fraction < 1) {
    std::map<std::string, int32_t> by_name;
    for (size_t i = 0; i < N; ++i)
      if (layer[i] >= 0) by_name[g.nodes[i].name] = int32_t(i);
    for (int64_t l = 0; l < n_layers; ++l) {
      if (!keep_layer[size_t(l)]) continue;
      std::string L = "l";  // (built piecewise: gcc 12 warns falsely on "l" + std::string)
      L += std::to_string(l);
      L += '.';
      auto find = [&](const char* what) {
        const auto it = by_name.find(L + what);
        ELM_CHECK(it != by_name.end() && g.nodes[size_t(it->second)].op == Op::MatMul, "sub-model: layer ", l,
                  " has no '", what, "' projection, so its FFN cannot be narrowed");
        return it->second;
      };
      const int32_t gate = find("gate"), up = find("up"), down = find("down");
      const int64_t inter = g.nodes[size_t(gate)].cols;
      ELM_CHECK(g.nodes[size_t(up)].cols == inter && g.nodes[size_t(g.nodes[size_t(down)].inputs[0])].cols == inter,
                "sub-model: layer ", l, ": gate, up and down disagree on the FFN width");
      const int64_t mult = std::max<int64_t>(1, spec.ffn_multiple);
      const int64_t m = std::clamp<int64_t>(int64_t(std::llround(double(inter) * spec.ffn_fraction / double(mult))) * mult,
                                            std::min(mult, inter), inter);
      if (m == inter) continue;
      // Nodes between gate/up and down's input: forward from gate/up, backward from down's input.
      std::vector<bool> fwd(N, false), bwd(N, false);
      fwd[size_t(gate)] = fwd[size_t(up)] = true;
      for (size_t i = size_t(std::min(gate, up)); i < size_t(down); ++i)
        for (int32_t in : g.nodes[i].inputs)
          if (in >= 0 && fwd[size_t(in)] && layer[i] == l) fwd[i] = true;
      bwd[size_t(g.nodes[size_t(down)].inputs[0])] = true;
      for (size_t i = size_t(down); i-- > 0;)
        if (bwd[i])
          for (int32_t in : g.nodes[i].inputs)
            if (in >= 0) bwd[size_t(in)] = true;
      for (size_t i = 0; i < N; ++i) {
        if (!fwd[i] || !bwd[i]) continue;
        const Node& n = g.nodes[i];
        if (int32_t(i) != gate && int32_t(i) != up)
          ELM_CHECK(narrowable(n.op) && n.cols == inter, "sub-model: layer ", l, ": ", op_name(n.op), " node '",
                    n.name, "' between the FFN projections does not work per neuron, so the FFN cannot be narrowed");
        new_cols[i] = m;
        for (size_t k = 0; k < n.inputs.size(); ++k) {  // per-neuron vectors (biases, scales) shrink too
          const int32_t in = n.inputs[k];
          if (in < 0 || g.nodes[size_t(in)].op != Op::Weight) continue;
          const Node& wn = g.nodes[size_t(in)];
          if (n.op == Op::MatMul && k == 1) slice_weight(in, m, wn.cols, l);  // gate/up rows
          else if (wn.rows == 1 && wn.cols == inter) slice_weight(in, 1, m, l);
        }
      }
      slice_weight(g.nodes[size_t(down)].inputs[1], g.nodes[size_t(down)].cols, m, l);  // down columns
    }
  }

  // Narrowed output layer: the product feeding the logits (through elementwise ops) reads a [vocab, d]
  // prefix of its weight, as a tensor of its own (head_slice), and every node after it narrows.
  int32_t head = -1;
  TensorSlice head_slice;
  if (spec.vocab > 0 && spec.vocab < g.nodes[size_t(g.output)].cols) {
    const int64_t V = g.nodes[size_t(g.output)].cols;
    int32_t x = g.output;
    std::vector<int32_t> chain;
    while (g.nodes[size_t(x)].op != Op::MatMul) {
      const Node& n = g.nodes[size_t(x)];
      ELM_CHECK(narrowable(n.op) && n.op != Op::GaussianTopK && n.inputs.size() == 1, "sub-model: the logits come from ",
                op_name(n.op), " node '", n.name, "', not from a product, so the vocabulary cannot be narrowed");
      chain.push_back(x);
      x = n.inputs[0];
    }
    const Node& mm = g.nodes[size_t(x)];
    const Node& w = g.nodes[size_t(mm.inputs[1])];
    ELM_CHECK(w.op == Op::Weight && w.rows == V && (mm.inputs.size() < 3 || mm.inputs[2] < 0),
              "sub-model: the output product '", mm.name, "' is not a plain [vocab, d] weight product, so the "
              "vocabulary cannot be narrowed");
    head = x;
    chain.push_back(x);
    for (int32_t c : chain) new_cols[size_t(c)] = spec.vocab;
    head_slice = slice_of(w.name, spec.vocab, w.cols);
    sm.slices.push_back(head_slice);
  }

  // Live nodes: reachable from the output through the substituted edges.
  auto src = [&](int32_t in) { return in < 0 ? in : subst[size_t(in)]; };
  std::vector<bool> live(N, false);
  live[size_t(g.output)] = true;
  for (size_t i = N; i-- > 0;)
    if (live[i])
      for (size_t k = 0; k < g.nodes[i].inputs.size(); ++k) {
        const int32_t in = g.nodes[i].inputs[k];
        if (in < 0 || (int32_t(i) == head && k == 1)) continue;  // the narrowed product reads head_slice
        live[size_t(src(in))] = true;
      }

  // States (KV caches, recurrent states) of live nodes, renumbered in order of first use; a KV cache
  // read by a layer that shares it must still be written by a kept one.
  std::map<int64_t, int64_t> state_map;
  std::set<int64_t> written;
  for (size_t i = 0; i < N; ++i) {
    const Node& n = g.nodes[i];
    if (!live[i] || !n.attrs.has("state")) continue;
    const int64_t s = n.attrs.i("state");
    if (n.op != Op::Attention || n.attrs.i("write", 1)) written.insert(s);
    ELM_CHECK(written.count(s), "sub-model: layer ", layer[i], " shares the KV cache of a skipped layer");
    if (!state_map.count(s)) {
      const int64_t ns = int64_t(state_map.size());
      state_map[s] = ns;
      sm.graph.states.push_back(g.states[size_t(s)]);
    }
  }

  // Emit live nodes in order, sliced weights as new weight nodes.
  std::vector<int32_t> id(N, -1);
  for (size_t i = 0; i < N; ++i) {
    if (!live[i]) continue;
    Node n = g.nodes[i];
    if (n.op == Op::Weight && sliced.count(int32_t(i))) {
      const auto [rows, cols] = sliced.at(int32_t(i));
      const TensorSlice ts = slice_of(n.name, rows, cols);
      sm.slices.push_back(ts);
      n.name = ts.name, n.rows = rows, n.cols = cols;
    }
    for (int32_t& in : n.inputs)
      if (in >= 0) in = id[size_t(src(in))];
    if (int32_t(i) == head) {  // its weight: the prefix, emitted just before it
      Node w = g.nodes[size_t(g.nodes[i].inputs[1])];
      w.name = head_slice.name, w.rows = head_slice.rows;
      n.inputs[1] = int32_t(sm.graph.nodes.size());
      sm.graph.nodes.push_back(std::move(w));
    }
    if (new_cols[i] >= 0) n.cols = new_cols[i];
    if (n.attrs.has("state")) n.attrs.set("state", state_map.at(n.attrs.i("state")));
    id[i] = int32_t(sm.graph.nodes.size());
    sm.graph.nodes.push_back(std::move(n));
  }
  sm.graph.output = id[size_t(g.output)];

  std::map<std::string, std::vector<int64_t>> shapes = weight_shapes;
  for (const TensorSlice& s : sm.slices) {
    const auto& src_shape = weight_shapes.at(s.source);
    shapes[s.name] = src_shape.size() == 1 ? std::vector<int64_t>{s.cols} : std::vector<int64_t>{s.rows, s.cols};
  }
  sm.graph.validate(shapes);
  return sm;
}

}  // namespace elm
