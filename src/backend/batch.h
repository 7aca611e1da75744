// One step of work for the runtime: T tokens, each belonging to a sequence slot at a position.
// Tokens of one sequence must appear in increasing position order; sequences may be mixed freely
// (that is how the server batches decoding across clients).
#pragma once
#include <cstdint>
#include <vector>

namespace elm {

struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> seqs;
  std::vector<uint8_t> want_output;  // 1: produce this token's logits row

  void add(int32_t token, int32_t pos, int32_t seq, bool output) {
    tokens.push_back(token);
    positions.push_back(pos);
    seqs.push_back(seq);
    want_output.push_back(output ? 1 : 0);
  }
  void clear() {
    tokens.clear(), positions.clear(), seqs.clear(), want_output.clear();
  }
  int64_t size() const { return int64_t(tokens.size()); }
  int64_t n_outputs() const {
    int64_t n = 0;
    for (uint8_t o : want_output) n += o;
    return n;
  }
};

}  // namespace elm
