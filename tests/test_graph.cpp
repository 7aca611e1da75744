// The graph IR: validation rejects malformed graphs with a message naming the node, and the JSON form
// round-trips to a graph that computes the same logits.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "runtime/session.h"
#include "util.h"

using namespace elm;
using namespace elm::test;

namespace {

std::string validation_error(const Graph& g, const WeightStore& w) {
  try {
    g.validate(w.shapes());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

size_t first_of(const Graph& g, Op op) {
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].op == op) return i;
  return 0;
}

// One way to damage a valid graph, and the words validation must answer it with.
struct Damage {
  const char* what;
  std::function<void(Graph&)> damage;
  const char* message;
};

void expect_each_rejected(const Model& m, const std::vector<Damage>& cases) {
  for (const Damage& c : cases) {
    Graph g = m.graph;
    c.damage(g);
    const std::string err = validation_error(g, m.weights);
    EXPECT_NE(err.find(c.message), std::string::npos) << c.what << ": '" << err << "'";
  }
  EXPECT_EQ(validation_error(m.graph, m.weights), "");
}

}  // namespace

TEST(Graph, JsonRoundTripKeepsLogitsIdentical) {
  for (const char* fixture : {"fixtures/tiny/gemma3", "fixtures/tiny/gemma3n", "fixtures/tiny/gemma4",
                              "fixtures/tiny/qwen3_5"}) {
    ELM_REQUIRE_SHARED(fixture);
    auto m = Model::load(shared(fixture));
    auto copy = std::make_shared<Model>();
    copy->weights = m->weights;
    copy->info = m->info;
    const nlohmann::json j = m->graph.to_json();
    copy->graph = Graph::from_json(nlohmann::json::parse(j.dump()));
    EXPECT_EQ(copy->graph.to_json(), j) << fixture;
    copy->graph.validate(copy->weights.shapes());
    std::vector<int32_t> ids = {1, 17, 250, 3, 99, 4};
    Session a(m, {}), b(copy, {});
    std::vector<float> la = a.feed_all(0, ids), lb = b.feed_all(0, ids);
    EXPECT_EQ(la, lb) << fixture;
  }
}

TEST(Graph, ValidationRejectsMalformedNodes) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  auto m = Model::load(shared("fixtures/tiny/llama"));
  auto find = [&](Op op) { return first_of(m->graph, op); };
  expect_each_rejected(*m, {
      {"forward reference", [&](Graph& g) { g.nodes[find(Op::MatMul)].inputs[0] = int32_t(g.nodes.size() - 1); },
       "not an earlier node"},
      {"matmul width", [&](Graph& g) { g.nodes[find(Op::MatMul)].cols += 1; }, "output must be"},
      {"missing weight", [&](Graph& g) { g.nodes[find(Op::Weight)].name = "nope"; }, "no tensor named 'nope'"},
      {"arity", [&](Graph& g) { g.nodes[find(Op::Add)].inputs.pop_back(); }, "takes 2 inputs"},
      {"bad state", [&](Graph& g) { g.nodes[find(Op::Attention)].attrs.set("state", int64_t(99)); }, "not a kv state"},
      {"heads", [&](Graph& g) { g.nodes[find(Op::Attention)].attrs.set("kv_heads", int64_t(3)); }, "multiple of kv_heads"},
      {"slice range", [&](Graph& g) {
         Node n;
         n.op = Op::Slice;
         n.inputs = {int32_t(find(Op::Embed))};
         n.cols = 8;
         n.attrs.set("start", int64_t(60)).set("len", int64_t(8));
         g.nodes.insert(g.nodes.begin() + long(find(Op::Embed)) + 1, n);
       },
       "outside"},
      {"output", [&](Graph& g) { g.output = int32_t(g.nodes.size()); }, "graph output"},
      {"absurd columns", [&](Graph& g) { g.nodes[find(Op::RmsNorm)].cols = int64_t(1) << 40; }, "out of range"},
  });
}

TEST(Graph, FromJsonRejectsGarbage) {
  for (const char* text : {R"({})", R"({"nodes": 3, "output": 0})", R"({"nodes": [{"op": "warp"}], "output": 0})",
                           R"({"nodes": [{"op": "embed", "in": "x", "rows": -1, "cols": 4}], "output": 0})",
                           R"({"nodes": [{"op": "scale", "in": [], "rows": -1, "cols": 4, "attrs": {"scale": {}}}],
                               "output": 0})"}) {
    EXPECT_THROW(Graph::from_json(nlohmann::json::parse(text)), Error) << text;
  }
}

TEST(Graph, ValidationRejectsMalformedRecurrentNodes) {
  ELM_REQUIRE_SHARED("fixtures/tiny/qwen3_5");
  auto m = Model::load(shared("fixtures/tiny/qwen3_5"));
  auto find = [&](Op op) { return first_of(m->graph, op); };
  auto state_of = [&](Graph& g, Op op) -> StateDecl& { return g.states[size_t(g.nodes[find(op)].attrs.i("state"))]; };
  const int64_t kv_state = m->graph.nodes[find(Op::Attention)].attrs.i("state");
  expect_each_rejected(*m, {
      {"conv on a kv state", [&](Graph& g) { g.nodes[find(Op::CausalConv1d)].attrs.set("state", kv_state); },
       "not a conv state"},
      {"delta state shared",
       [&](Graph& g) {
         const int64_t s = g.nodes[find(Op::GatedDeltaRule)].attrs.i("state");
         for (Node& n : g.nodes)
           if (n.op == Op::GatedDeltaRule) n.attrs.set("state", s);
       },
       "must be exactly one"},
      {"delta heads", [&](Graph& g) { g.nodes[find(Op::GatedDeltaRule)].attrs.set("k_heads", int64_t(3)); },
       "multiple of k_heads"},
      {"delta state shape", [&](Graph& g) { state_of(g, Op::GatedDeltaRule).attrs.set("v_head_dim", int64_t(5)); },
       "delta state shape"},
      {"unknown state kind", [&](Graph& g) { g.states[0].kind = "mystery"; }, "unknown kind"},
      {"conv kernel", [&](Graph& g) { state_of(g, Op::CausalConv1d).attrs.set("kernel", int64_t(9)); },
       "conv state shape"},
      {"slice groups", [&](Graph& g) { g.nodes[find(Op::SliceGroups)].attrs.set("start", int64_t(30)); },
       "outside a group"},
  });
}
