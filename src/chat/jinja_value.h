// Values of the Jinja interpreter: Python-like (None, bool, int, float, str, list, dict, callables)
// plus Jinja's Undefined. Lists and dicts are shared by reference, as in Python, so list.append and
// namespace attribute assignment are visible through every name that refers to them.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace elm::jinja {

struct Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, like a Python dict

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* get(size_t i, const char* name) const;  // positional i or keyword name, else null
};
using Function = std::function<Value(const Args&)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, Array, Object, Function };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<Array> a;
  std::shared_ptr<Object> o;
  std::shared_ptr<Function> fn;
  bool is_namespace = false;  // namespace(): the one object `set ns.attr = ...` may change

  Value() = default;
  static Value none() { Value v; v.kind = Kind::None; return v; }
  Value(bool x) : kind(Kind::Bool), b(x) {}
  Value(int64_t x) : kind(Kind::Int), i(x) {}
  Value(int x) : kind(Kind::Int), i(x) {}
  Value(double x) : kind(Kind::Float), f(x) {}
  Value(std::string x) : kind(Kind::String), s(std::move(x)) {}
  Value(const char* x) : kind(Kind::String), s(x) {}
  static Value array(Array x = {}) { Value v; v.kind = Kind::Array; v.a = std::make_shared<Array>(std::move(x)); return v; }
  static Value object(Object x = {}) { Value v; v.kind = Kind::Object; v.o = std::make_shared<Object>(std::move(x)); return v; }
  static Value function(Function x) { Value v; v.kind = Kind::Function; v.fn = std::make_shared<Function>(std::move(x)); return v; }
  static Value from_json(const nlohmann::ordered_json& j);

  bool undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_object() const { return kind == Kind::Object; }
  bool truthy() const;
  double as_double() const { return kind == Kind::Int ? double(i) : kind == Kind::Bool ? double(b) : f; }

  const Value* find(const std::string& key) const;  // dict lookup, null when absent
  void set(const std::string& key, Value v);         // dict insert or replace

  std::string str() const;   // Python str(): what {{ }} prints
  std::string repr() const;  // Python repr(): how values print inside lists and dicts
  // Python json.dumps(ensure_ascii=False) with an optional indent (< 0: none).
  std::string to_json(int indent = -1, bool sort_keys = false) const;
  nlohmann::ordered_json to_nlohmann() const;
};

bool equal(const Value& a, const Value& b);
// -1, 0, 1 for numbers and strings; Error for other kinds.
int compare(const Value& a, const Value& b);
std::string python_float(double d);  // Python's repr of a float: 1.0, 0.1, 1e-05

}  // namespace elm::jinja
