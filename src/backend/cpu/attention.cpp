// Causal attention over the KV cache: the tiled kernel and its plain reference.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/fgemm.h"
#include "backend/cpu/kv_cache.h"

namespace elm::cpu {

namespace {

constexpr int64_t kKeyTile = 64;    // keys converted and scored together
// Consecutive tokens of one sequence sharing the key tiles: 16 amortizes each tile (and its
// conversion into the gemm kernel's panels) over more queries than 8 did (512-token prefill
// attention 14 % faster), with still 8 blocks x KV heads of work items at 128 tokens.
constexpr int64_t kQueryBlock = 16;

// Steps of at most this many tokens (decode, speculative verification, short prompts) compute every
// query row exactly as a one-token step would: the same score kernel whatever the number of queries,
// key tiles and splits on fixed slot boundaries (multiples of kKeyTile and of a part size that depends
// on the cache, not on the step). So greedy speculative decoding reproduces plain decoding bit for bit:
// a difference in the last bits here is enough to flip an int8 rounding of a later layer's activations
// and, rarely, the argmax. Larger steps (prefill) pick tiles and splits for speed.
constexpr int64_t kInvariantTokens = 128;

bool visible(int32_t pk, int32_t pq, int64_t window) { return pk >= 0 && pk <= pq && (window <= 0 || pq - pk < window); }

// Runs of at most kQueryBlock consecutive batch tokens of one sequence.
std::vector<std::pair<int64_t, int64_t>> query_blocks(int64_t T, const int32_t* seqs) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t t = 0; t < T;) {
    int64_t e = t + 1;
    while (e < T && e - t < kQueryBlock && seqs[e] == seqs[t]) ++e;
    out.emplace_back(t, e);
    t = e;
  }
  return out;
}

}  // namespace

