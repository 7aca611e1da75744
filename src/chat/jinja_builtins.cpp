// Jinja built-ins that chat templates use: filters, tests, the methods of str / list / dict, and
// the globals transformers provides (range, dict, namespace, raise_exception, strftime_now).
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "chat/jinja_ast.h"
#include "core/error.h"

namespace elm::jinja {

namespace {

using K = Value::Kind;

const Value& arg(const Args& a, size_t i, const char* name, int line) {
  const Value* v = a.get(i, name);
  if (!v) error_at(line, std::string("missing argument '") + name + "'");
  return *v;
}
Value opt_arg(const Args& a, size_t i, const char* name, Value def = Value()) {
  const Value* v = a.get(i, name);
  return v ? *v : def;
}

bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  const auto drop = [&](unsigned char c) {
    return chars.is_string() ? chars.s.find(char(c)) != std::string::npos : is_ws(c);
  };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && drop(static_cast<unsigned char>(s[b]))) ++b;
  if (right)
    while (e > b && drop(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string map_case(const std::string& s, int mode) {  // 0 lower, 1 upper, 2 title, 3 capitalize
  std::string out;
  bool word_start = true;
  bool first = true;
  for (size_t i = 0; i < s.size();) {
    utf8proc_int32_t cp;
    const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), utf8proc_ssize_t(s.size() - i), &cp);
    if (n <= 0) {
      out += s[i++];
      continue;
    }
    i += size_t(n);
    utf8proc_int32_t r = cp;
    if (mode == 0) r = utf8proc_tolower(cp);
    else if (mode == 1) r = utf8proc_toupper(cp);
    else if (mode == 2) r = word_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
    else r = first ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
    const auto cat = utf8proc_category(cp);
    word_start = !(cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO);
    first = false;
    utf8proc_uint8_t buf[4];
    const utf8proc_ssize_t m = utf8proc_encode_char(r, buf);
    out.append(reinterpret_cast<const char*>(buf), size_t(m));
  }
  return out;
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  Array out;
  if (!sep.is_string()) {  // runs of whitespace, no empty strings
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && is_ws(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        size_t e = s.size();
        while (e > i && is_ws(static_cast<unsigned char>(s[e - 1]))) --e;
        out.emplace_back(s.substr(i, e - i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !is_ws(static_cast<unsigned char>(s[j]))) ++j;
      out.emplace_back(s.substr(i, j - i));
      i = j;
    }
    return Value::array(std::move(out));
  }
  if (sep.s.empty()) fail("empty separator");
  size_t start = 0;
  for (size_t p = s.find(sep.s); p != std::string::npos && (maxsplit < 0 || int64_t(out.size()) < maxsplit);
       p = s.find(sep.s, start)) {
    out.emplace_back(s.substr(start, p - start));
    start = p + sep.s.size();
  }
  out.emplace_back(s.substr(start));
  return Value::array(std::move(out));
}

std::string replace_all(std::string s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) return s;
  size_t p = 0;
  for (int64_t n = 0; (count < 0 || n < count) && (p = s.find(from, p)) != std::string::npos; ++n) {
    s.replace(p, from.size(), to);
    p += to.size();
  }
  return s;
}

bool starts_or_ends(const std::string& s, const Value& what, bool start, int line) {
  const auto one = [&](const Value& w) {
    if (!w.is_string()) error_at(line, "startswith/endswith need strings");
    return start ? s.compare(0, w.s.size(), w.s) == 0
                 : s.size() >= w.s.size() && s.compare(s.size() - w.s.size(), w.s.size(), w.s) == 0;
  };
  if (what.is_array()) return std::any_of(what.a->begin(), what.a->end(), one);
  return one(what);
}

Value bound(std::function<Value(const Args&)> f) { return Value::function(std::move(f)); }

Value string_method(const Value& obj, const std::string& name, int line) {
  const std::string s = obj.s;
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return bound([s, name](const Args& a) {
      return Value(strip(s, opt_arg(a, 0, "chars"), name != "rstrip", name != "lstrip"));
    });
  if (name == "split")
    return bound([s, line](const Args& a) {
      const Value m = opt_arg(a, 1, "maxsplit", Value(int64_t(-1)));
      try {
        return split(s, opt_arg(a, 0, "sep"), m.i);
      } catch (const Error& e) {
        error_at(line, e.what());
      }
    });
  if (name == "splitlines")
    return bound([s](const Args&) {
      Array out;
      size_t start = 0;
      for (size_t i = 0; i < s.size(); ++i)
        if (s[i] == '\n' || s[i] == '\r') {
          out.emplace_back(s.substr(start, i - start));
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
          start = i + 1;
        }
      if (start < s.size()) out.emplace_back(s.substr(start));
      return Value::array(std::move(out));
    });
  if (name == "startswith" || name == "endswith")
    return bound([s, name, line](const Args& a) { return Value(starts_or_ends(s, arg(a, 0, "prefix", line), name == "startswith", line)); });
  if (name == "upper") return bound([s](const Args&) { return Value(map_case(s, 1)); });
  if (name == "lower") return bound([s](const Args&) { return Value(map_case(s, 0)); });
  if (name == "title") return bound([s](const Args&) { return Value(map_case(s, 2)); });
  if (name == "capitalize") return bound([s](const Args&) { return Value(map_case(s, 3)); });
  if (name == "replace")
    return bound([s, line](const Args& a) {
      const Value& f = arg(a, 0, "old", line);
      const Value& t = arg(a, 1, "new", line);
      return Value(replace_all(s, f.str(), t.str(), opt_arg(a, 2, "count", Value(int64_t(-1))).i));
    });
  if (name == "find" || name == "index" || name == "count" || name == "rfind")
    return bound([s, name, line](const Args& a) {
      const std::string sub = arg(a, 0, "sub", line).str();
      if (name == "count") {
        if (sub.empty()) return Value(int64_t(s.size() + 1));
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value(n);
      }
      const size_t p = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (p == std::string::npos && name == "index") error_at(line, "substring not found");
      return Value(p == std::string::npos ? int64_t(-1) : int64_t(p));
    });
  if (name == "join")
    return bound([s, line](const Args& a) {
      std::string out;
      const std::vector<Value> items = iterate(arg(a, 0, "iterable", line), line);
      for (size_t k = 0; k < items.size(); ++k) out += (k ? s : "") + items[k].str();
      return Value(out);
    });
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum" || name == "isupper" || name == "islower")
    return bound([s, name](const Args&) {
      if (s.empty()) return Value(false);
      for (unsigned char c : s) {
        const bool ok = name == "isdigit" ? std::isdigit(c) : name == "isalpha" ? std::isalpha(c) : name == "isspace" ? is_ws(c)
                        : name == "isalnum" ? std::isalnum(c) : name == "isupper" ? !std::islower(c) : !std::isupper(c);
        if (!ok) return Value(false);
      }
      return Value(true);
    });
  if (name == "format")
    return bound([s](const Args& a) {  // "{}" and "{0}" placeholders
      std::string out;
      size_t next = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') out += '{', ++i;
        else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') out += '}', ++i;
        else if (s[i] == '{') {
          const size_t e = s.find('}', i);
          if (e == std::string::npos) break;
          const std::string key = s.substr(i + 1, e - i - 1);
          const Value* v = key.empty() ? a.get(next++, "") : std::isdigit(static_cast<unsigned char>(key[0])) ? a.get(size_t(std::stoul(key)), "") : a.get(SIZE_MAX, key.c_str());
          if (v) out += v->str();
          i = e;
        } else {
          out += s[i];
        }
      }
      return Value(out);
    });
  return Value();
}

