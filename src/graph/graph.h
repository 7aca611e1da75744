// The computation graph: what a model computes, as generic ops over named weight tensors.
//
// Builders (src/graph/builders/) turn a family's config into a Graph; the .elm file stores it; backends
// execute it. The runtime knows ops, never families.
//
// Conventions
// - Every activation is a row-major float matrix [rows, cols]. rows is symbolic: kRowsT (the tokens of
//   this step, T) or kRowsOut (the rows the caller asked logits for); cols is a fixed number. Per-head
//   structure (heads x head_dim inside cols) is carried by op attributes.
// - Nodes are in topological order: a node's inputs are earlier nodes.
// - Weight nodes name a tensor of the model's weight store; their rows/cols are the tensor's matrix
//   shape (a vector [n] is rows = 1, cols = n).
// - Stateful ops (attention, recurrences) name a state slot declared in Graph::states; the runtime
//   keeps one instance of every slot per sequence.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace elm {

constexpr int64_t kRowsT = -1;    // one row per token of the step
constexpr int64_t kRowsOut = -2;  // one row per token whose output (logits) was requested

enum class Op : uint16_t {
#define ELM_OP(name, str) name,
#include "graph/ops.def"
#undef ELM_OP
  Count
};

const char* op_name(Op op);
Op op_from_name(const std::string& name);  // throws elm::Error on unknown names

using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

class Attrs {
 public:
  Attrs& set(const std::string& k, int64_t v) { return put(k, v); }
  Attrs& set(const std::string& k, int v) { return put(k, int64_t(v)); }
  Attrs& set(const std::string& k, bool v) { return put(k, int64_t(v)); }
  Attrs& set(const std::string& k, double v) { return put(k, v); }
  Attrs& set(const std::string& k, const std::string& v) { return put(k, v); }
  Attrs& set(const std::string& k, const char* v) { return put(k, std::string(v)); }
  Attrs& set(const std::string& k, std::vector<int64_t> v) { return put(k, std::move(v)); }
  Attrs& set(const std::string& k, std::vector<double> v) { return put(k, std::move(v)); }

  bool has(const std::string& k) const { return m_.count(k) != 0; }
  // Typed getters: the default when absent; elm::Error when present with the wrong type.
  int64_t i(const std::string& k, int64_t def = 0) const;
  double f(const std::string& k, double def = 0) const;  // ints convert
  std::string s(const std::string& k, const std::string& def = "") const;
  std::vector<int64_t> ints(const std::string& k) const;
  std::vector<double> floats(const std::string& k) const;
  // Required variants: elm::Error naming the attribute when absent.
  int64_t req_i(const std::string& k) const;
  double req_f(const std::string& k) const;

  const std::map<std::string, AttrValue>& all() const { return m_; }

 private:
  Attrs& put(const std::string& k, AttrValue v) {
    m_[k] = std::move(v);
    return *this;
  }
  std::map<std::string, AttrValue> m_;
};

struct Node {
  Op op = Op::Weight;
  std::vector<int32_t> inputs;  // node ids; -1 marks an absent optional input
  int64_t rows = kRowsT;
  int64_t cols = 0;
  Attrs attrs;
  std::string name;  // weights: the tensor name; others: a readable label ("l3.attn.q")
};

// Per-sequence state the runtime keeps between steps.
//   kind "kv":    attention cache. attrs: kv_heads, head_dim, v_head_dim, window (0 = full context)
//   kind "conv":  the last kernel - 1 inputs of a causal conv1d. attrs: channels, kernel
//   kind "delta": gated delta-rule matrices, one [k_head_dim, v_head_dim] per head. attrs: heads,
//                 k_head_dim, v_head_dim
// Recurrent states (conv, delta) are written by exactly one node.
struct StateDecl {
  std::string kind;
  Attrs attrs;
};

struct Graph {
  std::vector<Node> nodes;
  std::vector<StateDecl> states;
  int32_t output = -1;  // the logits node, rows kRowsOut, cols vocab

  // Checks structure and every node's shape: arities, input ranges, topological order, column
  // counts, attributes, state references, and that weight nodes match `weight_shapes` (tensor name ->
  // shape). Throws elm::Error describing the first problem. Graphs from files are untrusted: after
  // validate() succeeds, backends may rely on every shape relation documented in ops.def.
  void validate(const std::map<std::string, std::vector<int64_t>>& weight_shapes) const;

  nlohmann::json to_json() const;
  static Graph from_json(const nlohmann::json& j);  // validates structure (not weights)
};

}  // namespace elm
