// Evaluation of the Jinja tree: expressions to Values, nodes to text.
#include <cmath>
#include <cstdint>

#include "chat/jinja_nodes.h"
#include "core/error.h"

namespace elm::jinja {

const Value* Context::lookup(const std::string& name) const {
  for (size_t k = scopes.size(); k-- > 0;) {
    const auto it = scopes[k].find(name);
    if (it != scopes[k].end()) return &it->second;
  }
  return nullptr;
}

void Context::render_body(const Body& body, std::string& out) {
  for (const NodePtr& n : body) {
    n->render(*this, out);
    if (flow != Flow::Normal) return;
    if (out.size() > output_budget) error_at(n->line, "the output is too large");
  }
}

namespace {
struct ScopeGuard {
  Context& c;
  explicit ScopeGuard(Context& x) : c(x) { c.scopes.emplace_back(); }
  ~ScopeGuard() { c.scopes.pop_back(); }
};

Args eval_args(Context& c, const std::vector<ExprPtr>& pos, const std::vector<std::pair<std::string, ExprPtr>>& kw) {
  Args a;
  for (const auto& e : pos) a.pos.push_back(e->eval(c));
  for (const auto& [k, e] : kw) a.kw.emplace_back(k, e->eval(c));
  return a;
}

bool contains(const Value& hay, const Value& needle, int line) {
  if (hay.is_string()) {
    if (!needle.is_string()) error_at(line, "'in <string>' needs a string on the left");
    return hay.s.find(needle.s) != std::string::npos;
  }
  if (hay.is_array()) {
    for (const Value& v : *hay.a)
      if (equal(v, needle)) return true;
    return false;
  }
  if (hay.is_object()) return needle.is_string() && hay.find(needle.s) != nullptr;
  if (hay.undefined() || hay.is_none()) return false;
  error_at(line, "'in' needs a string, list or dict on the right");
}

double floor_div(double a, double b) { return std::floor(a / b); }

// Python's printf-style '%' for the common conversions (%s, %d, %i, %f, %r, %%).
std::string percent_format(const std::string& fmt, const Value& args, int line) {
  std::vector<Value> vals = args.is_array() ? *args.a : std::vector<Value>{args};
  std::string out;
  size_t k = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) error_at(line, "incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    if (k >= vals.size()) error_at(line, "not enough arguments for format string");
    const Value& v = vals[k++];
    switch (fmt[i]) {
      case 's': out += v.str(); break;
      case 'r': out += v.repr(); break;
      case 'd':
      case 'i': out += std::to_string(v.kind == Value::Kind::Float ? int64_t(v.f) : v.i); break;
      case 'f': {
        char b[64];
        std::snprintf(b, sizeof b, "%f", v.as_double());
        out += b;
        break;
      }
      default: error_at(line, std::string("unsupported format %") + fmt[i]);
    }
  }
  return out;
}
}  // namespace

Value NameExpr::eval(Context& c) const {
  const Value* v = c.lookup(name);
  return v ? *v : Value();
}

Value ListExpr::eval(Context& c) const {
  Array a;
  a.reserve(items.size());
  for (const auto& e : items) a.push_back(e->eval(c));
  return Value::array(std::move(a));
}

Value DictExpr::eval(Context& c) const {
  Value d = Value::object();
  for (const auto& [k, v] : items) {
    const Value key = k->eval(c);
    d.set(key.str(), v->eval(c));
  }
  return d;
}

Value AttrExpr::eval(Context& c) const { return get_attr(obj->eval(c), name, line); }

