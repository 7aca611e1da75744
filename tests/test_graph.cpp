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

}  // namespace

TEST(Graph, JsonRoundTripKeepsLogitsIdentical) {
  ELM_REQUIRE_SHARED("fixtures/tiny/gemma3");
  auto m = Model::load(shared("fixtures/tiny/gemma3"));
  auto copy = std::make_shared<Model>();
  copy->weights = m->weights;
  copy->info = m->info;
  const nlohmann::json j = m->graph.to_json();
  copy->graph = Graph::from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(copy->graph.to_json(), j);
  copy->graph.validate(copy->weights.shapes());
  std::vector<int32_t> ids = {1, 17, 250, 3, 99, 4};
  Session a(m, {}), b(copy, {});
  std::vector<float> la = a.feed_all(0, ids), lb = b.feed_all(0, ids);
  EXPECT_EQ(la, lb);
}

TEST(Graph, ValidationRejectsMalformedNodes) {
  ELM_REQUIRE_SHARED("fixtures/tiny/llama");
  auto m = Model::load(shared("fixtures/tiny/llama"));
  const Graph good = m->graph;
  auto find = [&](Op op) {
    for (size_t i = 0; i < good.nodes.size(); ++i)
      if (good.nodes[i].op == op) return i;
    return size_t(0);
  };
  struct Case {
    const char* what;
    std::function<void(Graph&)> damage;
    const char* message;
  };
  const Case cases[] = {
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
  };
  for (const Case& c : cases) {
    Graph g = good;
    c.damage(g);
    const std::string err = validation_error(g, m->weights);
    EXPECT_NE(err.find(c.message), std::string::npos) << c.what << ": '" << err << "'";
  }
  EXPECT_EQ(validation_error(good, m->weights), "");
}

TEST(Graph, FromJsonRejectsGarbage) {
  for (const char* text : {R"({})", R"({"nodes": 3, "output": 0})", R"({"nodes": [{"op": "warp"}], "output": 0})",
                           R"({"nodes": [{"op": "embed", "in": "x", "rows": -1, "cols": 4}], "output": 0})",
                           R"({"nodes": [{"op": "scale", "in": [], "rows": -1, "cols": 4, "attrs": {"scale": {}}}],
                               "output": 0})"}) {
    EXPECT_THROW(Graph::from_json(nlohmann::json::parse(text)), Error) << text;
  }
}
