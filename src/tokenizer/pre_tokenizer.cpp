#include "tokenizer/pre_tokenizer.h"

#include <array>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace elm {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// Applies a Split behaviour to a piece given the [begin, end) spans its pattern matched.
void split_by_matches(const std::string& s, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior b,
                      bool invert, std::vector<std::string>& out) {
  struct Span {
    size_t b, e;
    bool delim;
  };
  std::vector<Span> spans;
  size_t last = 0;
  for (const auto& [mb, me] : matches) {
    if (mb > last) spans.push_back({last, mb, invert});
    spans.push_back({mb, me, !invert});
    last = me;
  }
  if (last < s.size()) spans.push_back({last, s.size(), invert});

  std::vector<std::pair<size_t, size_t>> keep;
  bool prev_delim = false;
  switch (b) {
    case SplitBehavior::Removed:
      for (const Span& sp : spans)
        if (!sp.delim) keep.push_back({sp.b, sp.e});
      break;
    case SplitBehavior::Isolated:
      for (const Span& sp : spans) keep.push_back({sp.b, sp.e});
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Span& sp : spans) {
        if (sp.delim && !prev_delim && !keep.empty()) keep.back().second = sp.e;
        else keep.push_back({sp.b, sp.e});
        prev_delim = sp.delim;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& sp = spans[k];
        if (sp.delim && !prev_delim && !keep.empty()) keep.back().first = sp.b;
        else keep.push_back({sp.b, sp.e});
        prev_delim = sp.delim;
      }
      std::reverse(keep.begin(), keep.end());
      break;
    case SplitBehavior::Contiguous:
      for (size_t k = 0; k < spans.size(); ++k) {
        if (k > 0 && spans[k].delim == prev_delim) keep.back().second = spans[k].e;
        else keep.push_back({spans[k].b, spans[k].e});
        prev_delim = spans[k].delim;
      }
      break;
  }
  for (const auto& [kb, ke] : keep)
    if (ke > kb) out.emplace_back(s, kb, ke - kb);
}

class RegexSplit : public PreTokenizer {
 public:
  RegexSplit(const std::string& pattern, SplitBehavior b, bool invert) : re_(pattern), b_(b), invert_(invert) {}
  void split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    out.reserve(pieces.size() * 4);
    std::vector<std::pair<size_t, size_t>> m;
    for (const std::string& p : pieces) {
      m.clear();
      re_.for_each_match(p, [&](size_t b, size_t e) { m.emplace_back(b, e); });
      if (b_ == SplitBehavior::Isolated && !invert_) {  // the hot path of byte-level tokenizers
        size_t last = 0;
        for (const auto& [b, e] : m) {
          if (b > last) out.emplace_back(p, last, b - last);
          out.emplace_back(p, b, e - b);
          last = e;
        }
        if (last < p.size()) out.emplace_back(p, last, std::string::npos);
      } else {
        split_by_matches(p, m, b_, invert_, out);
      }
    }
    pieces.swap(out);
  }

 private:
  Regex re_;
  SplitBehavior b_;
  bool invert_;
};

// A literal delimiter (Split with {"String": ...}).
class LiteralSplit : public PreTokenizer {
 public:
  LiteralSplit(std::string delim, SplitBehavior b, bool invert) : d_(std::move(delim)), b_(b), invert_(invert) {}
  void split(std::vector<std::string>& pieces) const override {
    if (d_.empty()) return;
    std::vector<std::string> out;
    std::vector<std::pair<size_t, size_t>> m;
    for (const std::string& p : pieces) {
      m.clear();
      for (size_t k = p.find(d_); k != std::string::npos; k = p.find(d_, k + d_.size())) m.emplace_back(k, k + d_.size());
      split_by_matches(p, m, b_, invert_, out);
    }
    pieces.swap(out);
  }

 private:
  std::string d_;
  SplitBehavior b_;
  bool invert_;
};

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : prefix_(add_prefix_space) {
    if (use_regex) words_ = std::make_unique<RegexSplit>(kGpt2Pattern, SplitBehavior::Isolated, false);
    for (int b = 0; b < 256; ++b) {
      map_[size_t(b)].clear();
      utf8::append(map_[size_t(b)], utf8::byte_to_cp(uint8_t(b)));
    }
  }
  void split(std::vector<std::string>& pieces) const override {
    if (prefix_)
      for (std::string& p : pieces)
        if (p.empty() || p[0] != ' ') p.insert(0, " ");
    if (words_) words_->split(pieces);
    std::string mapped;
    for (std::string& p : pieces) {
      mapped.clear();
      for (char c : p) mapped += map_[static_cast<unsigned char>(c)];
      p.swap(mapped);
    }
  }

 private:
  bool prefix_;
  std::unique_ptr<RegexSplit> words_;
  std::array<std::string, 256> map_;
};

