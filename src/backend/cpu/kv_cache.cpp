#include "backend/cpu/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace elm::cpu {

KvCache::KvCache(int max_seqs, int64_t n_ctx, int64_t window, int64_t max_batch, int64_t kv_heads, int64_t head_dim,
                 int64_t v_head_dim, DType dtype)
    : cap_(window > 0 ? std::min(n_ctx, window + max_batch) : n_ctx),
      window_(window > 0 && window + max_batch < n_ctx ? window : 0),
      kvh_(kv_heads),
      d_(head_dim),
      dv_(v_head_dim),
      dtype_(dtype) {
  // A window at least as long as the context is a full cache (window_ = 0 keeps slot = position);
  // the attention op still applies the window mask from its own attribute.
  ELM_CHECK(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::I8, "KV cache entries must be F32, F16 or I8, not ",
            dtype_name(dtype));
  const size_t esize = dtype == DType::F32 ? 4 : dtype == DType::F16 ? 2 : 1;
  k_.resize(size_t(max_seqs));
  v_.resize(size_t(max_seqs));
  pos_.resize(size_t(max_seqs));
  for (int s = 0; s < max_seqs; ++s) {
    k_[size_t(s)].data = ZeroedArray<uint8_t>(size_t(kvh_ * cap_ * d_) * esize);
    v_[size_t(s)].data = ZeroedArray<uint8_t>(size_t(kvh_ * cap_ * dv_) * esize);
    if (dtype == DType::I8) {
      k_[size_t(s)].scales.assign(size_t(kvh_ * cap_), 0.f);
      v_[size_t(s)].scales.assign(size_t(kvh_ * cap_), 0.f);
    }
    pos_[size_t(s)].assign(size_t(cap_), -1);
  }
}

void KvCache::store(Plane& p, int64_t dim, int64_t slot, const float* x) const {
  for (int64_t h = 0; h < kvh_; ++h) {
    const float* xh = x + h * dim;
    const size_t row = size_t(h * cap_ + slot);
    if (dtype_ == DType::F32) {
      std::memcpy(p.data.data() + row * size_t(dim) * 4, xh, size_t(dim) * 4);
    } else if (dtype_ == DType::F16) {
      auto* o = reinterpret_cast<uint16_t*>(p.data.data()) + row * size_t(dim);
      vec_ops().f32_to_f16(xh, o, dim);
    } else {
      float amax = 0;
      for (int64_t i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(xh[i]));
      const float scale = amax / 127.f, inv = amax > 0 ? 127.f / amax : 0.f;
      auto* o = reinterpret_cast<int8_t*>(p.data.data()) + row * size_t(dim);
      for (int64_t i = 0; i < dim; ++i) o[i] = int8_t(std::nearbyint(std::clamp(xh[i] * inv, -127.f, 127.f)));
      p.scales[row] = scale;
    }
  }
}

void KvCache::write(int seq, int32_t pos, const float* k, const float* v) {
  ELM_CHECK(seq >= 0 && size_t(seq) < k_.size(), "sequence ", seq, " is out of range");
  ELM_CHECK(pos >= 0 && (window_ || pos < cap_), "position ", pos, " is beyond the context (", cap_, ")");
  const int64_t s = slot_of(pos);
  store(k_[size_t(seq)], d_, s, k);
  store(v_[size_t(seq)], dv_, s, v);
  pos_[size_t(seq)][size_t(s)] = pos;
}

const float* KvCache::rows(const Plane& p, int64_t dim, int64_t head, int64_t slot, int64_t n, float* scratch,
                           const VecOps& ops) const {
  const size_t row = size_t(head * cap_ + slot);
  if (dtype_ == DType::F32) return reinterpret_cast<const float*>(p.data.data()) + row * size_t(dim);
  if (dtype_ == DType::F16) {
    ops.f16_to_f32(reinterpret_cast<const uint16_t*>(p.data.data()) + row * size_t(dim), scratch, n * dim);
    return scratch;
  }
  const auto* q = reinterpret_cast<const int8_t*>(p.data.data()) + row * size_t(dim);
  for (int64_t i = 0; i < n; ++i) ops.i8_to_f32(q + i * dim, p.scales[row + size_t(i)], scratch + i * dim, dim);
  return scratch;
}

const float* KvCache::keys(int seq, int64_t head, int64_t slot, int64_t n, float* scratch, const VecOps& ops) const {
  return rows(k_[size_t(seq)], d_, head, slot, n, scratch, ops);
}

const float* KvCache::values(int seq, int64_t head, int64_t slot, int64_t n, float* scratch, const VecOps& ops) const {
  return rows(v_[size_t(seq)], dv_, head, slot, n, scratch, ops);
}

void KvCache::reset(int seq) { std::fill(pos_[size_t(seq)].begin(), pos_[size_t(seq)].end(), -1); }

void KvCache::truncate(int seq, int32_t n_past) {
  for (int32_t& p : pos_[size_t(seq)])
    if (p >= n_past) p = -1;
}

size_t KvCache::bytes() const {
  size_t n = 0;
  for (size_t s = 0; s < k_.size(); ++s)
    n += k_[s].data.size() + v_[s].data.size() + (k_[s].scales.size() + v_[s].scales.size()) * 4 + pos_[s].size() * 4;
  return n;
}

}  // namespace elm::cpu
