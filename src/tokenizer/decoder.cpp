#include "tokenizer/decoder.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace elm {

namespace {

// Byte-level: map every character back to its byte; all tokens become one string.
class ByteLevel : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool raw) const override {
    std::string out;
    for (const std::string& t : tokens) {
      for (size_t i = 0; i < t.size();) {
        const size_t start = i;
        const int b = utf8::byte_from_cp(utf8::next(t, i));
        if (b >= 0) out.push_back(char(b));
        else out.append(t, start, i - start);  // not in the alphabet (e.g. an added token): as is
      }
    }
    tokens.assign(1, raw ? std::move(out) : utf8::sanitize(out));
  }
};

class Replace : public Decoder {
 public:
  Replace(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void decode(std::vector<std::string>& tokens, bool) const override {
    if (from_.empty()) return;
    for (std::string& t : tokens) {
      for (size_t p = t.find(from_); p != std::string::npos; p = t.find(from_, p + to_.size())) t.replace(p, from_.size(), to_);
    }
  }

 private:
  std::string from_, to_;
};

int byte_token(const std::string& t) {  // "<0xNN>" -> NN, else -1
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = t[size_t(k)];
    v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1000);
  }
  return v >= 0 ? v : -1;
}

// Runs of <0xNN> tokens become the bytes they spell; a run that is not valid UTF-8 becomes one
// U+FFFD per byte (HF's rule).
class ByteFallback : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool raw) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t nbytes = 0;
    const auto flush = [&] {
      if (nbytes == 0) return;
      if (raw || utf8::is_valid(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t k = 0; k < nbytes; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      nbytes = 0;
    };
    for (std::string& t : tokens) {
      const int b = byte_token(t);
      if (b >= 0) {
        bytes.push_back(char(b));
        ++nbytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class Fuse : public Decoder {
 public:
  void decode(std::vector<std::string>& tokens, bool) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Strips up to `start` leading and `stop` trailing copies of one character from every token.
class Strip : public Decoder {
 public:
  Strip(std::string content, int start, int stop) : c_(std::move(content)), start_(start), stop_(stop) {}
  void decode(std::vector<std::string>& tokens, bool) const override {
    if (c_.empty()) return;
    for (std::string& t : tokens) {
      for (int k = 0; k < start_ && t.compare(0, c_.size(), c_) == 0; ++k) t.erase(0, c_.size());
      for (int k = 0; k < stop_ && t.size() >= c_.size() && t.compare(t.size() - c_.size(), c_.size(), c_) == 0; ++k)
        t.erase(t.size() - c_.size());
    }
  }

 private:
  std::string c_;
  int start_, stop_;
};

// Metaspace: U+2581 back to spaces, dropping the space the pre-tokenizer prepended to the first token.
class Metaspace : public Decoder {
 public:
  Metaspace(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
  void decode(std::vector<std::string>& tokens, bool) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string& t = tokens[k];
      std::string out;
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, rep_.size(), rep_) == 0) {
          if (!(k == 0 && p == 0 && strip_first_)) out.push_back(' ');
          p += rep_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      t.swap(out);
    }
  }

 private:
  std::string rep_;
  bool strip_first_;
};

class WordPiece : public Decoder {
 public:
  explicit WordPiece(std::string prefix) : prefix_(std::move(prefix)) {}
  void decode(std::vector<std::string>& tokens, bool) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string& t = tokens[k];
      if (k > 0 && t.compare(0, prefix_.size(), prefix_) == 0) t.erase(0, prefix_.size());
      else if (k > 0) t.insert(0, " ");
    }
  }

 private:
  std::string prefix_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode(std::vector<std::string>& tokens, bool raw) const override {
    for (const auto& p : parts_) p->decode(tokens, raw);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevel>(); }
std::unique_ptr<Decoder> make_replace_decoder(const std::string& from, const std::string& to) {
  return std::make_unique<Replace>(from, to);
}
std::unique_ptr<Decoder> make_byte_fallback_decoder() { return std::make_unique<ByteFallback>(); }
std::unique_ptr<Decoder> make_fuse_decoder() { return std::make_unique<Fuse>(); }
std::unique_ptr<Decoder> make_strip_decoder(const std::string& content, int start, int stop) {
  return std::make_unique<Strip>(content, start, stop);
}
std::unique_ptr<Decoder> make_sequence_decoder(std::vector<std::unique_ptr<Decoder>> parts) {
  return std::make_unique<Sequence>(std::move(parts));
}

std::unique_ptr<Decoder> Decoder::from_json(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = j.at("type").get<std::string>();
  if (type == "ByteLevel") return make_byte_level_decoder();
  if (type == "Replace") {
    const auto& p = j.at("pattern");
    ELM_CHECK(p.contains("String"), "Replace decoder: only string patterns are supported");
    return make_replace_decoder(p["String"].get<std::string>(), j.at("content").get<std::string>());
  }
  if (type == "ByteFallback") return make_byte_fallback_decoder();
  if (type == "Fuse") return make_fuse_decoder();
  if (type == "Strip") return make_strip_decoder(j.at("content").get<std::string>(), j.value("start", 0), j.value("stop", 0));
  if (type == "Metaspace") {
    std::string scheme = j.value("prepend_scheme", "");
    if (scheme.empty()) scheme = j.value("add_prefix_space", true) ? "always" : "never";
    return std::make_unique<Metaspace>(j.value("replacement", "\u2581"), scheme != "never");
  }
  if (type == "WordPiece") return std::make_unique<WordPiece>(j.value("prefix", "##"));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& d : j.at("decoders"))
      if (auto p = from_json(d)) parts.push_back(std::move(p));
    return make_sequence_decoder(std::move(parts));
  }
  fail("unsupported decoder type '", type, "'");
}

}  // namespace elm
