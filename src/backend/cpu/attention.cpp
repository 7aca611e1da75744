#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/kv_cache.h"

namespace elm::cpu {

void attention(const float* q, int64_t T, const int32_t* positions, const int32_t* seqs, const KvCache& cache,
               const AttentionParams& p, float* out, ThreadPool& pool) {
  const int64_t H = p.heads, KVH = cache.kv_heads(), D = cache.head_dim(), DV = cache.v_head_dim();
  const int64_t group = H / KVH, cap = cache.capacity();
  pool.parallel_for(T * H, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(static_cast<size_t>(cap));
    std::vector<int64_t> slots(static_cast<size_t>(cap));
    std::vector<float> acc(static_cast<size_t>(DV));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / H, h = i % H, kvh = h / group;
      const int seq = seqs[t];
      const int32_t pq = positions[t];
      const float* qh = q + t * H * D + h * D;
      // Visible keys: cached positions in (pq - window, pq].
      int64_t n = 0;
      float mx = -INFINITY;
      for (int64_t s = 0; s < cap; ++s) {
        const int32_t pk = cache.pos(seq, s);
        if (pk < 0 || pk > pq || (p.window > 0 && pq - pk >= p.window)) continue;
        const float* kh = cache.k(seq, s) + kvh * D;
        float dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qh[d] * kh[d];
        float sc = dot * p.scale;
        if (p.softcap > 0) sc = p.softcap * std::tanh(sc / p.softcap);
        scores[size_t(n)] = sc;
        slots[size_t(n)] = s;
        mx = std::max(mx, sc);
        ++n;
      }
      float* o = out + t * H * DV + h * DV;
      std::fill(acc.begin(), acc.end(), 0.f);
      float sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        const float e = std::exp(scores[size_t(j)] - mx);
        sum += e;
        const float* vh = cache.v(seq, slots[size_t(j)]) + kvh * DV;
        for (int64_t d = 0; d < DV; ++d) acc[size_t(d)] += e * vh[d];
      }
      const float inv = n ? 1.0f / sum : 0.f;
      for (int64_t d = 0; d < DV; ++d) o[d] = acc[size_t(d)] * inv;
    }
  });
}

}  // namespace elm::cpu