Value list_method(const Value& obj, const std::string& name, int line) {
  auto a = obj.a;
  if (name == "append") return bound([a, line](const Args& x) { a->push_back(arg(x, 0, "item", line)); return Value::none(); });
  if (name == "extend")
    return bound([a, line](const Args& x) {
      for (const Value& v : iterate(arg(x, 0, "iterable", line), line)) a->push_back(v);
      return Value::none();
    });
  if (name == "insert")
    return bound([a, line](const Args& x) {
      int64_t i = arg(x, 0, "index", line).i;
      if (i < 0) i += int64_t(a->size());
      i = std::clamp<int64_t>(i, 0, int64_t(a->size()));
      a->insert(a->begin() + i, arg(x, 1, "item", line));
      return Value::none();
    });
  if (name == "pop")
    return bound([a, line](const Args& x) {
      if (a->empty()) error_at(line, "pop from an empty list");
      int64_t i = opt_arg(x, 0, "index", Value(int64_t(-1))).i;
      if (i < 0) i += int64_t(a->size());
      if (i < 0 || i >= int64_t(a->size())) error_at(line, "pop index out of range");
      Value v = (*a)[size_t(i)];
      a->erase(a->begin() + i);
      return v;
    });
  if (name == "index" || name == "count")
    return bound([a, name, line](const Args& x) {
      const Value& w = arg(x, 0, "value", line);
      int64_t n = 0;
      for (size_t k = 0; k < a->size(); ++k)
        if (equal((*a)[k], w)) {
          if (name == "index") return Value(int64_t(k));
          ++n;
        }
      if (name == "index") error_at(line, "value not in list");
      return Value(n);
    });
  return Value();
}

