// The concrete expression and statement types of the Jinja tree (evaluated in jinja_eval.cpp).
#pragma once
#include "chat/jinja_ast.h"

namespace elm::jinja {

struct LiteralExpr : Expr {
  Value v;
  Value eval(Context&) const override { return v; }
};
struct NameExpr : Expr {
  std::string name;
  Value eval(Context& c) const override;
};
struct ListExpr : Expr {  // lists and tuples
  std::vector<ExprPtr> items;
  Value eval(Context& c) const override;
};
struct DictExpr : Expr {
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
  Value eval(Context& c) const override;
};
struct AttrExpr : Expr {
  ExprPtr obj;
  std::string name;
  Value eval(Context& c) const override;
};
struct IndexExpr : Expr {  // obj[index] or obj[index:stop:step]
  ExprPtr obj, index, stop, step;
  bool slice = false;
  Value eval(Context& c) const override;
};
struct CallExpr : Expr {
  ExprPtr callee;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  Value eval(Context& c) const override;
};
struct FilterExpr : Expr {
  ExprPtr obj;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  Value eval(Context& c) const override;
};
struct TestExpr : Expr {
  ExprPtr obj;
  std::string name;
  bool negate = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  Value eval(Context& c) const override;
};
struct UnaryExpr : Expr {
  std::string op;  // not, -, +
  ExprPtr e;
  Value eval(Context& c) const override;
};
struct BinaryExpr : Expr {
  std::string op;
  ExprPtr l, r;
  Value eval(Context& c) const override;
};
struct CondExpr : Expr {  // yes if cond else no
  ExprPtr cond, yes, no;
  Value eval(Context& c) const override;
};

struct TextNode : Node {
  std::string text;
  void render(Context& c, std::string& out) const override;
};
struct OutputNode : Node {  // {{ e }}, or {% do e %} with discard
  ExprPtr e;
  bool discard = false;
  void render(Context& c, std::string& out) const override;
};
struct IfNode : Node {
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body otherwise;
  void render(Context& c, std::string& out) const override;
};
struct ForNode : Node {
  std::vector<std::string> vars;
  ExprPtr iter, filter;
  Body body, otherwise;
  void render(Context& c, std::string& out) const override;
};
struct SetNode : Node {
  std::vector<std::string> names;  // several: tuple unpacking
  std::string attr;                // set ns.attr = ...
  ExprPtr value;
  void render(Context& c, std::string& out) const override;
};
struct SetBlockNode : Node {
  std::string name, attr;
  std::vector<std::string> filters;
  Body body;
  void render(Context& c, std::string& out) const override;
};
struct MacroNode : Node {
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;
  Body body;
  void render(Context& c, std::string& out) const override;
};
struct CallBlockNode : Node {  // {% call m(args) %}body{% endcall %}: the body is `caller()`
  ExprPtr call;
  Body body;
  void render(Context& c, std::string& out) const override;
};
struct FilterBlockNode : Node {  // {% filter name %}...{% endfilter %} (empty filter: plain body)
  std::string filter;
  Body body;
  void render(Context& c, std::string& out) const override;
};
struct LoopControlNode : Node {
  bool is_break = false;
  void render(Context& c, std::string& out) const override;
};

}  // namespace elm::jinja
