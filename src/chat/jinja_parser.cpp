// Jinja parser: tags' contents become expression trees (Jinja's precedence: or < and < not <
// comparisons < + - < ~ < * / // % < ** < unary < filters/tests < postfix), and the tag sequence
// becomes nested bodies (if/for/set/macro/filter/call...).
#include <cstdlib>

#include "chat/jinja_ast.h"
#include "chat/jinja_nodes.h"
#include "core/error.h"

namespace elm::jinja {

void error_at(int line, const std::string& what) { fail("chat template line ", line, ": ", what); }

namespace {

struct Tok {
  enum class K { Name, Str, Int, Float, Op, End } k;
  std::string s;
  int64_t i = 0;
  double f = 0;
};

std::vector<Tok> lex_expr(const std::string& src, int line) {
  std::vector<Tok> out;
  size_t p = 0;
  while (p < src.size()) {
    const char c = src[p];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++p;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t q = p;
      while (q < src.size() && (std::isalnum(static_cast<unsigned char>(src[q])) || src[q] == '_')) ++q;
      out.push_back({Tok::K::Name, src.substr(p, q - p)});
      p = q;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t q = p;
      bool is_float = false;
      while (q < src.size() && (std::isdigit(static_cast<unsigned char>(src[q])) || src[q] == '_')) ++q;
      if (q + 1 < src.size() && src[q] == '.' && std::isdigit(static_cast<unsigned char>(src[q + 1]))) {
        is_float = true;
        ++q;
        while (q < src.size() && std::isdigit(static_cast<unsigned char>(src[q]))) ++q;
      }
      if (q < src.size() && (src[q] == 'e' || src[q] == 'E')) {
        size_t r = q + 1;
        if (r < src.size() && (src[r] == '+' || src[r] == '-')) ++r;
        if (r < src.size() && std::isdigit(static_cast<unsigned char>(src[r]))) {
          is_float = true;
          q = r;
          while (q < src.size() && std::isdigit(static_cast<unsigned char>(src[q]))) ++q;
        }
      }
      std::string num;
      for (size_t k = p; k < q; ++k)
        if (src[k] != '_') num += src[k];
      Tok t{is_float ? Tok::K::Float : Tok::K::Int, num};
      if (is_float) t.f = std::strtod(num.c_str(), nullptr);
      else {
        errno = 0;
        t.i = std::strtoll(num.c_str(), nullptr, 10);
        if (errno) error_at(line, "integer literal too large");
      }
      out.push_back(t);
      p = q;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string s;
      size_t q = p + 1;
      for (; q < src.size() && src[q] != c; ++q) {
        if (src[q] == '\\' && q + 1 < src.size()) {
          const char e = src[++q];
          switch (e) {
            case 'n': s += '\n'; break;
            case 't': s += '\t'; break;
            case 'r': s += '\r'; break;
            case '\\': s += '\\'; break;
            case '\'': s += '\''; break;
            case '"': s += '"'; break;
            case '0': s += '\0'; break;
            default: s += '\\', s += e;
          }
        } else {
          s += src[q];
        }
      }
      if (q >= src.size()) error_at(line, "unterminated string literal");
      out.push_back({Tok::K::Str, s});
      p = q + 1;
      continue;
    }
    static const char* const ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(",
                                      ")", "[", "]", "{", "}", ".", ",", ":", "|", "="};
    bool found = false;
    for (const char* op : ops) {
      const size_t n = std::char_traits<char>::length(op);
      if (src.compare(p, n, op) == 0) {
        out.push_back({Tok::K::Op, op});
        p += n;
        found = true;
        break;
      }
    }
    if (!found) error_at(line, std::string("unexpected character '") + c + "'");
  }
  out.push_back({Tok::K::End, ""});
  return out;
}

class ExprParser {
 public:
  ExprParser(const std::string& src, int line) : t_(lex_expr(src, line)), line_(line) {}

  bool at_end() const { return t_[p_].k == Tok::K::End; }
  bool is_op(const char* s) const { return t_[p_].k == Tok::K::Op && t_[p_].s == s; }
  bool is_name(const char* s) const { return t_[p_].k == Tok::K::Name && t_[p_].s == s; }
  bool is_name_at(size_t off, const char* s) const {
    return p_ + off < t_.size() && t_[p_ + off].k == Tok::K::Name && t_[p_ + off].s == s;
  }
  bool accept_op(const char* s) { return is_op(s) ? (++p_, true) : false; }
  bool accept_name(const char* s) { return is_name(s) ? (++p_, true) : false; }
  void expect_op(const char* s) {
    if (!accept_op(s)) error_at(line_, std::string("expected '") + s + "'" + near());
  }
  std::string name() {
    if (t_[p_].k != Tok::K::Name) error_at(line_, "expected a name" + near());
    return t_[p_++].s;
  }
  void expect_end() {
    if (!at_end()) error_at(line_, "unexpected '" + t_[p_].s + "'");
  }
  std::string near() const { return at_end() ? " at the end of the tag" : " near '" + t_[p_].s + "'"; }