Value dict_items(const Value& d) {
  Array out;
  for (const auto& [k, v] : *d.o) out.push_back(Value::array({Value(k), v}));
  return Value::array(std::move(out));
}

Value dict_method(const Value& obj, const std::string& name, int line) {
  if (obj.is_namespace) return Value();
  const Value d = obj;
  if (name == "items") return bound([d](const Args&) { return dict_items(d); });
  if (name == "keys")
    return bound([d](const Args&) {
      Array out;
      for (const auto& kv : *d.o) out.emplace_back(kv.first);
      return Value::array(std::move(out));
    });
  if (name == "values")
    return bound([d](const Args&) {
      Array out;
      for (const auto& kv : *d.o) out.push_back(kv.second);
      return Value::array(std::move(out));
    });
  if (name == "get")
    return bound([d, line](const Args& a) {
      const Value* v = d.find(arg(a, 0, "key", line).str());
      return v ? *v : opt_arg(a, 1, "default", Value::none());
    });
  if (name == "update")
    return bound([d](const Args& a) {
      Value self = d;
      if (!a.pos.empty() && a.pos[0].is_object())
        for (const auto& [k, v] : *a.pos[0].o) self.set(k, v);
      for (const auto& [k, v] : a.kw) self.set(k, v);
      return Value::none();
    });
  return Value();
}

// Attribute lookup for filters like map(attribute='a.b') and sort(attribute=...).
Value attr_path(const Value& v, const std::string& path, int line) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) && cur.is_array())
      cur = get_item(cur, Value(int64_t(std::stoll(part))), line);
    else
      cur = get_attr(cur, part, line);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

int64_t length(const Value& v, int line) {
  if (v.is_string()) {
    int64_t n = 0;
    for (unsigned char c : v.s) n += (c & 0xC0) != 0x80;
    return n;
  }
  if (v.is_array()) return int64_t(v.a->size());
  if (v.is_object()) return int64_t(v.o->size());
  if (v.undefined()) return 0;
  error_at(line, "object of type " + v.repr() + " has no length");
}

std::vector<Value> select_items(Context& c, const Value& seq, const Args& a, bool by_attr, bool keep, int line) {
  // select/reject(test, args...) and selectattr/rejectattr(attr, test, args...).
  std::vector<Value> out;
  size_t k = 0;
  std::string attr;
  if (by_attr) attr = arg(a, k++, "attribute", line).str();
  const Value* test = a.get(k++, "test");
  Args targs;
  for (size_t i = k; i < a.pos.size(); ++i) targs.pos.push_back(a.pos[i]);
  for (const Value& item : iterate(seq, line)) {
    const Value v = by_attr ? attr_path(item, attr, line) : item;
    const bool t = test ? apply_test(c, test->str(), v, targs, line) : v.truthy();
    if (t == keep) out.push_back(item);
  }
  return out;
}

}  // namespace

std::vector<Value> iterate(const Value& v, int line) {
  switch (v.kind) {
    case K::Array: return *v.a;
    case K::Object: {
      std::vector<Value> keys;
      for (const auto& kv : *v.o) keys.emplace_back(kv.first);
      return keys;
    }
    case K::String: {
      std::vector<Value> chars;
      for (size_t i = 0; i < v.s.size();) {
        size_t n = 1;
        const unsigned char c = static_cast<unsigned char>(v.s[i]);
        n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        chars.emplace_back(v.s.substr(i, n));
        i += n;
      }
      return chars;
    }
    case K::Undefined: return {};
    default: error_at(line, v.repr() + " is not iterable");
  }
}

Value get_attr(const Value& obj, const std::string& name, int line) {
  switch (obj.kind) {
    case K::Object: {
      if (const Value* v = obj.find(name)) return *v;
      return dict_method(obj, name, line);
    }
    case K::String: return string_method(obj, name, line);
    case K::Array: return list_method(obj, name, line);
    default: return Value();  // undefined (Jinja would raise for attributes of Undefined; templates guard with `is defined`)
  }
}

