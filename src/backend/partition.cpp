#include "backend/partition.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "core/error.h"

namespace elm {

bool is_source_op(Op op) { return op == Op::Weight || op == Op::TokenIds || op == Op::Positions; }

PartitionPlan partition(const Graph& g, const WeightStore& w, const std::vector<Backend*>& backends) {
  ELM_CHECK(!backends.empty(), "no backends to partition onto");
  const int fallback = int(backends.size()) - 1;
  std::vector<int> assign(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (is_source_op(g.nodes[i].op)) continue;
    assign[i] = fallback;
    for (size_t b = 0; b < backends.size(); ++b) {
      if (backends[b]->supports(g, w, int32_t(i))) {
        assign[i] = int(b);
        break;
      }
    }
  }
  // State groups must agree: the most fallback-ward choice wins for the whole group.
  std::map<int64_t, int> group_backend;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].op != Op::Attention) continue;
    int64_t s = g.nodes[i].attrs.i("state");
    auto [it, fresh] = group_backend.emplace(s, assign[i]);
    if (!fresh && it->second != assign[i]) it->second = fallback;
  }
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op == Op::Attention) assign[i] = group_backend[g.nodes[i].attrs.i("state")];
  return plan_from_assignment(g, std::move(assign), backends.size());
}

PartitionPlan plan_from_assignment(const Graph& g, std::vector<int> node_backend, size_t n_backends) {
  ELM_CHECK(node_backend.size() == g.nodes.size(), "partition plan covers ", node_backend.size(), " nodes, graph has ",
            g.nodes.size());
  PartitionPlan p;
  p.node_backend = std::move(node_backend);
  std::vector<int> seg_of(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    int b = p.node_backend[i];
    if (is_source_op(g.nodes[i].op)) {
      ELM_CHECK(b == -1, "partition plan assigns source node ", i, " to a backend");
      continue;
    }
    ELM_CHECK(b >= 0 && size_t(b) < n_backends, "partition plan assigns node ", i, " to unknown backend ", b);
    if (p.segments.empty() || p.segments.back().backend != b) p.segments.push_back({b, {}, {}, {}});
    p.segments.back().nodes.push_back(int32_t(i));
    seg_of[i] = int(p.segments.size() - 1);
  }
  // Boundary values: a compute input produced by another segment.
  std::vector<std::vector<int>> readers(g.nodes.size());
  for (size_t s = 0; s < p.segments.size(); ++s) {
    for (int32_t n : p.segments[s].nodes) {
      for (int32_t in : g.nodes[size_t(n)].inputs) {
        if (in < 0 || seg_of[size_t(in)] < 0 || seg_of[size_t(in)] == int(s)) continue;
        auto& ins = p.segments[s].inputs;
        if (std::find(ins.begin(), ins.end(), in) == ins.end()) ins.push_back(in);
        readers[size_t(in)].push_back(int(s));
      }
    }
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (seg_of[i] < 0) continue;
    if (!readers[i].empty() || int32_t(i) == g.output) p.segments[size_t(seg_of[i])].outputs.push_back(int32_t(i));
  }
  return p;
}

std::string PartitionPlan::summary(const Graph& g, const std::vector<std::string>& names) const {
  std::ostringstream os;
  for (size_t s = 0; s < segments.size(); ++s) {
    const auto& seg = segments[s];
    os << "segment " << s << ": " << names.at(size_t(seg.backend)) << ", " << seg.nodes.size() << " nodes (";
    os << op_name(g.nodes[size_t(seg.nodes.front())].op) << " .. " << op_name(g.nodes[size_t(seg.nodes.back())].op);
    os << "), " << seg.inputs.size() << " inputs, " << seg.outputs.size() << " outputs\n";
  }
  return os.str();
}

}  // namespace elm
