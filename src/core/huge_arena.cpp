#include "core/huge_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <new>

namespace elm {

namespace {

constexpr size_t kHuge = size_t(2) << 20, kAlign = 64;

// A fresh anonymous mapping of `size` bytes (a multiple of kHuge) starting on a kHuge boundary.
uint8_t* map_aligned(size_t size) {
  void* p = mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto* base = static_cast<uint8_t*>(p);
  uint8_t* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) / kHuge * kHuge);
  if (aligned > base) munmap(base, size_t(aligned - base));
  const size_t tail = size_t(base + size + kHuge - (aligned + size));
  if (tail) munmap(aligned + size, tail);
#ifdef MADV_HUGEPAGE
  (void)madvise(aligned, size, MADV_HUGEPAGE);
#endif
  return aligned;
}

}  // namespace

HugeArena::~HugeArena() {
  for (const Mapping& m : maps_) munmap(m.data, m.size);
}

uint8_t* HugeArena::alloc(size_t bytes) {
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  if (maps_.empty() || maps_.back().size - maps_.back().used < bytes) {
    const size_t size = (std::max(bytes, block_) + kHuge - 1) / kHuge * kHuge;
    maps_.push_back(Mapping{map_aligned(size), size, 0});
  }
  Mapping& m = maps_.back();
  uint8_t* p = m.data + m.used;
  m.used += bytes;
  return p;
}

}  // namespace elm