  // A full expression, with a bare tuple (a, b) allowed where Jinja allows it.
  ExprPtr expression() { return ternary(); }
  ExprPtr expression_no_ternary_filter() { return or_expr(); }  // a for loop's iterable: `if` filters
  ExprPtr tuple_or_expr() {
    ExprPtr first = expression();
    if (!is_op(",")) return first;
    auto l = make<ListExpr>();
    l->items.push_back(std::move(first));
    while (accept_op(",")) {
      if (at_end() || is_op(")") || is_op("%")) break;
      l->items.push_back(expression());
    }
    return l;
  }
  // Assignment targets: a name, a tuple of names, or ns.attr.
  std::vector<std::string> target_names() {
    std::vector<std::string> names{name()};
    while (accept_op(",")) names.push_back(name());
    return names;
  }

 private:
  template <class T>
  std::unique_ptr<T> make() {
    auto e = std::make_unique<T>();
    e->line = line_;
    return e;
  }
  void enter() {
    if (++depth_ > 200) error_at(line_, "expression nested too deeply");
  }
  struct Guard {
    ExprParser& p;
    explicit Guard(ExprParser& x) : p(x) { p.enter(); }
    ~Guard() { --p.depth_; }
  };

  ExprPtr ternary() {
    Guard g(*this);
    ExprPtr e = or_expr();
    while (accept_name("if")) {
      auto c = make<CondExpr>();
      c->cond = or_expr();
      c->yes = std::move(e);
      if (accept_name("else")) c->no = ternary();
      e = std::move(c);
    }
    return e;
  }
  ExprPtr binary(const char* op, ExprPtr l, ExprPtr r) {
    auto b = make<BinaryExpr>();
    b->op = op;
    b->l = std::move(l);
    b->r = std::move(r);
    return b;
  }
  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (accept_name("or")) e = binary("or", std::move(e), and_expr());
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (accept_name("and")) e = binary("and", std::move(e), not_expr());
    return e;
  }
  ExprPtr not_expr() {
    Guard g(*this);
    if (accept_name("not")) {
      auto u = make<UnaryExpr>();
      u->op = "not";
      u->e = not_expr();
      return u;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = math1();
    for (;;) {
      const char* op = nullptr;
      for (const char* o : {"==", "!=", "<", ">", "<=", ">="})
        if (is_op(o)) op = o;
      if (op) {
        ++p_;
        e = binary(op, std::move(e), math1());
      } else if (is_name("in")) {
        ++p_;
        e = binary("in", std::move(e), math1());
      } else if (is_name("not") && is_name_at(1, "in")) {
        p_ += 2;
        e = binary("not in", std::move(e), math1());
      } else {
        return e;
      }
    }
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    for (;;) {
      if (accept_op("+")) e = binary("+", std::move(e), concat());
      else if (accept_op("-")) e = binary("-", std::move(e), concat());
      else return e;
    }
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (accept_op("~")) e = binary("~", std::move(e), math2());
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = pow();
    for (;;) {
      const char* op = nullptr;
      for (const char* o : {"*", "/", "//", "%"})
        if (is_op(o)) op = o;
      if (!op) return e;
      ++p_;
      e = binary(op, std::move(e), pow());
    }
  }
  ExprPtr pow() {
    ExprPtr e = unary(true);
    while (accept_op("**")) e = binary("**", std::move(e), unary(true));
    return e;
  }
  ExprPtr unary(bool with_filter) {
    Guard g(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      auto u = make<UnaryExpr>();
      u->op = t_[p_++].s;
      u->e = unary(false);
      e = std::move(u);
    } else {
      e = postfix(primary());
    }
    return with_filter ? filters(std::move(e)) : std::move(e);
  }
  void call_args(std::vector<ExprPtr>& pos, std::vector<std::pair<std::string, ExprPtr>>& kw) {
    // After '(': positional and name=value arguments up to ')'.
    if (accept_op(")")) return;
    do {
      if (is_op(")")) break;
      if (t_[p_].k == Tok::K::Name && p_ + 1 < t_.size() && t_[p_ + 1].k == Tok::K::Op && t_[p_ + 1].s == "=") {
        std::string n = t_[p_].s;
        p_ += 2;
        kw.emplace_back(std::move(n), expression());
      } else {
        pos.push_back(expression());
      }
    } while (accept_op(","));
    expect_op(")");
  }
  ExprPtr filters(ExprPtr e) {
    for (;;) {
      if (accept_op("|")) {
        auto f = make<FilterExpr>();
        f->name = name();
        while (accept_op(".")) f->name += "." + name();
        f->obj = std::move(e);
        if (accept_op("(")) call_args(f->args, f->kwargs);
        e = std::move(f);
      } else if (accept_name("is")) {
        auto t = make<TestExpr>();
        t->negate = accept_name("not");
        t->name = name();
        t->obj = std::move(e);
        if (accept_op("(")) {
          call_args(t->args, t->kwargs);
        } else if (!at_end() && t_[p_].k != Tok::K::Op &&
                   !(t_[p_].k == Tok::K::Name && (is_name("and") || is_name("or") || is_name("else") ||
                                                   is_name("if") || is_name("not") || is_name("in") || is_name("is")))) {
          t->args.push_back(postfix(primary()));  // `is divisibleby 3`, `is sameas none`
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (accept_op(".")) {
        auto g = make<AttrExpr>();
        g->obj = std::move(e);
        if (t_[p_].k == Tok::K::Int) g->name = std::to_string(t_[p_++].i);
        else g->name = name();
        e = std::move(g);
      } else if (accept_op("[")) {
        auto s = make<IndexExpr>();
        s->obj = std::move(e);
        if (!is_op(":")) s->index = expression();
        if (accept_op(":")) {
          s->slice = true;
          if (!is_op(":") && !is_op("]")) s->stop = expression();
          if (accept_op(":") && !is_op("]")) s->step = expression();
        }
        expect_op("]");
        e = std::move(s);
      } else if (accept_op("(")) {
        auto c = make<CallExpr>();
        c->callee = std::move(e);
        call_args(c->args, c->kwargs);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  ExprPtr primary() {
    const Tok& t = t_[p_];
    auto lit = [&](Value v) {
      auto l = make<LiteralExpr>();
      l->v = std::move(v);
      ++p_;
      return l;
    };
    switch (t.k) {
      case Tok::K::Str: {
        // Adjacent string literals concatenate, as in Python.
        std::string s = t.s;
        ++p_;
        while (t_[p_].k == Tok::K::Str) s += t_[p_++].s;
        auto l = make<LiteralExpr>();
        l->v = Value(s);
        return l;
      }
      case Tok::K::Int: return lit(Value(t.i));
      case Tok::K::Float: return lit(Value(t.f));
      case Tok::K::Name: {
        if (t.s == "true" || t.s == "True") return lit(Value(true));
        if (t.s == "false" || t.s == "False") return lit(Value(false));
        if (t.s == "none" || t.s == "None") return lit(Value::none());
        auto n = make<NameExpr>();
        n->name = t.s;
        ++p_;
        return n;
      }
      case Tok::K::Op: {
        if (accept_op("(")) {
          if (accept_op(")")) return make<ListExpr>();  // the empty tuple
          ExprPtr e = tuple_or_expr();
          expect_op(")");
          return e;
        }
        if (accept_op("[")) {
          auto l = make<ListExpr>();
          while (!accept_op("]")) {
            l->items.push_back(expression());
            if (!accept_op(",")) {
              expect_op("]");
              break;
            }
          }
          return l;
        }
        if (accept_op("{")) {
          auto d = make<DictExpr>();
          while (!accept_op("}")) {
            ExprPtr k = expression();
            expect_op(":");
            d->items.emplace_back(std::move(k), expression());
            if (!accept_op(",")) {
              expect_op("}");
              break;
            }
          }
          return d;
        }
        break;
      }
      case Tok::K::End: error_at(line_, "expression expected" + near());
    }
    error_at(line_, "unexpected '" + t.s + "'");
  }

  std::vector<Tok> t_;
  size_t p_ = 0;
  int line_;
  int depth_ = 0;
};

// Statement-level parser over the lexer's tokens.
class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Token> toks) : toks_(std::move(toks)) {}

  // Parses nodes until a statement whose keyword is in `stops`; returns that keyword ("" at the
  // end of the template), leaving its parser positioned after the keyword.
  std::string body(Body& out, const std::vector<std::string>& stops, std::unique_ptr<ExprParser>& stop_tag) {
    if (++depth_ > 200) error_at(line(), "blocks nested too deeply");
    while (p_ < toks_.size()) {
      const Token& t = toks_[p_++];
      if (t.kind == Token::Kind::Text) {
        auto n = std::make_unique<TextNode>();
        n->line = t.line;
        n->text = t.text;
        out.push_back(std::move(n));
        continue;
      }
      auto ep = std::make_unique<ExprParser>(t.text, t.line);
      if (t.kind == Token::Kind::Expr) {
        auto n = std::make_unique<OutputNode>();
        n->line = t.line;
        n->e = ep->tuple_or_expr();
        ep->expect_end();
        out.push_back(std::move(n));
        continue;
      }
      const std::string kw = ep->name();
      for (const std::string& s : stops)
        if (kw == s) {
          stop_tag = std::move(ep);
          --depth_;
          return kw;
        }
      out.push_back(statement(kw, *ep, t.line));
    }
    if (!stops.empty()) error_at(line(), "missing {% " + stops.back() + " %}");
    --depth_;
    return "";
  }

 private:
  int line() const { return p_ > 0 && p_ <= toks_.size() ? toks_[p_ - 1].line : 1; }

  NodePtr statement(const std::string& kw, ExprParser& ep, int line) {
    std::unique_ptr<ExprParser> end;
    if (kw == "if") {
      auto n = std::make_unique<IfNode>();
      n->line = line;
      ExprPtr cond = ep.expression();
      ep.expect_end();
      for (;;) {
        Body b;
        const std::string stop = body(b, {"elif", "else", "endif"}, end);
        n->branches.emplace_back(std::move(cond), std::move(b));
        if (stop == "endif") break;
        if (stop == "else") {
          end->expect_end();
          body(n->otherwise, {"endif"}, end);
          break;
        }
        cond = end->expression();
        end->expect_end();
      }
      return n;
    }
    if (kw == "for") {
      auto n = std::make_unique<ForNode>();
      n->line = line;
      n->vars = ep.target_names();
      if (!ep.accept_name("in")) error_at(line, "expected 'in' in for");
      n->iter = ep.expression_no_ternary_filter();
      if (ep.accept_name("if")) n->filter = ep.expression();
      ep.accept_name("recursive");
      ep.expect_end();
      const std::string stop = body(n->body, {"else", "endfor"}, end);
      if (stop == "else") body(n->otherwise, {"endfor"}, end);
      return n;
    }
    if (kw == "set") {
      std::string target = ep.name();
      std::string attr;
      std::vector<std::string> names{target};
      if (ep.accept_op(".")) attr = ep.name();
      while (ep.accept_op(",")) names.push_back(ep.name());
      if (ep.accept_op("=")) {
        auto n = std::make_unique<SetNode>();
        n->line = line;
        n->names = names;
        n->attr = attr;
        n->value = ep.tuple_or_expr();
        ep.expect_end();
        return n;
      }
      auto n = std::make_unique<SetBlockNode>();  // {% set x %}...{% endset %}, optionally | filters
      n->line = line;
      n->name = target;
      n->attr = attr;
      while (ep.accept_op("|")) n->filters.push_back(ep.name());
      ep.expect_end();
      body(n->body, {"endset"}, end);
      return n;
    }
    if (kw == "macro") {
      auto n = std::make_unique<MacroNode>();
      n->line = line;
      n->name = ep.name();
      ep.expect_op("(");
      while (!ep.accept_op(")")) {
        std::string p = ep.name();
        ExprPtr def;
        if (ep.accept_op("=")) def = ep.expression();
        n->params.emplace_back(std::move(p), std::move(def));
        if (!ep.accept_op(",")) {
          ep.expect_op(")");
          break;
        }
      }
      ep.expect_end();
      body(n->body, {"endmacro"}, end);
      return n;
    }
    if (kw == "call") {
      auto n = std::make_unique<CallBlockNode>();
      n->line = line;
      n->call = ep.expression();
      ep.expect_end();
      body(n->body, {"endcall"}, end);
      return n;
    }
    if (kw == "filter") {
      auto n = std::make_unique<FilterBlockNode>();
      n->line = line;
      n->filter = ep.name();
      ep.expect_end();
      body(n->body, {"endfilter"}, end);
      return n;
    }
    if (kw == "generation") {  // transformers' assistant-mask marker: renders its body
      auto n = std::make_unique<FilterBlockNode>();
      n->line = line;
      body(n->body, {"endgeneration"}, end);
      return n;
    }
    if (kw == "break" || kw == "continue") {
      ep.expect_end();
      auto n = std::make_unique<LoopControlNode>();
      n->line = line;
      n->is_break = kw == "break";
      return n;
    }
    if (kw == "do") {
      auto n = std::make_unique<OutputNode>();
      n->line = line;
      n->e = ep.expression();
      n->discard = true;
      ep.expect_end();
      return n;
    }
    error_at(line, "unknown or unexpected tag '" + kw + "'");
  }

  std::vector<Token> toks_;
  size_t p_ = 0;
  int depth_ = 0;
};

}  // namespace

Body parse_template(const std::string& src) {
  TemplateParser p(lex_template(src));
  Body b;
  std::unique_ptr<ExprParser> none;
  p.body(b, {}, none);
  return b;
}

}  // namespace elm::jinja
