// Zeroed memory for many long-lived buffers, carved from a few large mappings that ask for huge pages.
//
// Decode streams every weight once per token; on 4 KiB pages that is a TLB miss every 4 KiB, which
// costs this machine's two cores a fifth of their read bandwidth (52-60 GB/s against 62-68 on 2 MiB
// pages). madvise(MADV_HUGEPAGE) only helps the 2 MiB-aligned stretches of a buffer, so a matrix of a
// few MiB allocated on its own mostly stays on small pages (smollm2-360m's packed weights: 45 of 240
// MiB on huge pages); buffers packed back to back in 2 MiB-aligned blocks all get them. Like calloc,
// pages become resident only when written.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace elm {

class HugeArena {
 public:
  // block: bytes mapped at a time (larger requests get a mapping of their own size).
  explicit HugeArena(size_t block = size_t(64) << 20) : block_(block) {}
  HugeArena(const HugeArena&) = delete;
  HugeArena& operator=(const HugeArena&) = delete;
  ~HugeArena();

  // `bytes` zeroed bytes aligned to 64, valid until the arena is destroyed. Throws std::bad_alloc.
  uint8_t* alloc(size_t bytes);

 private:
  struct Mapping {
    uint8_t* data;
    size_t size, used;
  };
  size_t block_;
  std::vector<Mapping> maps_;
};

}  // namespace elm
