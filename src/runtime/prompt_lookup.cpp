#include "runtime/prompt_lookup.h"

#include <algorithm>

#include "core/error.h"

namespace elm {

PromptLookup::PromptLookup(int ngram_max, int ngram_min) : ngram_max_(ngram_max), ngram_min_(ngram_min) {
  ELM_CHECK(ngram_min >= 1 && ngram_max >= ngram_min, "prompt lookup needs 1 <= n-gram size (got ", ngram_min, "..",
            ngram_max, ")");
}

std::string PromptLookup::name() const { return "lookup(" + std::to_string(ngram_max_) + ")"; }

void PromptLookup::propose(std::span<const int32_t> h, int max_tokens, const Sampler&, Draft& out) {
  out.clear();
  const size_t H = h.size();
  if (max_tokens <= 0 || H < 2) return;
  for (size_t n = std::min(size_t(ngram_max_), H - 1); n >= size_t(ngram_min_); --n) {
    const auto pattern = h.subspan(H - n);
    // Latest start j < H - n whose n tokens equal the suffix: the continuation h[j + n ...] is then
    // non-empty.
    for (size_t j = H - n; j-- > 0;) {
      if (!std::equal(pattern.begin(), pattern.end(), h.begin() + long(j))) continue;
      const size_t from = j + n, len = std::min(size_t(max_tokens), H - from);
      out.tokens.assign(h.begin() + long(from), h.begin() + long(from + len));
      out.q.assign(len, {});
      return;
    }
  }
}

}  // namespace elm
