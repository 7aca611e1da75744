// Graph::validate: the shape rules of ops.def, enforced for every node of an untrusted graph.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "graph/graph.h"

namespace elm {

namespace {

constexpr int64_t kMaxCols = int64_t(1) << 24;

struct Checker {
  const Graph& g;
  const std::map<std::string, std::vector<int64_t>>& weights;
  size_t id = 0;

  template <class... A>
  [[noreturn]] void bad(A&&... a) const {
    const Node& n = g.nodes[id];
    fail("graph node ", id, " (", op_name(n.op), n.name.empty() ? "" : " '", n.name, n.name.empty() ? "" : "'",
         "): ", std::forward<A>(a)...);
  }
  template <class... A>
  void check(bool ok, A&&... a) const {
    if (!ok) bad(std::forward<A>(a)...);
  }

  const Node& in(size_t k) const { return g.nodes[size_t(g.nodes[id].inputs[k])]; }
  bool present(size_t k) const { return k < g.nodes[id].inputs.size() && g.nodes[id].inputs[k] >= 0; }
  bool is_activation(const Node& n) const { return n.rows == kRowsT || n.rows == kRowsOut; }

  void arity(size_t lo, size_t hi) const {
    size_t n = g.nodes[id].inputs.size();
    check(n >= lo && n <= hi, "takes ", lo, lo == hi ? "" : cat("..", hi), " inputs, has ", n);
  }
  void require(size_t k) const { check(present(k), "input ", k, " is required"); }
  void activation(size_t k) const { check(is_activation(in(k)), "input ", k, " must be an activation"); }
  // b is either the same shape as a or one broadcast row of a's width.
  void broadcastable(const Node& a, const Node& b) const {
    check(b.cols == a.cols && (b.rows == a.rows || b.rows == 1), "operand shapes [", a.rows, ", ", a.cols, "] and [",
          b.rows, ", ", b.cols, "] do not match");
  }

  // The attributes of the state this node names, which must be of `kind`.
  const Attrs& state_of(const char* kind) const {
    const int64_t s = g.nodes[id].attrs.i("state", -1);
    check(s >= 0 && s < int64_t(g.states.size()) && g.states[size_t(s)].kind == kind, "state ", s, " is not a ",
          kind, " state");
    return g.states[size_t(s)].attrs;
  }

