#include "tokenizer/vocab.h"

#include <cstring>

namespace elm {

uint64_t hash_bytes(std::string_view s) {
  // FNV-1a over 8-byte words, then a final avalanche: fast for the short keys of a vocabulary.
  uint64_t h = 0xcbf29ce484222325ULL ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  for (; i < s.size(); ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

void Vocab::reserve(size_t n) {
  pieces_.reserve(n);
  present_.reserve(n);
  if (slots_.size() < n * 2) rehash(n * 2);
}

static size_t pow2_at_least(size_t n) {
  size_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

void Vocab::rehash(size_t want) {
  slots_.assign(pow2_at_least(want), 0);
  for (size_t id = 0; id < pieces_.size(); ++id)
    if (present_[id]) insert_slot(int32_t(id));
}

void Vocab::insert_slot(int32_t id) {
  const size_t mask = slots_.size() - 1;
  const std::string& p = pieces_[size_t(id)];
  for (size_t i = hash_bytes(p) & mask;; i = (i + 1) & mask) {
    int32_t& s = slots_[i];
    if (s == 0) {
      s = id + 1;
      return;
    }
    if (pieces_[size_t(s - 1)] == p) {  // the same string under two ids: the lower id wins lookups
      if (id < s - 1) s = id + 1;
      return;
    }
  }
}

void Vocab::set(int32_t id, std::string piece) {
  if (size_t(id) >= pieces_.size()) {
    pieces_.resize(size_t(id) + 1);
    present_.resize(size_t(id) + 1, 0);
  }
  if (present_[size_t(id)]) {  // replacing: rebuild the index without the old string
    pieces_[size_t(id)] = std::move(piece);
    rehash(slots_.size());
    return;
  }
  pieces_[size_t(id)] = std::move(piece);
  present_[size_t(id)] = 1;
  ++count_;
  if (slots_.size() < count_ * 2) rehash(count_ * 4);
  else insert_slot(id);
}

int32_t Vocab::find(std::string_view piece) const {
  if (slots_.empty()) return -1;
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash_bytes(piece) & mask;; i = (i + 1) & mask) {
    const int32_t s = slots_[i];
    if (s == 0) return -1;
    if (pieces_[size_t(s - 1)] == piece) return s - 1;
  }
}

void PairMap::reserve(size_t n) {
  if (slots_.size() < n * 2) rehash(n * 2);
}

void PairMap::rehash(size_t want) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(pow2_at_least(want), Slot{});
  mask_ = slots_.size() - 1;
  count_ = 0;
  for (const Slot& s : old)
    if (s.key != kEmpty) add(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.m);
}

void PairMap::add(int32_t a, int32_t b, Merge m) {
  if (slots_.size() < (count_ + 1) * 2) rehash((count_ + 1) * 4);
  const uint64_t k = key(a, b);
  for (size_t i = mix(k) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == k) return;
    if (s.key == kEmpty) {
      s.key = k;
      s.m = m;
      ++count_;
      return;
    }
  }
}

}  // namespace elm
