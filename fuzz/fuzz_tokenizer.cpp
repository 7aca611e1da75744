// Fuzzes the tokenizer: arbitrary bytes as text for real tokenizers (no crash; decode(encode(text))
// == text for lossless ones; streaming decode == whole decode), and as tokenizer.json (a clean
// elm::Error or a working tokenizer). ELM_FUZZ_TOKENIZERS=dir1:dir2 overrides the tokenizers used.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

std::vector<std::shared_ptr<elm::Tokenizer>>& tokenizers() {
  static std::vector<std::shared_ptr<elm::Tokenizer>> t;
  return t;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string dirs = std::getenv("ELM_FUZZ_TOKENIZERS") ? std::getenv("ELM_FUZZ_TOKENIZERS") : "";
  if (dirs.empty()) {
    const std::string s = ELM_SHARED_DIR;
    dirs = s + "/tokenizers/llama3:" + s + "/models/stories260k/hf:" + s + "/tokenizers/qwen3";
  }
  for (size_t p = 0; p <= dirs.size();) {
    const size_t q = std::min(dirs.find(':', p), dirs.size());
    const std::string d = dirs.substr(p, q - p);
    if (std::filesystem::exists(d + "/tokenizer.json")) tokenizers().push_back(elm::Tokenizer::from_dir(d));
    p = q + 1;
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 4 == 3) {  // the input is a tokenizer.json
    try {
      auto t = elm::Tokenizer::from_json(input);
      t->decode(t->encode("fuzz text 123"));
    } catch (const elm::Error&) {
    }
    return 0;
  }
  for (const auto& t : tokenizers()) {
    const std::vector<int32_t> ids = t->encode(input, data[0] & 1);
    const std::string text = t->decode(ids);
    check(elm::utf8::is_valid(text), "decode produced invalid UTF-8");
    if (t->lossless() && !(data[0] & 1)) check(text == elm::utf8::sanitize(input), "lossless round trip failed");
    elm::StreamDecoder s(*t, false);
    std::string streamed;
    for (int32_t id : ids) streamed += s.push(id);
    streamed += s.flush();
    check(streamed == text, "streamed decode differs from decode");
    std::vector<int32_t> junk;  // ids out of range decode to nothing, never crash
    for (size_t i = 0; i + 4 <= input.size() && junk.size() < 64; i += 4) {
      int32_t v;
      std::memcpy(&v, input.data() + i, 4);
      junk.push_back(v);
    }
    check(elm::utf8::is_valid(t->decode(junk)), "decode of arbitrary ids produced invalid UTF-8");
  }
  return 0;
}
