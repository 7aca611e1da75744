#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace elm {

namespace {

bool is_ascii(const std::string& s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

std::string pattern_of(const nlohmann::json& p, bool& is_regex) {
  // {"String": "x"} is a literal, {"Regex": "x"} a pattern.
  if (p.contains("String")) return is_regex = false, p["String"].get<std::string>();
  if (p.contains("Regex")) return is_regex = true, p["Regex"].get<std::string>();
  fail("pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(std::string form) : form_(std::move(form)) {}
  void normalize(std::string& s) const override {
    // ASCII is invariant under every form (NFKC included), and it is the common case.
    if (!is_ascii(s)) s = unicode_normalize(s, form_);
  }

 private:
  std::string form_;
};

class Lowercase : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) utf8::append(out, uint32_t(utf8proc_tolower(utf8proc_int32_t(utf8::next(s, i)))));
    s.swap(out);
  }
};

class Replace : public Normalizer {
 public:
  Replace(std::string pattern, bool is_regex, std::string content) : from_(std::move(pattern)), to_(std::move(content)) {
    if (is_regex) re_ = std::make_unique<Regex>(from_);
  }
  void normalize(std::string& s) const override {
    std::string out;
    size_t last = 0;
    if (re_) {
      re_->for_each_match(s, [&](size_t b, size_t e) {
        out.append(s, last, b - last);
        out += to_;
        last = e;
      });
    } else {
      if (from_.empty()) return;
      for (size_t p = s.find(from_); p != std::string::npos; p = s.find(from_, last)) {
        out.append(s, last, p - last);
        out += to_;
        last = p + from_.size();
      }
    }
    if (last == 0 && out.empty()) return;
    out.append(s, last, std::string::npos);
    s.swap(out);
  }

 private:
  std::string from_, to_;
  std::unique_ptr<Regex> re_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : p_(std::move(p)) {}
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, p_);
  }

 private:
  std::string p_;
};

bool is_space_cp(uint32_t c) { return utf8proc_category(utf8proc_int32_t(c)) == UTF8PROC_CATEGORY_ZS || (c >= 9 && c <= 13) || c == 0x85 || c == 0x2028 || c == 0x2029; }

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left_) {
      while (b < e) {
        size_t i = b;
        if (!is_space_cp(utf8::next(s, i))) break;
        b = i;
      }
    }
    if (right_) {
      while (e > b) {
        size_t k = e - 1;
        while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t i = k;
        if (!is_space_cp(utf8::next(s, i))) break;
        e = k;
      }
    }
    s = s.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class StripAccents : public Normalizer {
 public:
  void normalize(std::string& s) const override {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
      const uint32_t c = utf8::next(s, i);
      if (utf8proc_category(utf8proc_int32_t(c)) != UTF8PROC_CATEGORY_MN) utf8::append(out, c);
    }
    s.swap(out);
  }
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& s) const override {
    for (const auto& p : parts_) p->normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::string unicode_normalize(const std::string& s, const std::string& form) {
  int opts = UTF8PROC_STABLE;
  if (form == "NFC") opts |= UTF8PROC_COMPOSE;
  else if (form == "NFD") opts |= UTF8PROC_DECOMPOSE;
  else if (form == "NFKC") opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  else if (form == "NFKD") opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  else fail("unknown Unicode normalization form ", form);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                                          &out, utf8proc_option_t(opts));
  if (n < 0) fail("Unicode normalization failed: ", utf8proc_errmsg(n));
  std::string r(reinterpret_cast<const char*>(out), size_t(n));
  std::free(out);
  return r;
}

std::unique_ptr<Normalizer> make_replace_normalizer(const std::string& from, const std::string& to) {
  return std::make_unique<Replace>(from, false, to);
}
std::unique_ptr<Normalizer> make_prepend_normalizer(const std::string& prefix) { return std::make_unique<Prepend>(prefix); }
std::unique_ptr<Normalizer> make_sequence_normalizer(std::vector<std::unique_ptr<Normalizer>> parts) {
  return std::make_unique<Sequence>(std::move(parts));
}

std::unique_ptr<Normalizer> Normalizer::from_json(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = j.at("type").get<std::string>();
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") return std::make_unique<UnicodeForm>(type);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Replace") {
    bool is_regex = false;
    std::string p = pattern_of(j.at("pattern"), is_regex);
    return std::make_unique<Replace>(std::move(p), is_regex, j.at("content").get<std::string>());
  }
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Strip") return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& n : j.at("normalizers"))
      if (auto p = from_json(n)) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  fail("unsupported normalizer type '", type, "'");
}

}  // namespace elm
