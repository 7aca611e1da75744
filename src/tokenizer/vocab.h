// The token table: id <-> string, with a compact open-addressing index (a 262k-token vocabulary
// loads in milliseconds and a lookup costs one hash of the key).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace elm {

uint64_t hash_bytes(std::string_view s);

class Vocab {
 public:
  // Sets token `id` to `piece`, growing the table; a later set of the same id replaces it.
  void set(int32_t id, std::string piece);
  int32_t find(std::string_view piece) const;  // -1 when absent
  const std::string& piece(int32_t id) const { return pieces_[size_t(id)]; }
  bool has_id(int32_t id) const { return id >= 0 && size_t(id) < pieces_.size() && present_[size_t(id)]; }
  int64_t size() const { return int64_t(pieces_.size()); }
  void reserve(size_t n);

 private:
  void rehash(size_t slots);
  void insert_slot(int32_t id);
  std::vector<std::string> pieces_;
  std::vector<uint8_t> present_;
  std::vector<int32_t> slots_;  // id + 1, 0 = empty
  size_t count_ = 0;
};

// (left id, right id) -> (rank, merged id): BPE's merge table.
class PairMap {
 public:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  void reserve(size_t n);
  // Keeps the first (lowest-rank) entry for a pair, as the merges file lists them in priority order.
  void add(int32_t a, int32_t b, Merge m);
  const Merge* find(int32_t a, int32_t b) const {
    if (slots_.empty()) return nullptr;
    const uint64_t k = key(a, b);
    for (size_t i = mix(k) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.m;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return count_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  struct Slot {
    uint64_t key = kEmpty;
    Merge m{};
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static size_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return size_t(k);
  }
  void rehash(size_t slots);
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

}  // namespace elm
