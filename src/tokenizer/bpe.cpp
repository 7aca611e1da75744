#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>

#include "tokenizer/utf8.h"

namespace elm {

Bpe::Bpe(const Vocab& vocab, PairMap merges, BpeOptions options)
    : vocab_(vocab), merges_(std::move(merges)), opt_(options), bmp_ids_(0x10000, -1) {
  for (int32_t id = 0; id < int32_t(vocab.size()); ++id) {
    if (!vocab.has_id(id)) continue;
    const std::string& p = vocab.piece(id);
    if (p.empty() || utf8::seq_len(static_cast<unsigned char>(p[0])) != p.size()) continue;
    size_t i = 0;
    const uint32_t cp = utf8::next(p, i);
    if (cp < 0x10000 && bmp_ids_[cp] < 0) bmp_ids_[cp] = vocab.find(p);
  }
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_ids_[size_t(b)] = vocab.find(name);
  }
}

int32_t Bpe::char_id(std::string_view ch, uint32_t cp) const {
  return cp < 0x10000 ? bmp_ids_[cp] : vocab_.find(ch);
}

namespace {
struct Symbol {
  int32_t id;
  int32_t prev, next;  // neighbours in the word, -1 at the ends
  bool alive;
};
struct Candidate {
  int32_t rank, pos;
  // std::push_heap builds a max-heap: invert so the lowest rank, then the leftmost, comes first.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};
}  // namespace

void Bpe::encode(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {
    const int32_t whole = vocab_.find(word);
    if (whole >= 0) return out.push_back(whole);
  }
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Candidate> heap;
  sym.clear();
  heap.clear();
  const auto push = [&](int32_t id) {
    const int32_t n = int32_t(sym.size());
    sym.push_back({id, n - 1, -1, true});
    if (n > 0) sym[size_t(n - 1)].next = n;
  };
  bool prev_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t start = i;
    const uint32_t cp = utf8::next(word, i);
    const std::string_view ch = word.substr(start, i - start);
    const int32_t id = char_id(ch, cp);
    if (id >= 0) {
      push(id);
      prev_unk = false;
      continue;
    }
    if (opt_.byte_fallback) {
      bool all = true;
      for (char c : ch) all &= byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : ch) push(byte_ids_[static_cast<unsigned char>(c)]);
        prev_unk = false;
        continue;
      }
    }
    if (opt_.unk_id < 0) continue;
    if (!(opt_.fuse_unk && prev_unk)) push(opt_.unk_id);
    prev_unk = true;
  }
  const auto consider = [&](int32_t pos) {
    const int32_t nx = sym[size_t(pos)].next;
    if (nx < 0) return;
    if (const PairMap::Merge* m = merges_.find(sym[size_t(pos)].id, sym[size_t(nx)].id)) {
      heap.push_back({m->rank, pos});
      std::push_heap(heap.begin(), heap.end());
    }
  };
  for (int32_t p = 0; p + 1 < int32_t(sym.size()); ++p) consider(p);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& left = sym[size_t(c.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[size_t(left.next)];
    const PairMap::Merge* m = merges_.find(left.id, right.id);
    if (!m || m->rank != c.rank) continue;  // stale: a neighbour changed since it was queued
    left.id = m->id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[size_t(right.next)].prev = c.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(c.pos);
  }
  for (int32_t p = 0; p >= 0 && p < int32_t(sym.size()); p = sym[size_t(p)].next) out.push_back(sym[size_t(p)].id);
}

}  // namespace elm
