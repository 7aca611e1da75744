// Per-sequence state of one recurrent layer on the CPU: a fixed-size float block per sequence (the
// last inputs of a causal conv1d, or the gated delta-rule matrices) and the number of tokens it has
// absorbed. Unlike a KV cache, the block cannot forget the last tokens, so truncation only works to
// a length the state still knows: its current length, 0, or a snapshot. With `snapshots` > 0 the
// state keeps copies of itself after each of the last tokens fed one by one (the CPU segment feeds
// the last `snapshots` tokens of every step that way), which is what speculative decoding needs to
// roll back rejected draft tokens.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace elm::cpu {

class RecurrentState {
 public:
  RecurrentState(int max_seqs, int64_t size, int snapshots);

  int64_t size() const { return size_; }
  int snapshots() const { return snapshots_; }
  float* data(int seq) { return seqs_[size_t(seq)].block.data(); }
  int32_t length(int seq) const { return seqs_[size_t(seq)].length; }

  // Records that the block now holds n more tokens; `keep` stores a snapshot at the new length.
  void advance(int seq, int32_t n, bool keep);
  void reset(int seq);
  bool can_truncate(int seq, int32_t n_past) const;
  void check_truncate(int seq, int32_t n_past) const;  // throws elm::Error explaining a refusal
  // Restores the state at n_past tokens. Throws elm::Error, changing nothing, when no such state is known.
  void truncate(int seq, int32_t n_past);
  size_t bytes() const;

 private:
  struct Snapshot {
    int32_t length = -1;  // -1: empty
    std::vector<float> block;
  };
  struct Seq {
    std::vector<float> block;
    int32_t length = 0;
    std::vector<Snapshot> ring;
    size_t next = 0;  // ring slot the next snapshot goes to
  };
  int64_t size_;
  int snapshots_;
  std::vector<Seq> seqs_;
};

}  // namespace elm::cpu
