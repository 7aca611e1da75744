// The Jinja interpreter's syntax tree, lexer and parser. Expressions evaluate to Values; nodes
// render text. Everything runs against a Context (scopes, output budget, loop control).
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "chat/jinja_value.h"

namespace elm::jinja {

struct Context;

struct Expr {
  int line = 0;
  virtual ~Expr() = default;
  virtual Value eval(Context& c) const = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Node {
  int line = 0;
  virtual ~Node() = default;
  virtual void render(Context& c, std::string& out) const = 0;
};
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

// Lexer output: text and tags, with whitespace control (-, +, trim_blocks, lstrip_blocks) already
// applied to the text.
struct Token {
  enum class Kind { Text, Expr, Stmt } kind;
  std::string text;  // the literal text, or the inside of the tag
  int line;
};
std::vector<Token> lex_template(const std::string& src);

// Parses a whole template; throws elm::Error naming the line of a syntax error.
Body parse_template(const std::string& src);

struct Context {
  std::vector<std::unordered_map<std::string, Value>> scopes;  // innermost last
  enum class Flow { Normal, Break, Continue } flow = Flow::Normal;
  size_t output_budget = size_t(64) << 20;  // a template that writes more is hostile
  int depth = 0;                            // macro call depth

  const Value* lookup(const std::string& name) const;
  void set(const std::string& name, Value v) { scopes.back()[name] = std::move(v); }
  void render_body(const Body& body, std::string& out);
};

[[noreturn]] void error_at(int line, const std::string& what);

// Built-ins (jinja_builtins.cpp).
Value apply_filter(Context& c, const std::string& name, const Value& v, const Args& args, int line);
bool apply_test(Context& c, const std::string& name, const Value& v, const Args& args, int line);
Value get_attr(const Value& obj, const std::string& name, int line);  // dict key, or a bound method
Value get_item(const Value& obj, const Value& key, int line);
Value call_value(Context& c, const Value& f, const Args& args, int line);
void add_globals(std::unordered_map<std::string, Value>& scope);
std::vector<Value> iterate(const Value& v, int line);  // list items, dict keys, string characters

}  // namespace elm::jinja
