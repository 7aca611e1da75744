// Per-sequence key/value cache of one attention state on the CPU.
//
// Layout per sequence: K [cap, kv_heads, head_dim], V [cap, kv_heads, v_head_dim], pos [cap].
// A full-context cache has cap = n_ctx and stores position p in slot p. A sliding-window cache is a
// ring of cap = window + max_batch slots (slot p % cap): after a whole step's keys are written, every
// key a query of that step may see (p_q - window < p_k <= p_q) is still present. pos[] records which
// position each slot holds (-1: empty), which is how truncation and masking work.
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace elm::cpu {

class KvCache {
 public:
  KvCache(int max_seqs, int64_t n_ctx, int64_t window, int64_t max_batch, int64_t kv_heads, int64_t head_dim,
          int64_t v_head_dim);

  int64_t capacity() const { return cap_; }
  int64_t kv_heads() const { return kvh_; }
  int64_t head_dim() const { return d_; }
  int64_t v_head_dim() const { return dv_; }
  int64_t window() const { return window_; }

  // Stores the k and v rows of the token at `pos` (k: kv_heads * head_dim floats).
  void write(int seq, int32_t pos, const float* k, const float* v);
  int64_t slot_of(int32_t pos) const { return window_ ? pos % cap_ : pos; }
  const float* k(int seq, int64_t slot) const { return k_[size_t(seq)].data() + slot * kvh_ * d_; }
  const float* v(int seq, int64_t slot) const { return v_[size_t(seq)].data() + slot * kvh_ * dv_; }
  int32_t pos(int seq, int64_t slot) const { return pos_[size_t(seq)][size_t(slot)]; }

  void reset(int seq);
  void truncate(int seq, int32_t n_past);
  size_t bytes() const;

 private:
  int64_t cap_, window_, kvh_, d_, dv_;
  std::vector<std::vector<float>> k_, v_;
  std::vector<std::vector<int32_t>> pos_;
};

// Causal attention of the step's queries over their sequences' caches (see ops.def, Attention).
// q [T, heads * head_dim] -> out [T, heads * v_head_dim].
struct AttentionParams {
  int64_t heads = 0;
  float scale = 1, softcap = 0;
  int64_t window = 0;
};
void attention(const float* q, int64_t T, const int32_t* positions, const int32_t* seqs, const KvCache& cache,
               const AttentionParams& p, float* out, ThreadPool& pool);

}  // namespace elm::cpu
