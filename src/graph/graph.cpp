#include "graph/graph.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace elm {

namespace {
const char* const kOpNames[] = {
#define ELM_OP(name, str) str,
#include "graph/ops.def"
#undef ELM_OP
};
}  // namespace

const char* op_name(Op op) {
  auto i = size_t(op);
  return i < size_t(Op::Count) ? kOpNames[i] : "?";
}

Op op_from_name(const std::string& name) {
  for (size_t i = 0; i < size_t(Op::Count); ++i)
    if (name == kOpNames[i]) return Op(i);
  fail("unknown op '", name, "' in graph (this model needs a newer elm)");
}

// ---- Attrs ----

int64_t Attrs::i(const std::string& k, int64_t def) const {
  auto it = m_.find(k);
  if (it == m_.end()) return def;
  if (auto* v = std::get_if<int64_t>(&it->second)) return *v;
  fail("attribute '", k, "' must be an integer");
}

double Attrs::f(const std::string& k, double def) const {
  auto it = m_.find(k);
  if (it == m_.end()) return def;
  if (auto* v = std::get_if<double>(&it->second)) return *v;
  if (auto* v = std::get_if<int64_t>(&it->second)) return double(*v);
  fail("attribute '", k, "' must be a number");
}

std::string Attrs::s(const std::string& k, const std::string& def) const {
  auto it = m_.find(k);
  if (it == m_.end()) return def;
  if (auto* v = std::get_if<std::string>(&it->second)) return *v;
  fail("attribute '", k, "' must be a string");
}

std::vector<int64_t> Attrs::ints(const std::string& k) const {
  auto it = m_.find(k);
  if (it == m_.end()) return {};
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  fail("attribute '", k, "' must be a list of integers");
}

std::vector<double> Attrs::floats(const std::string& k) const {
  auto it = m_.find(k);
  if (it == m_.end()) return {};
  if (auto* v = std::get_if<std::vector<double>>(&it->second)) return *v;
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return {v->begin(), v->end()};
  fail("attribute '", k, "' must be a list of numbers");
}

int64_t Attrs::req_i(const std::string& k) const {
  ELM_CHECK(has(k), "missing attribute '", k, "'");
  return i(k);
}

double Attrs::req_f(const std::string& k) const {
  ELM_CHECK(has(k), "missing attribute '", k, "'");
  return f(k);
}

// ---- JSON ----

namespace {
nlohmann::json attrs_to_json(const Attrs& a) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& kv : a.all()) {
    const auto& key = kv.first;  // named: clang 14 cannot capture a structured binding
    std::visit([&](const auto& x) { j[key] = x; }, kv.second);
  }
  return j;
}

Attrs attrs_from_json(const nlohmann::json& j) {
  ELM_CHECK(j.is_object(), "graph: node attributes must be an object");
  Attrs a;
  for (const auto& [k, v] : j.items()) {
    if (v.is_number_integer()) {
      a.set(k, v.get<int64_t>());
    } else if (v.is_number_float()) {
      a.set(k, v.get<double>());
    } else if (v.is_boolean()) {
      a.set(k, v.get<bool>());
    } else if (v.is_string()) {
      a.set(k, v.get<std::string>());
    } else if (v.is_array()) {
      bool all_int = true;
      for (const auto& e : v) {
        ELM_CHECK(e.is_number(), "graph: attribute '", k, "' must hold numbers");
        all_int = all_int && e.is_number_integer();
      }
      if (all_int) a.set(k, v.get<std::vector<int64_t>>());
      else a.set(k, v.get<std::vector<double>>());
    } else {
      fail("graph: attribute '", k, "' has an unsupported type");
    }
  }
  return a;
}
}  // namespace

nlohmann::json Graph::to_json() const {
  nlohmann::json nodes_j = nlohmann::json::array();
  for (const Node& n : nodes) {
    nlohmann::json nj = {{"op", op_name(n.op)}, {"in", n.inputs}, {"rows", n.rows}, {"cols", n.cols}};
    if (!n.name.empty()) nj["name"] = n.name;
    if (!n.attrs.all().empty()) nj["attrs"] = attrs_to_json(n.attrs);
    nodes_j.push_back(std::move(nj));
  }
  nlohmann::json states_j = nlohmann::json::array();
  for (const StateDecl& s : states) states_j.push_back({{"kind", s.kind}, {"attrs", attrs_to_json(s.attrs)}});
  return {{"nodes", nodes_j}, {"states", states_j}, {"output", output}};
}

Graph Graph::from_json(const nlohmann::json& j) {
  try {
    Graph g;
    ELM_CHECK(j.is_object() && j.contains("nodes") && j["nodes"].is_array(), "graph: missing node list");
    for (const auto& nj : j["nodes"]) {
      ELM_CHECK(nj.is_object(), "graph: node must be an object");
      Node n;
      n.op = op_from_name(nj.at("op").get<std::string>());
      n.inputs = nj.at("in").get<std::vector<int32_t>>();
      n.rows = nj.at("rows").get<int64_t>();
      n.cols = nj.at("cols").get<int64_t>();
      if (nj.contains("name")) n.name = nj["name"].get<std::string>();
      if (nj.contains("attrs")) n.attrs = attrs_from_json(nj["attrs"]);
      g.nodes.push_back(std::move(n));
    }
    if (j.contains("states")) {
      ELM_CHECK(j["states"].is_array(), "graph: states must be a list");
      for (const auto& sj : j["states"]) {
        StateDecl s;
        s.kind = sj.at("kind").get<std::string>();
        if (sj.contains("attrs")) s.attrs = attrs_from_json(sj["attrs"]);
        g.states.push_back(std::move(s));
      }
    }
    g.output = j.at("output").get<int32_t>();
    return g;
  } catch (const nlohmann::json::exception& e) {
    fail("graph: malformed description: ", e.what());
  }
}

}  // namespace elm
