// Per-sequence key/value cache of one attention state on the CPU.
//
// Layout per sequence, head-major so one head's keys are contiguous for the attention tiles:
// K [kv_heads, cap, head_dim], V [kv_heads, cap, v_head_dim], pos [cap]. Entries are stored as
//   F32: the values;
//   F16: IEEE half (round to nearest even); halves the cache, the default for non-f32 models;
//   I8:  int8 per (head, slot) row with an f32 scale max|x| / 127 (round to nearest); a quarter.
// A full-context cache has cap = n_ctx and stores position p in slot p. A sliding-window cache is a
// ring of cap = window + max_batch slots (slot p % cap): after a whole step's keys are written, every
// key a query of that step may see (p_q - window < p_k <= p_q) is still present. pos[] records which
// position each slot holds (-1: empty), which is how truncation and masking work.
#pragma once
#include <cstdint>
#include <vector>

#include "core/zeroed_array.h"

#include "backend/cpu/vec_ops.h"
#include "core/dtype.h"
#include "core/thread_pool.h"

namespace elm::cpu {

class KvCache {
 public:
  KvCache(int max_seqs, int64_t n_ctx, int64_t window, int64_t max_batch, int64_t kv_heads, int64_t head_dim,
          int64_t v_head_dim, DType dtype = DType::F32);

  int64_t capacity() const { return cap_; }
  int64_t kv_heads() const { return kvh_; }
  int64_t head_dim() const { return d_; }
  int64_t v_head_dim() const { return dv_; }
  int64_t window() const { return window_; }
  DType dtype() const { return dtype_; }

  // Stores the k and v rows of the token at `pos` (k: kv_heads * head_dim floats).
  void write(int seq, int32_t pos, const float* k, const float* v);
  int64_t slot_of(int32_t pos) const { return window_ ? pos % cap_ : pos; }
  int32_t pos(int seq, int64_t slot) const { return pos_[size_t(seq)][size_t(slot)]; }

  // Rows [slot, slot + n) of one head as floats [n, head_dim] (or v_head_dim): a pointer into the
  // cache for F32 entries, else converted into `scratch` (n * dim floats) with `ops`.
  const float* keys(int seq, int64_t head, int64_t slot, int64_t n, float* scratch, const VecOps& ops) const;
  const float* values(int seq, int64_t head, int64_t slot, int64_t n, float* scratch, const VecOps& ops) const;

  // Rows [slot, ...) of one head as stored, for kernels that read F32 or F16 entries in place
  // (null for I8 entries, which need their row scales).
  const void* key_entries(int seq, int64_t head, int64_t slot) const { return entries(k_[size_t(seq)], d_, head, slot); }
  const void* value_entries(int seq, int64_t head, int64_t slot) const { return entries(v_[size_t(seq)], dv_, head, slot); }

  void reset(int seq);
  void truncate(int seq, int32_t n_past);
  size_t bytes() const;

 private:
  struct Plane {  // one of K, V for one sequence
    ZeroedArray<uint8_t> data;   // [kv_heads, cap, dim] entries
    std::vector<float> scales;   // I8: [kv_heads, cap]
  };
  void store(Plane& p, int64_t dim, int64_t slot, const float* x) const;
  const void* entries(const Plane& p, int64_t dim, int64_t head, int64_t slot) const {
    if (dtype_ == DType::I8) return nullptr;
    return p.data.data() + size_t(head * cap_ + slot) * size_t(dim) * (dtype_ == DType::F32 ? 4 : 2);
  }
  const float* rows(const Plane& p, int64_t dim, int64_t head, int64_t slot, int64_t n, float* scratch,
                    const VecOps& ops) const;

  int64_t cap_, window_, kvh_, d_, dv_;
  DType dtype_;
  std::vector<Plane> k_, v_;
  std::vector<std::vector<int32_t>> pos_;
};

// Causal attention of the step's queries over their sequences' caches (see ops.def, Attention).
// q [T, heads * head_dim] -> out [T, heads * v_head_dim].
struct AttentionParams {
  int64_t heads = 0;
  float scale = 1, softcap = 0;
  int64_t window = 0;
};
// Tiled over keys with an online softmax (flash-attention style): memory does not grow with the
// context, and every key tile is converted once for all query heads sharing its KV head (GQA) and
// for a block of consecutive tokens of the sequence, whose scores are one small float matmul
// (fgemm.h) of the block's queries against the tile's keys.
void attention(const float* q, int64_t T, const int32_t* positions, const int32_t* seqs, const KvCache& cache,
               const AttentionParams& p, float* out, ThreadPool& pool, Isa isa = active_isa());
// The plain reference: every query scores every cached key of its sequence, then a softmax.
void attention_ref(const float* q, int64_t T, const int32_t* positions, const int32_t* seqs, const KvCache& cache,
                   const AttentionParams& p, float* out);

}  // namespace elm::cpu