Value IndexExpr::eval(Context& c) const {
  const Value o = obj->eval(c);
  if (!slice) return get_item(o, index->eval(c), line);
  // Python slicing of lists and strings.
  const auto opt = [&](const ExprPtr& e, bool& given) -> int64_t {
    given = false;
    if (!e) return 0;
    const Value v = e->eval(c);
    if (v.is_none() || v.undefined()) return 0;
    if (v.kind != Value::Kind::Int) error_at(line, "slice indices must be integers");
    given = true;
    return v.i;
  };
  bool has_start, has_stop, has_step;
  const int64_t start_v = opt(index, has_start), stop_v = opt(stop, has_stop);
  int64_t st = opt(step, has_step);
  if (!has_step) st = 1;
  if (st == 0) error_at(line, "slice step cannot be zero");
  std::vector<Value> items;
  if (o.is_array()) items = *o.a;
  else if (o.is_string()) items = iterate(o, line);
  else if (o.undefined()) return Value();
  else error_at(line, "cannot slice " + o.repr());
  const int64_t n = int64_t(items.size());
  const auto clamp = [&](int64_t v, bool given, int64_t def) {
    if (!given) return def;
    if (v < 0) v += n;
    if (st > 0) return std::clamp<int64_t>(v, 0, n);
    return std::clamp<int64_t>(v, -1, n - 1);
  };
  const int64_t b = clamp(start_v, has_start, st > 0 ? 0 : n - 1);
  const int64_t e = clamp(stop_v, has_stop, st > 0 ? n : -1);
  Array out;
  for (int64_t k = b; st > 0 ? k < e : k > e; k += st) out.push_back(items[size_t(k)]);
  if (o.is_string()) {
    std::string s;
    for (const Value& v : out) s += v.s;
    return Value(s);
  }
  return Value::array(std::move(out));
}

Value CallExpr::eval(Context& c) const {
  const Value f = callee->eval(c);
  return call_value(c, f, eval_args(c, args, kwargs), line);
}

Value FilterExpr::eval(Context& c) const {
  return apply_filter(c, name, obj->eval(c), eval_args(c, args, kwargs), line);
}

Value TestExpr::eval(Context& c) const {
  const bool r = apply_test(c, name, obj->eval(c), eval_args(c, args, kwargs), line);
  return Value(negate ? !r : r);
}

Value UnaryExpr::eval(Context& c) const {
  const Value v = e->eval(c);
  if (op == "not") return Value(!v.truthy());
  if (!v.is_number() && v.kind != Value::Kind::Bool) error_at(line, "bad operand for unary " + op + ": " + v.repr());
  if (op == "+") return v;
  return v.kind == Value::Kind::Float ? Value(-v.f) : Value(-(v.kind == Value::Kind::Bool ? int64_t(v.b) : v.i));
}