Value get_item(const Value& obj, const Value& key, int line) {
  if (obj.is_object()) {
    if (const Value* v = obj.find(key.str())) return *v;
    return Value();
  }
  if (obj.is_array() || obj.is_string()) {
    if (key.kind == K::String) return get_attr(obj, key.s, line);
    if (key.kind != K::Int) error_at(line, "indices must be integers");
    const std::vector<Value> items = obj.is_array() ? *obj.a : iterate(obj, line);
    int64_t i = key.i;
    if (i < 0) i += int64_t(items.size());
    if (i < 0 || i >= int64_t(items.size())) return Value();
    return items[size_t(i)];
  }
  return Value();
}

Value call_value(Context& c, const Value& f, const Args& args, int line) {
  if (f.kind != K::Function) error_at(line, "'" + f.repr() + "' is not callable");
  return (*f.fn)(args);
}

Value apply_filter(Context& c, const std::string& name, const Value& v, const Args& a, int line) {
  if (name == "trim") return Value(strip(v.str(), opt_arg(a, 0, "chars"), true, true));
  if (name == "upper") return Value(map_case(v.str(), 1));
  if (name == "lower") return Value(map_case(v.str(), 0));
  if (name == "title") return Value(map_case(v.str(), 2));
  if (name == "capitalize") return Value(map_case(v.str(), 3));
  if (name == "length" || name == "count") return Value(length(v, line));
  if (name == "string") return Value(v.str());
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v;
    std::string out;  // HTML escaping (templates rarely use it; autoescape is off)
    for (char ch : v.str()) {
      switch (ch) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += ch;
      }
    }
    return Value(out);
  }
  if (name == "tojson") {
    const Value ind = opt_arg(a, 0, "indent");
    const Value sk = opt_arg(a, 1, "sort_keys", Value(false));
    try {
      return Value(v.to_json(ind.kind == K::Int ? int(ind.i) : -1, sk.truthy()));
    } catch (const Error& e) {
      error_at(line, e.what());
    }
  }
  if (name == "default" || name == "d") {
    const bool boolean = opt_arg(a, 1, "boolean", Value(false)).truthy();
    if (v.undefined() || (boolean && !v.truthy())) return opt_arg(a, 0, "default_value", Value(""));
    return v;
  }
  if (name == "first" || name == "last") {
    const std::vector<Value> items = iterate(v, line);
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value::array(iterate(v, line));
  if (name == "join") {
    const std::string sep = opt_arg(a, 0, "d", Value("")).str();
    const Value attr = opt_arg(a, 1, "attribute");
    std::string out;
    const std::vector<Value> items = iterate(v, line);
    for (size_t k = 0; k < items.size(); ++k)
      out += (k ? sep : "") + (attr.undefined() ? items[k] : attr_path(items[k], attr.str(), line)).str();
    return Value(out);
  }
  if (name == "replace") {
    return Value(replace_all(v.str(), arg(a, 0, "old", line).str(), arg(a, 1, "new", line).str(),
                             opt_arg(a, 2, "count", Value(int64_t(-1))).i));
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<Value> ch = iterate(v, line);
      std::string out;
      for (size_t k = ch.size(); k-- > 0;) out += ch[k].s;
      return Value(out);
    }
    std::vector<Value> items = iterate(v, line);
    std::reverse(items.begin(), items.end());
    return Value::array(std::move(items));
  }
  if (name == "items") {
    if (v.undefined()) return Value::array();
    if (!v.is_object()) error_at(line, "items needs a dict");
    return dict_items(v);
  }
  if (name == "dictsort") {
    if (!v.is_object()) error_at(line, "dictsort needs a dict");
    Value items = dict_items(v);
    std::stable_sort(items.a->begin(), items.a->end(), [](const Value& x, const Value& y) { return (*x.a)[0].s < (*y.a)[0].s; });
    return items;
  }
  if (name == "sort") {
    std::vector<Value> items = iterate(v, line);
    const bool rev = opt_arg(a, 0, "reverse", Value(false)).truthy();
    const Value attr = opt_arg(a, 2, "attribute");
    const auto key = [&](const Value& x) { return attr.undefined() ? x : attr_path(x, attr.str(), line); };
    try {
      std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        const int c2 = compare(key(x), key(y));
        return rev ? c2 > 0 : c2 < 0;
      });
    } catch (const Error& e) {
      error_at(line, e.what());
    }
    return Value::array(std::move(items));
  }
  if (name == "unique") {
    std::vector<Value> out;
    for (const Value& x : iterate(v, line))
      if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equal(x, y); })) out.push_back(x);
    return Value::array(std::move(out));
  }
  if (name == "map") {
    const Value attr = opt_arg(a, SIZE_MAX, "attribute");
    std::vector<Value> out;
    if (!attr.undefined()) {
      const Value def = opt_arg(a, SIZE_MAX, "default");
      for (const Value& x : iterate(v, line)) {
        Value r = attr_path(x, attr.str(), line);
        out.push_back(r.undefined() && !def.undefined() ? def : r);
      }
    } else {
      const std::string f = arg(a, 0, "filter", line).str();
      Args rest;
      for (size_t k = 1; k < a.pos.size(); ++k) rest.pos.push_back(a.pos[k]);
      rest.kw = a.kw;
      for (const Value& x : iterate(v, line)) out.push_back(apply_filter(c, f, x, rest, line));
    }
    return Value::array(std::move(out));
  }
  if (name == "select" || name == "reject") return Value::array(select_items(c, v, a, false, name == "select", line));
  if (name == "selectattr" || name == "rejectattr") return Value::array(select_items(c, v, a, true, name == "selectattr", line));
  if (name == "int") {
    if (v.kind == K::Int) return v;
    if (v.kind == K::Float) return Value(int64_t(v.f));
    if (v.kind == K::Bool) return Value(int64_t(v.b));
    try {
      return Value(int64_t(std::stoll(v.str())));
    } catch (...) {
      return opt_arg(a, 0, "default", Value(int64_t(0)));
    }
  }
  if (name == "float") {
    if (v.is_number() || v.kind == K::Bool) return Value(v.as_double());
    try {
      return Value(std::stod(v.str()));
    } catch (...) {
      return opt_arg(a, 0, "default", Value(0.0));
    }
  }
  if (name == "abs") return v.kind == K::Int ? Value(v.i < 0 ? -v.i : v.i) : Value(std::fabs(v.as_double()));
  if (name == "round") {
    const int64_t prec = opt_arg(a, 0, "precision", Value(int64_t(0))).i;
    const double m = std::pow(10.0, double(prec));
    return Value(std::round(v.as_double() * m) / m);
  }
  if (name == "sum" || name == "min" || name == "max") {
    const std::vector<Value> items = iterate(v, line);
    if (name == "sum") {
      Value acc(int64_t(0));
      for (const Value& x : items) acc = acc.kind == K::Int && x.kind == K::Int ? Value(acc.i + x.i) : Value(acc.as_double() + x.as_double());
      return acc;
    }
    if (items.empty()) return Value();
    Value best = items[0];
    for (const Value& x : items)
      if ((name == "min") == (compare(x, best) < 0) && compare(x, best) != 0) best = x;
    return best;
  }
  if (name == "indent") {
    const Value w = opt_arg(a, 0, "width", Value(int64_t(4)));
    const std::string pad = w.is_string() ? w.s : std::string(size_t(std::clamp<int64_t>(w.i, 0, 1000)), ' ');
    const bool first = opt_arg(a, 1, "first", Value(false)).truthy();
    const bool blank = opt_arg(a, 2, "blank", Value(false)).truthy();
    const std::string s = v.str();
    std::string out;
    size_t start = 0;
    bool is_first = true;
    while (start <= s.size()) {
      const size_t nl = s.find('\n', start);
      const std::string ln = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if ((!is_first || first) && (blank || !ln.empty())) out += pad;
      out += ln;
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
      is_first = false;
    }
    return Value(out);
  }
  if (name == "wordcount") return Value(int64_t(split(v.str(), Value(), -1).a->size()));
  if (name == "batch") {
    const int64_t n = std::max<int64_t>(1, arg(a, 0, "linecount", line).i);
    Array out;
    for (const Value& x : iterate(v, line)) {
      if (out.empty() || int64_t(out.back().a->size()) == n) out.push_back(Value::array());
      out.back().a->push_back(x);
    }
    return Value::array(std::move(out));
  }
  if (name == "center") {
    const int64_t w = opt_arg(a, 0, "width", Value(int64_t(80))).i;
    std::string s = v.str();
    const int64_t len = length(Value(s), line);
    if (len >= w) return Value(s);
    const int64_t left = (w - len) / 2;
    return Value(std::string(size_t(left), ' ') + s + std::string(size_t(w - len - left), ' '));
  }
  error_at(line, "unknown filter '" + name + "'");
}

