// Splits a template into text and tags, applying Jinja's whitespace control the way transformers
// configures it: trim_blocks and lstrip_blocks on, '-' strips all whitespace on that side, '+'
// keeps it.
#include "chat/jinja_ast.h"

namespace elm::jinja {

namespace {
struct RawTag {
  Token::Kind kind;  // Text tokens are not produced here
  bool comment;
  std::string inner;
  bool strip_left, strip_right, keep_left;
  int line;
  size_t begin, end;  // byte range of the whole tag in the source
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
}  // namespace

std::vector<Token> lex_template(const std::string& src) {
  std::vector<RawTag> tags;
  int line = 1;
  size_t i = 0, line_counted = 0;
  const auto count_lines = [&](size_t upto) {
    for (; line_counted < upto && line_counted < src.size(); ++line_counted)
      if (src[line_counted] == '\n') ++line;
  };
  while (true) {
    const size_t open = src.find('{', i);
    if (open == std::string::npos || open + 1 >= src.size()) break;
    const char k = src[open + 1];
    if (k != '{' && k != '%' && k != '#') {
      i = open + 1;
      continue;
    }
    count_lines(open);
    RawTag t{};
    t.line = line;
    t.begin = open;
    t.comment = k == '#';
    t.kind = k == '{' ? Token::Kind::Expr : Token::Kind::Stmt;
    size_t p = open + 2;
    if (p < src.size() && src[p] == '-') t.strip_left = true, ++p;
    else if (p < src.size() && src[p] == '+') t.keep_left = true, ++p;
    const std::string close = k == '{' ? "}}" : k == '%' ? "%}" : "#}";
    size_t q;
    if (k == '{') {
      // Skip quoted strings: "}}" may appear inside them.
      q = p;
      char quote = 0;
      for (; q + 1 < src.size(); ++q) {
        if (quote) {
          if (src[q] == '\\') ++q;
          else if (src[q] == quote) quote = 0;
        } else if (src[q] == '\'' || src[q] == '"') {
          quote = src[q];
        } else if (src[q] == '}' && src[q + 1] == '}') {
          break;
        }
      }
      if (q + 1 >= src.size()) q = std::string::npos;
    } else {
      q = src.find(close, p);
    }
    if (q == std::string::npos) error_at(line, "unclosed tag");
    size_t inner_end = q;
    if (inner_end > p && src[inner_end - 1] == '-') t.strip_right = true, --inner_end;
    else if (inner_end > p && src[inner_end - 1] == '+' && k != '{') --inner_end;
    t.inner = src.substr(p, inner_end - p);
    t.end = q + 2;
    // {% raw %}...{% endraw %}: everything up to endraw is text.
    if (k == '%') {
      size_t a = 0;
      while (a < t.inner.size() && is_space(t.inner[a])) ++a;
      if (t.inner.compare(a, 3, "raw") == 0 && (a + 3 == t.inner.size() || is_space(t.inner[a + 3]))) {
        size_t e = t.end;
        for (;;) {
          const size_t s = src.find("{%", e);
          if (s == std::string::npos) error_at(line, "unclosed raw block");
          size_t b = s + 2;
          if (b < src.size() && (src[b] == '-' || src[b] == '+')) ++b;
          while (b < src.size() && is_space(src[b])) ++b;
          if (src.compare(b, 6, "endraw") == 0) {
            RawTag text_tag = t;
            text_tag.kind = Token::Kind::Text;
            text_tag.inner = src.substr(t.end, s - t.end);
            tags.push_back(t);  // the raw tag itself renders nothing
            tags.back().comment = true;
            const size_t ce = src.find("%}", b);
            if (ce == std::string::npos) error_at(line, "unclosed endraw");
            RawTag end_tag = t;
            end_tag.comment = true;
            end_tag.strip_left = src[s + 2] == '-';
            end_tag.strip_right = ce > 0 && src[ce - 1] == '-';
            end_tag.begin = s;
            end_tag.end = ce + 2;
            text_tag.begin = t.end;
            text_tag.end = s;
            tags.push_back(text_tag);
            tags.push_back(end_tag);
            i = ce + 2;
            break;
          }
          e = s + 2;
        }
        continue;
      }
    }
    tags.push_back(std::move(t));
    i = q + 2;
  }

  // Text between tags, with whitespace control applied.
  std::vector<Token> out;
  size_t pos = 0;
  const RawTag* prev = nullptr;
  for (size_t n = 0; n <= tags.size(); ++n) {
    const RawTag* next = n < tags.size() ? &tags[n] : nullptr;
    if (next && next->kind == Token::Kind::Text) {  // raw block contents: verbatim
      out.push_back({Token::Kind::Text, next->inner, next->line});
      pos = next->end;
      prev = nullptr;
      continue;
    }
    std::string text = src.substr(pos, (next ? next->begin : src.size()) - pos);
    if (prev) {
      if (prev->strip_right) {
        size_t a = 0;
        while (a < text.size() && is_space(text[a])) ++a;
        text.erase(0, a);
      } else if (prev->kind == Token::Kind::Stmt) {  // trim_blocks: one newline after a block tag
        if (text.compare(0, 1, "\n") == 0) text.erase(0, 1);
        else if (text.compare(0, 2, "\r\n") == 0) text.erase(0, 2);
      }
    }
    if (next) {
      if (next->strip_left) {
        size_t e = text.size();
        while (e > 0 && is_space(text[e - 1])) --e;
        text.erase(e);
      } else if (next->kind == Token::Kind::Stmt && !next->keep_left) {
        // lstrip_blocks: spaces and tabs between the line start and a block tag go.
        size_t e = text.size();
        while (e > 0 && (text[e - 1] == ' ' || text[e - 1] == '\t')) --e;
        size_t k = next->begin;
        while (k > 0 && (src[k - 1] == ' ' || src[k - 1] == '\t')) --k;
        const bool at_line_start = k == 0 || src[k - 1] == '\n';
        if (at_line_start) text.erase(e);
      }
    }
    if (!text.empty()) out.push_back({Token::Kind::Text, std::move(text), prev ? prev->line : 1});
    if (!next) break;
    if (!next->comment) out.push_back({next->kind, next->inner, next->line});
    prev = next;
    pos = next->end;
  }
  return out;
}

}  // namespace elm::jinja