Value BinaryExpr::eval(Context& c) const {
  if (op == "and") {
    Value a = l->eval(c);
    return a.truthy() ? r->eval(c) : a;
  }
  if (op == "or") {
    Value a = l->eval(c);
    return a.truthy() ? a : r->eval(c);
  }
  const Value a = l->eval(c), b = r->eval(c);
  if (op == "==") return Value(equal(a, b));
  if (op == "!=") return Value(!equal(a, b));
  if (op == "in") return Value(contains(b, a, line));
  if (op == "not in") return Value(!contains(b, a, line));
  if (op == "~") return Value(a.str() + b.str());
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    int cmp;
    try {
      cmp = compare(a, b);
    } catch (const Error& e) {
      error_at(line, e.what());
    }
    return Value(op == "<" ? cmp < 0 : op == ">" ? cmp > 0 : op == "<=" ? cmp <= 0 : cmp >= 0);
  }
  const bool ints = (a.kind == Value::Kind::Int || a.kind == Value::Kind::Bool) &&
                    (b.kind == Value::Kind::Int || b.kind == Value::Kind::Bool);
  const int64_t ai = a.kind == Value::Kind::Bool ? a.b : a.i, bi = b.kind == Value::Kind::Bool ? b.b : b.i;
  const bool nums = (a.is_number() || a.kind == Value::Kind::Bool) && (b.is_number() || b.kind == Value::Kind::Bool);
  // Python's integers do not overflow; ours become floats where int64 would.
  int64_t exact = 0;
  if (op == "+") {
    if (ints) return __builtin_add_overflow(ai, bi, &exact) ? Value(double(ai) + double(bi)) : Value(exact);
    if (nums) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) return Value(a.s + b.s);
    if (a.is_array() && b.is_array()) {
      Array r2 = *a.a;
      r2.insert(r2.end(), b.a->begin(), b.a->end());
      return Value::array(std::move(r2));
    }
    error_at(line, "cannot add " + a.repr() + " and " + b.repr());
  }
  if (op == "*") {
    if (ints) return __builtin_mul_overflow(ai, bi, &exact) ? Value(double(ai) * double(bi)) : Value(exact);
    if (nums) return Value(a.as_double() * b.as_double());
    const Value* seq = a.is_string() || a.is_array() ? &a : &b;
    const Value* cnt = seq == &a ? &b : &a;
    if ((seq->is_string() || seq->is_array()) && cnt->kind == Value::Kind::Int) {
      const int64_t n = std::max<int64_t>(0, cnt->i);
      const size_t unit = std::max<size_t>(1, seq->is_string() ? seq->s.size() : seq->a->size());
      if (size_t(n) > c.output_budget / unit) error_at(line, "repetition too large");
      if (seq->is_string()) {
        std::string s;
        for (int64_t k = 0; k < n; ++k) s += seq->s;
        return Value(s);
      }
      Array r2;
      for (int64_t k = 0; k < n; ++k) r2.insert(r2.end(), seq->a->begin(), seq->a->end());
      return Value::array(std::move(r2));
    }
    error_at(line, "cannot multiply " + a.repr() + " and " + b.repr());
  }
  if (op == "%" && a.is_string()) return Value(percent_format(a.s, b, line));
  if (!nums) error_at(line, "unsupported operands for " + op + ": " + a.repr() + ", " + b.repr());
  if (op == "-") {
    if (ints) return __builtin_sub_overflow(ai, bi, &exact) ? Value(double(ai) - double(bi)) : Value(exact);
    return Value(a.as_double() - b.as_double());
  }
  if (op == "/") {
    if (b.as_double() == 0) error_at(line, "division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (b.as_double() == 0) error_at(line, "division by zero");
    if (ints && !(ai == INT64_MIN && bi == -1)) {
      int64_t q = ai / bi;
      if ((ai % bi != 0) && ((ai < 0) != (bi < 0))) --q;  // Python floors
      return op == "//" ? Value(q) : Value(ai - q * bi);
    }
    const double q = floor_div(a.as_double(), b.as_double());
    return op == "//" ? Value(q) : Value(a.as_double() - q * b.as_double());
  }
  if (op == "**") {
    if (ints && bi >= 0) {
      if (ai == 0 || ai == 1) return Value(bi == 0 ? int64_t(1) : ai);
      if (ai == -1) return Value(bi % 2 ? int64_t(-1) : int64_t(1));
      int64_t r2 = 1;  // |ai| >= 2: overflows within 63 steps
      bool overflow = false;
      for (int64_t k = 0; k < bi && !overflow; ++k) overflow = __builtin_mul_overflow(r2, ai, &r2);
      if (!overflow) return Value(r2);
    }
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  error_at(line, "unknown operator " + op);
}

Value CondExpr::eval(Context& c) const {
  if (cond->eval(c).truthy()) return yes->eval(c);
  return no ? no->eval(c) : Value();
}

void TextNode::render(Context&, std::string& out) const { out += text; }

void OutputNode::render(Context& c, std::string& out) const {
  const Value v = e->eval(c);
  if (!discard) out += v.str();
}

void IfNode::render(Context& c, std::string& out) const {
  for (const auto& [cond, body] : branches)
    if (cond->eval(c).truthy()) return c.render_body(body, out);
  c.render_body(otherwise, out);
}

void ForNode::render(Context& c, std::string& out) const {
  const std::vector<Value> all = iterate(iter->eval(c), line);
  const auto bind = [&](const Value& item) {
    if (vars.size() == 1) return c.set(vars[0], item);
    const std::vector<Value> parts = iterate(item, line);
    if (parts.size() != vars.size()) error_at(line, "cannot unpack " + item.repr() + " into " + std::to_string(vars.size()) + " names");
    for (size_t k = 0; k < vars.size(); ++k) c.set(vars[k], parts[k]);
  };
  std::vector<Value> items;
  if (filter) {
    for (const Value& v : all) {
      ScopeGuard g(c);
      bind(v);
      if (filter->eval(c).truthy()) items.push_back(v);
    }
  } else {
    items = all;
  }
  if (items.empty()) return c.render_body(otherwise, out);
  const int64_t n = int64_t(items.size());
  for (int64_t k = 0; k < n; ++k) {
    ScopeGuard g(c);
    Value loop = Value::object();
    loop.set("index", Value(k + 1));
    loop.set("index0", Value(k));
    loop.set("revindex", Value(n - k));
    loop.set("revindex0", Value(n - k - 1));
    loop.set("first", Value(k == 0));
    loop.set("last", Value(k == n - 1));
    loop.set("length", Value(n));
    loop.set("previtem", k > 0 ? items[size_t(k - 1)] : Value());
    loop.set("nextitem", k + 1 < n ? items[size_t(k + 1)] : Value());
    loop.set("cycle", Value::function([k](const Args& a) { return a.pos.empty() ? Value() : a.pos[size_t(k) % a.pos.size()]; }));
    c.set("loop", loop);
    bind(items[size_t(k)]);
    c.render_body(body, out);
    if (c.flow == Context::Flow::Break) {
      c.flow = Context::Flow::Normal;
      break;
    }
    c.flow = Context::Flow::Normal;
  }
}

namespace {
void assign(Context& c, const std::string& name, const std::string& attr, Value v, int line) {
  if (attr.empty()) return c.set(name, std::move(v));
  const Value* ns = c.lookup(name);
  if (!ns || !ns->is_object() || !ns->is_namespace) error_at(line, "cannot set an attribute of '" + name + "': not a namespace");
  const_cast<Value*>(ns)->set(attr, std::move(v));  // objects are shared: this changes the namespace itself
}
}  // namespace

void SetNode::render(Context& c, std::string&) const {
  Value v = value->eval(c);
  if (names.size() == 1) return assign(c, names[0], attr, std::move(v), line);
  const std::vector<Value> parts = iterate(v, line);
  if (parts.size() != names.size()) error_at(line, "cannot unpack " + v.repr());
  for (size_t k = 0; k < names.size(); ++k) c.set(names[k], parts[k]);
}

void SetBlockNode::render(Context& c, std::string&) const {
  std::string text;
  c.render_body(body, text);
  Value v(text);
  for (const std::string& f : filters) v = apply_filter(c, f, v, Args{}, line);
  assign(c, name, attr, std::move(v), line);
}

void MacroNode::render(Context& c, std::string&) const {
  Context* ctx = &c;
  const MacroNode* self = this;
  c.set(name, Value::function([ctx, self](const Args& a) {
    Context& cc = *ctx;
    if (++cc.depth > 100) error_at(self->line, "macro recursion too deep");
    ScopeGuard g(cc);
    for (size_t k = 0; k < self->params.size(); ++k) {
      const auto& [pname, def] = self->params[k];
      const Value* v = a.get(k, pname.c_str());
      cc.set(pname, v ? *v : def ? def->eval(cc) : Value());
    }
    Array varargs;
    for (size_t k = self->params.size(); k < a.pos.size(); ++k) varargs.push_back(a.pos[k]);
    cc.set("varargs", Value::array(std::move(varargs)));
    std::string out;
    cc.render_body(self->body, out);
    cc.flow = Context::Flow::Normal;
    --cc.depth;
    return Value(out);
  }));
}

void CallBlockNode::render(Context& c, std::string& out) const {
  ScopeGuard g(c);
  Context* ctx = &c;
  const CallBlockNode* self = this;
  c.set("caller", Value::function([ctx, self](const Args&) {
    std::string s;
    ctx->render_body(self->body, s);
    return Value(s);
  }));
  out += call->eval(c).str();
}

void FilterBlockNode::render(Context& c, std::string& out) const {
  std::string text;
  c.render_body(body, text);
  out += filter.empty() ? text : apply_filter(c, filter, Value(text), Args{}, line).str();
}

void LoopControlNode::render(Context& c, std::string&) const {
  c.flow = is_break ? Context::Flow::Break : Context::Flow::Continue;
}

}  // namespace elm::jinja