// Replaces spaces by the replacement (U+2581), optionally prepends one, and splits before each.
class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, std::string scheme, bool split)
      : rep_(std::move(replacement)), scheme_(std::move(scheme)), split_(split) {}
  void split(std::vector<std::string>& pieces) const override {
    std::vector<std::string> out;
    for (size_t k = 0; k < pieces.size(); ++k) {
      std::string s;
      for (char c : pieces[k]) {
        if (c == ' ') s += rep_;
        else s.push_back(c);
      }
      // "first" prepends only to the first piece of the text, "always" to every piece.
      const bool prepend = scheme_ == "always" || (scheme_ == "first" && k == 0);
      if (prepend && s.compare(0, rep_.size(), rep_) != 0) s.insert(0, rep_);
      if (!split_) {
        out.push_back(std::move(s));
        continue;
      }
      std::vector<std::pair<size_t, size_t>> m;
      for (size_t p = s.find(rep_); p != std::string::npos; p = s.find(rep_, p + rep_.size()))
        m.emplace_back(p, p + rep_.size());
      split_by_matches(s, m, SplitBehavior::MergedWithNext, false, out);
    }
    pieces.swap(out);
  }

 private:
  std::string rep_, scheme_;
  bool split_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(std::vector<std::string>& pieces) const override {
    for (const auto& p : parts_) p->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

SplitBehavior behavior_of(const std::string& s) {
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  fail("unknown split behavior '", s, "'");
}

// ASCII punctuation (Rust's is_ascii_punctuation) or any Unicode punctuation.
constexpr const char* kPunct = R"([!-/:-@\[-`{-~]|\p{P})";

}  // namespace

std::unique_ptr<PreTokenizer> make_regex_split(const std::string& regex, SplitBehavior b, bool invert) {
  return std::make_unique<RegexSplit>(regex, b, invert);
}
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevel>(add_prefix_space, use_regex);
}
std::unique_ptr<PreTokenizer> make_digits(bool individual) {
  return std::make_unique<RegexSplit>(R"(\p{N})", individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false);
}
std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) {
  return std::make_unique<Sequence>(std::move(parts));
}

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = j.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& p : j.at("pretokenizers"))
      if (auto q = from_json(p)) parts.push_back(std::move(q));
    return make_sequence_pre_tokenizer(std::move(parts));
  }
  if (type == "ByteLevel") return make_byte_level(j.value("add_prefix_space", true), j.value("use_regex", true));
  if (type == "Split") {
    const auto& p = j.at("pattern");
    const SplitBehavior b = behavior_of(j.at("behavior").get<std::string>());
    const bool invert = j.value("invert", false);
    if (p.contains("Regex")) return std::make_unique<RegexSplit>(p["Regex"].get<std::string>(), b, invert);
    if (p.contains("String")) return std::make_unique<LiteralSplit>(p["String"].get<std::string>(), b, invert);
    fail("Split pattern must be {\"String\": ...} or {\"Regex\": ...}");
  }
  if (type == "Metaspace") {
    std::string scheme = j.value("prepend_scheme", "");
    if (scheme.empty()) scheme = j.value("add_prefix_space", true) ? "always" : "never";
    return std::make_unique<Metaspace>(j.value("replacement", "\u2581"), scheme, j.value("split", true));
  }
  if (type == "Digits") return make_digits(j.value("individual_digits", false));
  if (type == "Whitespace") return make_regex_split(R"(\w+|[^\w\s]+)", SplitBehavior::Removed, true);
  if (type == "WhitespaceSplit") return make_regex_split(R"(\s+)", SplitBehavior::Removed, false);
  if (type == "Punctuation") return make_regex_split(kPunct, behavior_of(j.value("behavior", "Isolated")), false);
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    parts.push_back(make_regex_split(R"(\s+)", SplitBehavior::Removed, false));
    parts.push_back(make_regex_split(kPunct, SplitBehavior::Isolated, false));
    return make_sequence_pre_tokenizer(std::move(parts));
  }
  fail("unsupported pre-tokenizer type '", type, "'");
}

}  // namespace elm