bool apply_test(Context& c, const std::string& name, const Value& v, const Args& a, int line) {
  if (name == "defined") return !v.undefined();
  if (name == "undefined") return v.undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == K::Bool;
  if (name == "true") return v.kind == K::Bool && v.b;
  if (name == "false") return v.kind == K::Bool && !v.b;
  if (name == "integer") return v.kind == K::Int;
  if (name == "float") return v.kind == K::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_object();
  if (name == "iterable") return v.is_array() || v.is_object() || v.is_string();
  if (name == "sequence") return v.is_array() || v.is_object() || v.is_string();
  if (name == "callable") return v.kind == K::Function;
  if (name == "even" || name == "odd") {
    if (v.kind != K::Int) error_at(line, name + " needs an integer");
    return (v.i % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") {
    const int64_t d = arg(a, 0, "num", line).i;
    return d != 0 && v.kind == K::Int && v.i % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equal(v, arg(a, 0, "other", line));
  if (name == "ne" || name == "!=") return !equal(v, arg(a, 0, "other", line));
  if (name == "sameas") {
    const Value& o = arg(a, 0, "other", line);
    return v.kind == o.kind && (v.kind == K::None || v.kind == K::Undefined || equal(v, o));
  }
  if (name == "lt" || name == "lessthan" || name == "gt" || name == "greaterthan" || name == "le" || name == "ge") {
    int cmp;
    try {
      cmp = compare(v, arg(a, 0, "other", line));
    } catch (const Error& e) {
      error_at(line, e.what());
    }
    if (name == "lt" || name == "lessthan") return cmp < 0;
    if (name == "gt" || name == "greaterthan") return cmp > 0;
    return name == "le" ? cmp <= 0 : cmp >= 0;
  }
  if (name == "in") {
    const Value& seq = arg(a, 0, "seq", line);
    if (seq.is_string()) return v.is_string() && seq.s.find(v.s) != std::string::npos;
    if (seq.is_array()) return std::any_of(seq.a->begin(), seq.a->end(), [&](const Value& x) { return equal(x, v); });
    if (seq.is_object()) return v.is_string() && seq.find(v.s);
    return false;
  }
  if (name == "lower") return v.is_string() && map_case(v.s, 0) == v.s;
  if (name == "upper") return v.is_string() && map_case(v.s, 1) == v.s;
  error_at(line, "unknown test '" + name + "'");
}

void add_globals(std::unordered_map<std::string, Value>& g) {
  g["range"] = Value::function([](const Args& a) {
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) stop = a.pos[0].i;
    else if (a.pos.size() >= 2) start = a.pos[0].i, stop = a.pos[1].i, step = a.pos.size() > 2 ? a.pos[2].i : 1;
    else fail("range() needs arguments");
    if (step == 0) fail("range() step must not be zero");
    Array out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (out.size() >= 1000000) fail("range() too large");
      out.emplace_back(k);
    }
    return Value::array(std::move(out));
  });
  g["dict"] = Value::function([](const Args& a) {
    Value d = Value::object();
    if (!a.pos.empty() && a.pos[0].is_object())
      for (const auto& [k, v] : *a.pos[0].o) d.set(k, v);
    for (const auto& [k, v] : a.kw) d.set(k, v);
    return d;
  });
  g["namespace"] = Value::function([](const Args& a) {
    Value d = Value::object();
    d.is_namespace = true;
    if (!a.pos.empty() && a.pos[0].is_object())
      for (const auto& [k, v] : *a.pos[0].o) d.set(k, v);
    for (const auto& [k, v] : a.kw) d.set(k, v);
    return d;
  });
  g["raise_exception"] = Value::function([](const Args& a) -> Value {
    fail("chat template error: ", a.pos.empty() ? std::string("raise_exception") : a.pos[0].str());
  });
  g["strftime_now"] = Value::function([](const Args& a) {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[256];
    const std::string fmt = a.pos.empty() ? "%Y-%m-%d" : a.pos[0].str();
    const size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    return Value(std::string(buf, n));
  });
}

}  // namespace elm::jinja