void attention(const float* q, int64_t T, const int32_t* positions, const int32_t* seqs, const KvCache& cache,
               const AttentionParams& p, float* out, ThreadPool& pool, Isa isa) {
  const VecOps& ops = vec_ops(isa);
  const FKernels* fk = fkernels(isa);  // null for the generic ISA: one dot product per score
  const int64_t H = p.heads, KVH = cache.kv_heads(), D = cache.head_dim(), DV = cache.v_head_dim();
  const int64_t group = H / KVH;
  const auto blocks = query_blocks(T, seqs);
  const int64_t nb = int64_t(blocks.size());
  const bool invariant = T <= kInvariantTokens;

  // Each block's positions, and the slots that can hold a key visible to it: positions in a full
  // cache, the whole ring otherwise.
  struct Span {
    int32_t pmin, pmax;
    int64_t lo, hi;
  };
  std::vector<Span> spans(static_cast<size_t>(nb));
  int64_t widest = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const auto [t0, t1] = blocks[size_t(b)];
    Span& sp = spans[size_t(b)];
    sp.pmin = *std::min_element(positions + t0, positions + t1);
    sp.pmax = *std::max_element(positions + t0, positions + t1);
    sp.lo = 0, sp.hi = cache.capacity();
    if (!cache.window()) {
      sp.hi = std::min<int64_t>(sp.hi, int64_t(sp.pmax) + 1);
      if (p.window > 0) sp.lo = std::max<int64_t>(0, int64_t(sp.pmin) - p.window + 1);
      if (invariant) sp.lo = sp.lo / kKeyTile * kKeyTile;  // tiles on fixed boundaries (the mask trims)
    }
    widest = std::max(widest, sp.hi - sp.lo);
  }
  // Decode has one block per sequence, so a few (block, KV head) items for all the threads. With
  // fewer than two items a thread (many cores, few KV heads) long key ranges are split (flash-
  // decoding), each part kept as (max, sum, weighted values) and the parts merged at the end; at
  // least two tiles a part. Not sooner: decode reads the cache from memory, and on two cores five
  // whole heads (3 : 2) beat ten half heads, whose streams the prefetchers pick up twice as often.
  // Invariant steps split on fixed boundaries: parts of part_span slots (from slot 0), as many as the
  // threads want for one block, however many keys this step's blocks see; a part beyond a row's keys
  // adds nothing to it. The merge of one part equals the unsplit result exactly.
  const int64_t threads = pool.size();
  int64_t splits = 1, part_span = 0;
  if (invariant) {
    const int64_t want = KVH < 2 * threads ? (4 * threads + KVH - 1) / KVH : 1;
    const int64_t cap_tiles = (cache.capacity() + kKeyTile - 1) / kKeyTile;
    part_span = std::max<int64_t>(2, (cap_tiles + want - 1) / want) * kKeyTile;
    splits = (cache.capacity() + part_span - 1) / part_span;
  } else if (nb * KVH < 2 * threads) {
    splits = std::max<int64_t>(1, std::min((4 * threads + nb * KVH - 1) / (nb * KVH), widest / (2 * kKeyTile)));
  }
  const int64_t items = nb * KVH * splits;
  std::vector<float> part_acc, part_ml;  // per item: [nq, DV] values; [nq] max then [nq] sum
  const int64_t max_nq = kQueryBlock * group;
  if (splits > 1) {
    part_acc.resize(size_t(items * max_nq * DV));
    part_ml.resize(size_t(items * max_nq * 2));
  }

  pool.parallel_for_dynamic(items, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<float> kbuf, vbuf, qbuf, scores, acc, m, l;
    thread_local std::vector<int32_t> kpos;
    kbuf.resize(size_t(kKeyTile * D));
    vbuf.resize(size_t(kKeyTile * DV));
    qbuf.resize(size_t(kQueryBlock * group * D));
    scores.resize(size_t(kQueryBlock * group * kKeyTile));
    kpos.resize(size_t(kKeyTile));
    for (int64_t i = i0; i < i1; ++i) {
      // Last blocks first: they see the most keys, and the light ones then fill the threads' tails.
      const int64_t item = items - 1 - i, part = item % splits;
      const int64_t b = item / splits / KVH, kvh = item / splits % KVH;
      const auto [t0, t1] = blocks[size_t(b)];
      const int64_t nq = (t1 - t0) * group;
      const int seq = seqs[t0];
      const Span& sp = spans[size_t(b)];
      const int32_t pmin = sp.pmin, pmax = sp.pmax;
      // The block's queries [nq, D], query qi = token t0 + qi / group, head kvh * group + qi % group,
      // pre-scaled so that a product is a score.
      for (int64_t t = t0; t < t1; ++t) {
        const float* src = q + t * H * D + kvh * group * D;
        float* dst = qbuf.data() + (t - t0) * group * D;
        for (int64_t i = 0; i < group * D; ++i) dst[i] = src[i] * p.scale;
      }
      // This part's share of the block's slots, in whole tiles.
      int64_t lo, hi;
      if (invariant) {
        lo = std::min(sp.hi, std::max(sp.lo, part * part_span)), hi = std::min(sp.hi, (part + 1) * part_span);
      } else {
        const int64_t per = ((sp.hi - sp.lo + splits - 1) / splits + kKeyTile - 1) / kKeyTile * kKeyTile;
        lo = std::min(sp.hi, sp.lo + part * per), hi = std::min(sp.hi, lo + per);
      }
      // Online softmax state per query: running max, sum, weighted values.
      acc.assign(size_t(nq * DV), 0.f);
      m.assign(size_t(nq), -INFINITY);
      l.assign(size_t(nq), 0.f);
      for (int64_t s0 = lo; s0 < hi; s0 += kKeyTile) {
        const int64_t n = std::min(kKeyTile, hi - s0);
        // Positions of the tile's keys; when every key is visible to every query of the block (all
        // tiles but the diagonal one in a causal prefill) the scores need no mask.
        bool any = false, all = true;
        for (int64_t j = 0; j < n; ++j) {
          const int32_t pk = kpos[size_t(j)] = cache.pos(seq, s0 + j);
          any = any || visible(pk, pmax, 0);
          all = all && visible(pk, pmin, p.window) && visible(pk, pmax, p.window);
        }
        if (!any) continue;
        // F32 / F16 entries are read in place by the kernels; I8 entries (and the generic ISA's
        // dot products) take float copies of the tile.
        const bool in_place = fk && cache.dtype() != DType::I8;
        const DType et = in_place ? cache.dtype() : DType::F32;
        const void* kt = in_place ? cache.key_entries(seq, kvh, s0) : cache.keys(seq, kvh, s0, n, kbuf.data(), ops);
        const void* vt = in_place ? cache.value_entries(seq, kvh, s0) : cache.values(seq, kvh, s0, n, vbuf.data(), ops);
        // Decode reads each layer's cache once, from memory: ask for the next tile while this one
        // is scored (a head's entries are contiguous, so that tile follows this one).
        if (in_place && s0 + kKeyTile < hi) {
          const size_t esize = cache.dtype() == DType::F32 ? 4 : 2;
          const size_t kbytes = size_t(std::min(kKeyTile, hi - s0 - kKeyTile)) * size_t(D) * esize;
          const size_t vbytes = kbytes / size_t(D) * size_t(DV);
          const char* kn = static_cast<const char*>(kt) + size_t(kKeyTile * D) * esize;
          const char* vn = static_cast<const char*>(vt) + size_t(kKeyTile * DV) * esize;
          for (size_t o = 0; o < kbytes; o += 64) __builtin_prefetch(kn + o);
          for (size_t o = 0; o < vbytes; o += 64) __builtin_prefetch(vn + o);
        }
        // scores [nq, kKeyTile] = queries [nq, D] x keys [n, D]^T: a float matmul with the keys as weights.
        float* sc = scores.data();
        // Invariant steps always take the gemv: each row's scores are then those of a one-token step
        // (per-row sums, in the same order for every key of a tile); prefill blocks take the gemm.
        if (fk && nq > 4 && !invariant) {
          fk->gemm(et, kt, n, D, qbuf.data(), nq, 0, (n + 15) / 16, nullptr, sc, kKeyTile);
        } else if (fk) {
          fk->gemv(et, kt, D, qbuf.data(), nq, 0, n, nullptr, sc, kKeyTile);
        } else {
          for (int64_t qi = 0; qi < nq; ++qi)
            for (int64_t j = 0; j < n; ++j)
              sc[qi * kKeyTile + j] = ops.dot(qbuf.data() + qi * D, static_cast<const float*>(kt) + j * D, D);
        }
        // Scores become probabilities (a row that sees none of the tile's keys: zeros, so the block
        // product below adds exactly nothing to it), then acc [nq, DV] += probabilities x values.
        for (int64_t qi = 0; qi < nq; ++qi) {
          float* s = sc + qi * kKeyTile;
          if (p.softcap > 0)
            for (int64_t j = 0; j < n; ++j) s[j] = p.softcap * std::tanh(s[j] / p.softcap);
          if (!all) {
            const int32_t pq = positions[t0 + qi / group];
            for (int64_t j = 0; j < n; ++j)  // branch-free: the diagonal tile's pattern mispredicts
              s[j] = visible(kpos[size_t(j)], pq, p.window) ? s[j] : -INFINITY;
          }
          const float tile_max = ops.max(s, n);
          if (tile_max == -INFINITY) {
            std::fill(s, s + n, 0.f);
            continue;
          }
          float& mq = m[size_t(qi)];
          const float m_new = std::max(mq, tile_max);
          const float correction = mq == -INFINITY ? 0.f : std::exp(mq - m_new);
          l[size_t(qi)] = l[size_t(qi)] * correction + ops.exp_shift(s, n, m_new);
          if (correction != 1.f) ops.scale(correction, acc.data() + qi * DV, DV);
          mq = m_new;
        }
        if (et == DType::F16) ops.weighted_rows_f16(sc, kKeyTile, nq, static_cast<const uint16_t*>(vt), n, DV, acc.data());
        else ops.weighted_rows(sc, kKeyTile, nq, static_cast<const float*>(vt), n, DV, acc.data());
      }
      if (splits > 1) {  // a part: kept for the merge below
        std::copy(acc.begin(), acc.begin() + nq * DV, part_acc.begin() + item * max_nq * DV);
        std::copy(m.begin(), m.begin() + nq, part_ml.begin() + item * max_nq * 2);
        std::copy(l.begin(), l.begin() + nq, part_ml.begin() + item * max_nq * 2 + max_nq);
        continue;
      }
      for (int64_t qi = 0; qi < nq; ++qi) {
        const int64_t t = t0 + qi / group, h = kvh * group + qi % group;
        float* o = out + t * H * DV + h * DV;
        const float inv = l[size_t(qi)] > 0 ? 1.f / l[size_t(qi)] : 0.f;
        for (int64_t d = 0; d < DV; ++d) o[d] = acc[size_t(qi * DV + d)] * inv;
      }
    }
  }, 1);
  if (splits == 1) return;

  // Merge the parts of each (block, KV head): rescaled to the largest of their maxima.
  for (int64_t b = 0; b < nb; ++b) {
    const auto [t0, t1] = blocks[size_t(b)];
    const int64_t nq = (t1 - t0) * group;
    for (int64_t kvh = 0; kvh < KVH; ++kvh)
      for (int64_t qi = 0; qi < nq; ++qi) {
        const int64_t first = (b * KVH + kvh) * splits;
        const auto ml = [&](int64_t s) { return part_ml.data() + (first + s) * max_nq * 2; };
        float mx = -INFINITY;
        for (int64_t s = 0; s < splits; ++s) mx = std::max(mx, ml(s)[qi]);
        const int64_t t = t0 + qi / group, h = kvh * group + qi % group;
        float* o = out + t * H * DV + h * DV;
        std::fill(o, o + DV, 0.f);
        float sum = 0.f;
        if (mx != -INFINITY)
          for (int64_t s = 0; s < splits; ++s) {
            if (ml(s)[qi] == -INFINITY) continue;  // a part that saw no visible key
            const float w = std::exp(ml(s)[qi] - mx);
            sum += w * ml(s)[max_nq + qi];
            ops.axpy(w, part_acc.data() + ((first + s) * max_nq + qi) * DV, o, DV);
          }
        const float inv = sum > 0 ? 1.f / sum : 0.f;
        ops.scale(inv, o, DV);
      }
  }
}

