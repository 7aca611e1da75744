#include "backend/cpu/recurrent_state.h"

#include <algorithm>

#include "core/error.h"

namespace elm::cpu {

RecurrentState::RecurrentState(int max_seqs, int64_t size, int snapshots)
    : size_(size), snapshots_(std::max(snapshots, 0)), seqs_(size_t(max_seqs)) {
  for (Seq& s : seqs_) {
    s.block.assign(size_t(size_), 0.f);
    s.ring.resize(size_t(snapshots_));
  }
}

void RecurrentState::advance(int seq, int32_t n, bool keep) {
  Seq& s = seqs_[size_t(seq)];
  s.length += n;
  if (!keep || s.ring.empty()) return;
  Snapshot& snap = s.ring[s.next];
  snap.length = s.length;
  snap.block.assign(s.block.begin(), s.block.end());
  s.next = (s.next + 1) % s.ring.size();
}

void RecurrentState::reset(int seq) {
  Seq& s = seqs_[size_t(seq)];
  std::fill(s.block.begin(), s.block.end(), 0.f);
  s.length = 0;
  for (Snapshot& snap : s.ring) snap.length = -1;
}

bool RecurrentState::can_truncate(int seq, int32_t n_past) const {
  const Seq& s = seqs_[size_t(seq)];
  if (n_past == 0 || n_past >= s.length) return true;
  for (const Snapshot& snap : s.ring)
    if (snap.length == n_past) return true;
  return false;
}

void RecurrentState::check_truncate(int seq, int32_t n_past) const {
  ELM_CHECK(can_truncate(seq, n_past), "cannot roll the recurrent state of sequence ", seq, " back from ",
            length(seq), " to ", n_past, " tokens: it keeps snapshots of the last ", snapshots_,
            " tokens of a step only (raise RuntimeConfig::recurrent_snapshots, or reset the sequence)");
}

void RecurrentState::truncate(int seq, int32_t n_past) {
  Seq& s = seqs_[size_t(seq)];
  if (n_past >= s.length) return;  // nothing to drop
  if (n_past == 0) return reset(seq);
  check_truncate(seq, n_past);
  const Snapshot* found = nullptr;
  for (const Snapshot& snap : s.ring)
    if (snap.length == n_past) found = &snap;
  std::copy(found->block.begin(), found->block.end(), s.block.begin());
  s.length = n_past;
  for (Snapshot& snap : s.ring)
    if (snap.length > n_past) snap.length = -1;
}

size_t RecurrentState::bytes() const { return seqs_.size() * size_t(size_) * 4 * size_t(1 + snapshots_); }

}  // namespace elm::cpu