  void run() {
    const Node& n = g.nodes[id];
    check(n.cols > 0 && n.cols <= kMaxCols, "column count ", n.cols, " out of range");
    for (int32_t i : n.inputs) check(i >= -1 && i < int32_t(id), "input ", i, " is not an earlier node");
    const Attrs& a = n.attrs;
    switch (n.op) {
      case Op::Weight: {
        arity(0, 0);
        auto it = weights.find(n.name);
        check(it != weights.end(), "no tensor named '", n.name, "' in the weights");
        const auto& s = it->second;
        check(!s.empty() && s.size() <= 2, "weight tensors must be 1-D or 2-D");
        int64_t rows = s.size() == 2 ? s[0] : 1, cols = s.back();
        check(n.rows == rows && n.cols == cols, "declared [", n.rows, ", ", n.cols, "] but the tensor is [", rows, ", ",
              cols, "]");
        return;
      }
      case Op::TokenIds:
      case Op::Positions:
        arity(0, 0);
        check(n.rows == kRowsT && n.cols == 1, "must be [T, 1]");
        return;
      case Op::Embed:
        arity(2, 2), require(0), require(1);
        check(!is_activation(in(0)) && in(0).op == Op::Weight, "table must be a weight");
        check(in(1).op == Op::TokenIds, "ids must be the step's token ids");
        check(n.rows == kRowsT && n.cols == in(0).cols, "output must be [T, ", in(0).cols, "]");
        return;
      case Op::MatMul:
        arity(2, 3), require(0), require(1), activation(0);
        check(in(1).op == Op::Weight, "w must be a weight");
        check(in(1).cols == in(0).cols, "x has ", in(0).cols, " columns but w has ", in(1).cols);
        check(n.rows == in(0).rows && n.cols == in(1).rows, "output must be [x.rows, ", in(1).rows, "]");
        if (present(2)) check(in(2).rows == 1 && in(2).cols == n.cols, "bias must be [1, ", n.cols, "]");
        return;
      case Op::RmsNorm: {
        arity(1, 2), require(0), activation(0);
        int64_t group = a.i("group", n.cols);
        check(group > 0 && n.cols % group == 0, "group ", group, " does not divide ", n.cols);
        check(a.f("eps", -1) >= 0, "eps must be given and non-negative");
        if (present(1)) check(in(1).rows == 1 && in(1).cols == group, "weight must be [1, ", group, "]");
        check(n.rows == in(0).rows && n.cols == in(0).cols, "output shape must equal input shape");
        return;
      }
      case Op::Add:
      case Op::Mul:
        arity(2, 2), require(0), require(1), activation(0);
        broadcastable(in(0), in(1));
        check(n.rows == in(0).rows && n.cols == in(0).cols, "output shape must equal input shape");
        return;
      case Op::Scale:
      case Op::Silu:
      case Op::Gelu:
      case Op::GeluTanh:
      case Op::Sigmoid:
      case Op::Softplus:
      case Op::Tanh:
      case Op::SoftCap:
        arity(1, 1), require(0), activation(0);
        if (n.op == Op::Scale) check(a.has("scale"), "missing attribute 'scale'");
        if (n.op == Op::SoftCap) check(a.f("cap") > 0, "cap must be positive");
        check(n.rows == in(0).rows && n.cols == in(0).cols, "output shape must equal input shape");
        return;
      case Op::Slice: {
        arity(1, 1), require(0), activation(0);
        int64_t start = a.i("start", -1), len = a.i("len", -1);
        check(start >= 0 && len > 0 && start + len <= in(0).cols, "slice [", start, ", +", len, ") outside ",
              in(0).cols, " columns");
        check(n.rows == in(0).rows && n.cols == len, "output must be [x.rows, ", len, "]");
        return;
      }
      case Op::Concat: {
        arity(1, 64);
        int64_t total = 0;
        for (size_t k = 0; k < n.inputs.size(); ++k) {
          require(k), activation(k);
          check(in(k).rows == in(0).rows, "inputs must have the same rows");
          total += in(k).cols;
        }
        check(n.rows == in(0).rows && n.cols == total, "output must be [rows, ", total, "]");
        return;
      }
      case Op::SliceGroups: {
        arity(1, 1), require(0), activation(0);
        const int64_t group = a.i("group", 0), start = a.i("start", -1), len = a.i("len", -1);
        check(group > 0 && in(0).cols % group == 0, "group ", group, " does not divide ", in(0).cols, " columns");
        check(start >= 0 && len > 0 && start + len <= group, "slice [", start, ", +", len, ") outside a group of ",
              group);
        check(n.rows == in(0).rows && n.cols == in(0).cols / group * len, "output must be [x.rows, ",
              in(0).cols / group * len, "]");
        return;
      }
      case Op::RmsRescale:
        arity(2, 2), require(0), require(1), activation(0), activation(1);
        check(in(1).rows == in(0).rows, "x and ref rows differ");
        check(a.f("floor", -1) >= 0, "floor must be given and non-negative");
        check(n.rows == in(0).rows && n.cols == in(0).cols, "output shape must equal input shape");
        return;
      case Op::GaussianTopK:
        arity(1, 1), require(0), activation(0);
        check(a.has("std_mult"), "missing attribute 'std_mult'");
        check(n.rows == in(0).rows && n.cols == in(0).cols, "output shape must equal input shape");
        return;
      case Op::StreamMix: {
        arity(2, 2), require(0), require(1), activation(0);
        const int64_t streams = a.i("streams", 0);
        check(streams > 0 && in(0).cols % streams == 0, "streams ", streams, " does not divide ", in(0).cols,
              " columns");
        check(in(1).rows == in(0).rows || in(1).rows == 1, "coefs must have x's rows or one broadcast row");
        check(in(1).cols % streams == 0, "coefs width ", in(1).cols, " is not a multiple of streams ", streams);
        check(n.rows == in(0).rows && n.cols == in(1).cols / streams * (in(0).cols / streams),
              "output must be [x.rows, out_streams * stream width]");
        return;
      }
      case Op::CausalConv1d: {
        arity(2, 2), require(0), require(1), activation(0);
        check(in(0).rows == kRowsT, "x must have one row per token");
        check(in(1).op == Op::Weight && in(1).rows == in(0).cols, "w must be a weight [channels, kernel]");
        const Attrs& sa = state_of("conv");
        check(sa.i("channels") == in(0).cols && sa.i("kernel") == in(1).cols, "conv state shape does not match");
        check(n.rows == kRowsT && n.cols == in(0).cols, "output shape must equal input shape");
        return;
      }
      case Op::GatedDeltaRule: {
        arity(5, 5);
        for (size_t k = 0; k < 5; ++k) require(k), activation(k), check(in(k).rows == kRowsT, "inputs must be [T, .]");
        const int64_t hk = a.i("k_heads"), hv = a.i("v_heads"), dk = a.i("head_dim"), dv = a.i("v_head_dim", dk);
        check(hk > 0 && hv > 0 && hv % hk == 0, "v_heads ", hv, " must be a multiple of k_heads ", hk);
        check(dk > 0 && dv > 0, "head dims must be positive");
        check(in(0).cols == hk * dk && in(1).cols == hk * dk, "q and k must have k_heads * head_dim columns");
        check(in(2).cols == hv * dv, "v must have v_heads * v_head_dim columns");
        check(in(3).cols == hv && in(4).cols == hv, "g and beta must have one column per value head");
        check(a.has("scale"), "missing attribute 'scale'");
        const Attrs& sa = state_of("delta");
        check(sa.i("heads") == hv && sa.i("k_head_dim") == dk && sa.i("v_head_dim") == dv,
              "delta state shape does not match the heads");
        check(n.rows == kRowsT && n.cols == hv * dv, "output must be [T, v_heads * v_head_dim]");
        return;
      }
      case Op::OutputRows:
        arity(1, 1), require(0);
        check(in(0).rows == kRowsT && n.rows == kRowsOut && n.cols == in(0).cols, "must map [T, C] to [Out, C]");
        return;
      case Op::Rope: {
        arity(3, 3), require(0), require(1), require(2), activation(0);
        check(in(1).op == Op::Positions, "input 1 must be the positions");
        int64_t d = a.i("head_dim", 0);
        check(d > 0 && in(0).cols % d == 0, "head_dim ", d, " does not divide ", in(0).cols);
        check(in(2).rows == 1 && 2 * in(2).cols <= d, "inv_freq must be [1, F] with 2F <= head_dim");
        check(n.rows == in(0).rows && n.cols == in(0).cols, "output shape must equal input shape");
        return;
      }
      case Op::Attention: {
        arity(1, 3), require(0), activation(0);
        int64_t h = a.i("heads"), kvh = a.i("kv_heads"), d = a.i("head_dim"), dv = a.i("v_head_dim", d);
        check(h > 0 && kvh > 0 && h % kvh == 0, "heads ", h, " must be a multiple of kv_heads ", kvh);
        check(d > 0 && dv > 0 && in(0).cols == h * d, "q must have heads * head_dim columns");
        check(n.rows == in(0).rows && n.cols == h * dv, "output must be [T, heads * v_head_dim]");
        int64_t s = a.i("state", -1);
        check(s >= 0 && s < int64_t(g.states.size()) && g.states[size_t(s)].kind == "kv", "state ", s,
              " is not a kv state");
        const Attrs& sa = g.states[size_t(s)].attrs;
        check(sa.i("kv_heads") == kvh && sa.i("head_dim") == d && sa.i("v_head_dim", d) == dv,
              "kv state shape does not match the attention's heads");
        check(a.i("window", 0) >= 0 && a.f("softcap", 0) >= 0, "window and softcap must be non-negative");
        if (a.i("write", 1)) {
          require(1), require(2), activation(1), activation(2);
          check(in(1).cols == kvh * d && in(2).cols == kvh * dv, "k/v widths do not match kv_heads");
          check(in(1).rows == in(0).rows && in(2).rows == in(0).rows, "q, k, v rows differ");
        } else {
          check(!present(1) && !present(2), "a reading-only attention takes no k, v");
        }
        return;
      }
      case Op::Count: break;
    }
    bad("unknown op");
  }
};

}  // namespace

void Graph::validate(const std::map<std::string, std::vector<int64_t>>& weight_shapes) const {
  ELM_CHECK(!nodes.empty(), "graph has no nodes");
  ELM_CHECK(nodes.size() < (size_t(1) << 24), "graph has too many nodes");
  // Recurrent states are allocated per sequence at load: bound each dim and the whole block (1 GiB).
  constexpr int64_t kMaxStateDim = int64_t(1) << 20, kMaxStateFloats = int64_t(1) << 28;
  auto dim_ok = [&](const Attrs& a, const char* k) { return a.i(k) > 0 && a.i(k) <= kMaxStateDim; };
  for (size_t s = 0; s < states.size(); ++s) {
    const StateDecl& d = states[s];
    if (d.kind == "kv") {
      ELM_CHECK(d.attrs.i("kv_heads") > 0 && d.attrs.i("head_dim") > 0 && d.attrs.i("v_head_dim", 1) > 0 &&
                    d.attrs.i("window") >= 0,
                "graph state ", s, ": bad kv cache shape");
    } else if (d.kind == "conv") {
      ELM_CHECK(dim_ok(d.attrs, "channels") && dim_ok(d.attrs, "kernel") &&
                    (d.attrs.i("kernel") - 1) * d.attrs.i("channels") <= kMaxStateFloats,
                "graph state ", s, ": bad conv state shape");
    } else if (d.kind == "delta") {
      ELM_CHECK(dim_ok(d.attrs, "heads") && dim_ok(d.attrs, "k_head_dim") && dim_ok(d.attrs, "v_head_dim") &&
                    d.attrs.i("heads") * d.attrs.i("k_head_dim") * d.attrs.i("v_head_dim") <= kMaxStateFloats,
                "graph state ", s, ": bad delta state shape");
    } else {
      fail("graph state ", s, ": unknown kind '", d.kind, "'");
    }
  }
  Checker c{*this, weight_shapes};
  for (c.id = 0; c.id < nodes.size(); ++c.id) c.run();
  // A recurrent state advances once per token: exactly one node may own it.
  std::vector<int> owners(states.size(), 0);
  for (const Node& n : nodes)
    if (n.op == Op::CausalConv1d || n.op == Op::GatedDeltaRule) ++owners[size_t(n.attrs.i("state"))];
  for (size_t s = 0; s < states.size(); ++s)
    ELM_CHECK(states[s].kind == "kv" || owners[s] == 1, "graph state ", s, " (", states[s].kind, ") is used by ",
              owners[s], " nodes, must be exactly one");
  ELM_CHECK(output >= 0 && size_t(output) < nodes.size(), "graph output ", output, " is not a node");
  ELM_CHECK(nodes[size_t(output)].rows == kRowsOut, "graph output must have one row per requested token");
}

}  // namespace elm