void attention_ref(const float* q, int64_t T, const int32_t* positions, const int32_t* seqs, const KvCache& cache,
                   const AttentionParams& p, float* out) {
  const int64_t H = p.heads, KVH = cache.kv_heads(), D = cache.head_dim(), DV = cache.v_head_dim();
  const int64_t group = H / KVH, cap = cache.capacity();
  std::vector<float> k(static_cast<size_t>(D)), v(static_cast<size_t>(DV));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kvh = h / group;
      const int seq = seqs[t];
      const int32_t pq = positions[t];
      const float* qh = q + t * H * D + h * D;
      std::vector<float> scores;
      std::vector<int64_t> slots;
      for (int64_t s = 0; s < cap; ++s) {
        if (!visible(cache.pos(seq, s), pq, p.window)) continue;
        const float* kh = cache.keys(seq, kvh, s, 1, k.data(), kVecOpsScalar);
        float dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qh[d] * kh[d];
        float sc = dot * p.scale;
        if (p.softcap > 0) sc = p.softcap * std::tanh(sc / p.softcap);
        scores.push_back(sc);
        slots.push_back(s);
      }
      float mx = -INFINITY, sum = 0;
      for (float s : scores) mx = std::max(mx, s);
      for (float& s : scores) sum += s = std::exp(s - mx);
      float* o = out + t * H * DV + h * DV;
      std::fill(o, o + DV, 0.f);
      for (size_t j = 0; j < scores.size(); ++j) {
        const float* vh = cache.values(seq, kvh, slots[j], 1, v.data(), kVecOpsScalar);
        for (int64_t d = 0; d < DV; ++d) o[d] += scores[j] / sum * vh[d];
      }
    }
}

}  // namespace elm::cpu
