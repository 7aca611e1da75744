#include "backend/cpu/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace elm::cpu {

KvCache::KvCache(int max_seqs, int64_t n_ctx, int64_t window, int64_t max_batch, int64_t kv_heads, int64_t head_dim,
                 int64_t v_head_dim)
    : cap_(window > 0 ? std::min(n_ctx, window + max_batch) : n_ctx),
      window_(window > 0 && window + max_batch < n_ctx ? window : 0),
      kvh_(kv_heads),
      d_(head_dim),
      dv_(v_head_dim) {
  // A window at least as long as the context is a full cache (window_ = 0 keeps slot = position);
  // the attention op still applies the window mask from its own attribute.
  k_.resize(size_t(max_seqs));
  v_.resize(size_t(max_seqs));
  pos_.resize(size_t(max_seqs));
  for (int s = 0; s < max_seqs; ++s) {
    k_[size_t(s)].assign(size_t(cap_ * kvh_ * d_), 0.f);
    v_[size_t(s)].assign(size_t(cap_ * kvh_ * dv_), 0.f);
    pos_[size_t(s)].assign(size_t(cap_), -1);
  }
}

void KvCache::write(int seq, int32_t pos, const float* k, const float* v) {
  ELM_CHECK(seq >= 0 && size_t(seq) < k_.size(), "sequence ", seq, " is out of range");
  ELM_CHECK(pos >= 0 && (window_ || pos < cap_), "position ", pos, " is beyond the context (", cap_, ")");
  const int64_t s = slot_of(pos);
  std::memcpy(k_[size_t(seq)].data() + s * kvh_ * d_, k, size_t(kvh_ * d_) * 4);
  std::memcpy(v_[size_t(seq)].data() + s * kvh_ * dv_, v, size_t(kvh_ * dv_) * 4);
  pos_[size_t(seq)][size_t(s)] = pos;
}

void KvCache::reset(int seq) { std::fill(pos_[size_t(seq)].begin(), pos_[size_t(seq)].end(), -1); }

void KvCache::truncate(int seq, int32_t n_past) {
  for (int32_t& p : pos_[size_t(seq)])
    if (p >= n_past) p = -1;
}

size_t KvCache::bytes() const { return k_.size() * size_t(cap_ * kvh_ * (d_ + dv_) * 4 + cap_ * 4); }

}  // namespace elm::cpu
