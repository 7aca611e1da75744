#include "backend/cuda/lowering.h"

#include <algorithm>
#include <map>

#include "backend/partition.h"

namespace elm::cuda {

namespace {

struct Planner {
  const Graph& g;
  const WeightStore& w;
  std::vector<int> pos;                      // position in the segment, -1 outside
  std::vector<std::vector<int32_t>> users;   // readers inside the segment
  std::vector<bool> is_output, covered;

  const Node& node(int32_t n) const { return g.nodes[size_t(n)]; }
  // Read by exactly one node of the segment and by nothing after it.
  bool private_to(int32_t n, int32_t reader) const {
    return n >= 0 && pos[size_t(n)] >= 0 && !is_output[size_t(n)] && users[size_t(n)].size() == 1 &&
           users[size_t(n)][0] == reader;
  }
  bool is_matmul(int32_t n) const { return n >= 0 && pos[size_t(n)] >= 0 && node(n).op == Op::MatMul; }
  const TensorView& weight_of(int32_t matmul) const { return w.get(node(node(matmul).inputs[1]).name); }
  // Products that one kernel launch can run together: same x, same weight layout.
  bool compatible(int32_t a, int32_t b) const {
    const Node &na = node(a), &nb = node(b);
    const TensorView &wa = weight_of(a), &wb = weight_of(b);
    return na.inputs[0] == nb.inputs[0] && wa.dtype == wb.dtype && wa.cols() == wb.cols() &&
           (!is_quantized(wa.dtype) || (wa.group == wb.group && wa.scale_dtype == wb.scale_dtype));
  }
};

bool is_value(const Graph& g, int32_t n) { return n >= 0 && !is_source_op(g.nodes[size_t(n)].op); }

}  // namespace

std::vector<Step> lower(const Graph& g, const WeightStore& w, std::span<const int32_t> nodes,
                        std::span<const int32_t> outputs, const LowerOptions& options) {
  const size_t N = g.nodes.size();
  Planner P{g, w, std::vector<int>(N, -1), std::vector<std::vector<int32_t>>(N), std::vector<bool>(N, false),
            std::vector<bool>(N, false)};
  for (size_t i = 0; i < nodes.size(); ++i) P.pos[size_t(nodes[i])] = int(i);
  for (int32_t n : nodes)
    for (int32_t in : g.nodes[size_t(n)].inputs)
      if (in >= 0 && std::find(P.users[size_t(in)].begin(), P.users[size_t(in)].end(), n) == P.users[size_t(in)].end())
        P.users[size_t(in)].push_back(n);
  for (int32_t o : outputs) P.is_output[size_t(o)] = true;

  // Products, keyed by the node whose position they execute at.
  struct Unit {
    int32_t x = -1, norm = -1;
    std::vector<MatmulOut> outs;
    Op gate = Op::Count;
    int32_t gated = -1;
    int anchor = -1;  // position
  };
  std::vector<Unit> units;
  std::vector<int> unit_of(N, -1);  // matmul node -> unit
  std::map<int32_t, int32_t> rope_q, rope_k;  // attention -> fused rope

  for (int32_t n : nodes) {
    const Node& nd = g.nodes[size_t(n)];
    if (!options.fuse) break;
    if (nd.op == Op::Attention) {
      auto fusable_rope = [&](int32_t r) {
        return r >= 0 && P.pos[size_t(r)] >= 0 && P.node(r).op == Op::Rope && P.private_to(r, n);
      };
      if (fusable_rope(nd.inputs[0])) rope_q[n] = nd.inputs[0], P.covered[size_t(nd.inputs[0])] = true;
      if (nd.attrs.i("write", 1) && nd.inputs.size() > 1 && fusable_rope(nd.inputs[1]))
        rope_k[n] = nd.inputs[1], P.covered[size_t(nd.inputs[1])] = true;
    }
    if (nd.op == Op::Mul) {
      for (int order = 0; order < 2; ++order) {
        const int32_t a = nd.inputs[size_t(order)], b = nd.inputs[size_t(1 - order)];
        if (a < 0 || b < 0 || P.pos[size_t(a)] < 0) continue;
        const Op act = P.node(a).op;
        if ((act != Op::Silu && act != Op::Gelu && act != Op::GeluTanh) || !P.private_to(a, n)) continue;
        const int32_t mg = P.node(a).inputs[0];
        if (!P.is_matmul(mg) || !P.private_to(mg, a) || !P.is_matmul(b) || !P.private_to(b, n)) continue;
        if (!P.compatible(mg, b) || P.node(mg).cols != P.node(b).cols || unit_of[size_t(mg)] >= 0) continue;
        Unit u;
        u.x = P.node(mg).inputs[0];
        u.outs = {{mg, mg, -1}, {b, b, -1}};
        u.gate = act, u.gated = n, u.anchor = P.pos[size_t(n)];
        unit_of[size_t(mg)] = unit_of[size_t(b)] = int(units.size());
        units.push_back(u);
        P.covered[size_t(mg)] = P.covered[size_t(b)] = P.covered[size_t(a)] = true;
        break;
      }
    }
  }
  // Remaining products, with a fused residual Add when the product's only reader is one.
  for (int32_t n : nodes) {
    const Node& nd = g.nodes[size_t(n)];
    if (nd.op != Op::MatMul || unit_of[size_t(n)] >= 0) continue;
    Unit u;
    u.x = nd.inputs[0];
    u.outs = {{n, n, -1}};
    u.anchor = P.pos[size_t(n)];
    if (options.fuse && !P.is_output[size_t(n)] && P.users[size_t(n)].size() == 1) {
      const int32_t add = P.users[size_t(n)][0];
      const Node& an = P.node(add);
      if (an.op == Op::Add && an.inputs[0] != an.inputs[1]) {
        const int32_t other = an.inputs[0] == n ? an.inputs[1] : an.inputs[0];
        const Node& on = P.node(other);
        if (is_value(g, other) && on.rows == nd.rows && on.cols == nd.cols) {
          u.outs[0].value = add, u.outs[0].residual = other;
          u.anchor = P.pos[size_t(add)];
          P.covered[size_t(n)] = true;
        }
      }
    }
    unit_of[size_t(n)] = int(units.size());
    units.push_back(u);
  }
  // RMSNorm over whole rows read only by products: the products normalize their x themselves.
  if (options.fuse) {
    for (int32_t n : nodes) {
      const Node& nd = g.nodes[size_t(n)];
      if (nd.op != Op::RmsNorm || P.is_output[size_t(n)] || nd.attrs.i("group", nd.cols) != nd.cols) continue;
      const auto& us = P.users[size_t(n)];
      const bool all_products =
          !us.empty() && std::all_of(us.begin(), us.end(), [&](int32_t r) {
            return P.node(r).op == Op::MatMul && P.node(r).inputs[0] == n && P.node(r).inputs[1] != n;
          });
      if (!all_products) continue;
      for (Unit& u : units)
        if (u.x == n) u.x = nd.inputs[0], u.norm = n;
      P.covered[size_t(n)] = true;
    }
  }
  // Siblings: products of one x with compatible weights, no residual, executed at the last one's
  // position, which is safe when nothing reads an earlier one before that.
  std::vector<std::vector<int>> groups;  // unit indices
  std::vector<int> group_of(units.size(), -1);
  for (size_t i = 0; i < units.size(); ++i) {
    Unit& u = units[i];
    const bool mergeable = options.fuse && u.gate == Op::Count && u.outs[0].residual < 0;
    int chosen = -1;
    if (mergeable) {
      for (size_t gi = 0; gi < groups.size() && chosen < 0; ++gi) {
        std::vector<int>& gr = groups[gi];
        const Unit& first = units[size_t(gr[0])];
        if (gr.size() >= 3 || first.gate != Op::Count || first.outs[0].residual >= 0) continue;
        if (first.x != u.x || first.norm != u.norm || !P.compatible(first.outs[0].matmul, u.outs[0].matmul)) continue;
        bool safe = true;
        for (int m : gr)
          for (int32_t r : P.users[size_t(units[size_t(m)].outs[0].value)])
            safe = safe && P.pos[size_t(r)] > u.anchor;
        if (safe) chosen = int(gi);
      }
    }
    if (chosen < 0) {
      chosen = int(groups.size());
      groups.emplace_back();
    }
    groups[size_t(chosen)].push_back(int(i));
    group_of[i] = chosen;
  }
  for (auto& gr : groups)
    if (gr.size() > 1)
      for (int m : gr) P.covered[size_t(units[size_t(m)].outs[0].matmul)] = true;

  // Steps in node order: a product group runs at its last member's anchor.
  std::vector<int> group_at(nodes.size(), -1);
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    int at = -1;
    for (int m : groups[gi]) at = std::max(at, units[size_t(m)].anchor);
    group_at[size_t(at)] = int(gi);
  }
  std::vector<Step> steps;
  auto add_read = [&](Step& s, int32_t v) {
    if (is_value(g, v) && std::find(s.reads.begin(), s.reads.end(), v) == s.reads.end()) s.reads.push_back(v);
  };
  for (size_t i = 0; i < nodes.size(); ++i) {
    const int32_t n = nodes[i];
    const Node& nd = g.nodes[size_t(n)];
    if (group_at[i] >= 0) {
      const auto& gr = groups[size_t(group_at[i])];
      Step s;
      s.kind = Step::Kind::Matmul;
      s.node = n;
      const Unit& first = units[size_t(gr[0])];
      s.x = first.x, s.norm = first.norm, s.gate = first.gate, s.gated = first.gated;
      add_read(s, s.x);
      for (int m : gr) {
        for (const MatmulOut& o : units[size_t(m)].outs) {
          s.outs.push_back(o);
          if (o.residual >= 0) add_read(s, o.residual);
          if (s.gate == Op::Count) s.writes.push_back(o.value);
        }
      }
      if (s.gate != Op::Count) s.writes.push_back(s.gated);
      steps.push_back(std::move(s));
      continue;
    }
    if (nd.op == Op::MatMul) continue;  // runs with its group's anchor
    if (nd.op == Op::Attention) {
      Step s;
      s.kind = Step::Kind::Attention;
      s.node = n;
      if (auto it = rope_q.find(n); it != rope_q.end()) s.rope_q = it->second;
      if (auto it = rope_k.find(n); it != rope_k.end()) s.rope_k = it->second;
      add_read(s, s.rope_q >= 0 ? P.node(s.rope_q).inputs[0] : nd.inputs[0]);
      if (nd.attrs.i("write", 1)) {
        add_read(s, s.rope_k >= 0 ? P.node(s.rope_k).inputs[0] : nd.inputs[1]);
        add_read(s, nd.inputs[2]);
      }
      s.writes.push_back(n);
      steps.push_back(std::move(s));
      continue;
    }
    if (P.covered[size_t(n)]) continue;
    Step s;
    s.node = n;
    for (int32_t in : nd.inputs) add_read(s, in);
    s.writes.push_back(n);
    steps.push_back(std::move(s));
  }
  return steps;
}

}  // namespace elm::cuda
