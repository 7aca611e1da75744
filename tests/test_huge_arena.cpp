// HugeArena (core/huge_arena.h): zeroed, aligned, disjoint buffers, small ones sharing 2 MiB-aligned
// mappings and large ones mapped on their own.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "core/huge_arena.h"

namespace elm {
namespace {

TEST(HugeArena, ZeroedAlignedDisjointBuffers) {
  HugeArena arena(size_t(4) << 20);
  std::vector<std::pair<uint8_t*, size_t>> got;
  // Sizes below, near and above the block size: the 5 MiB one needs a mapping of its own.
  for (size_t n : {size_t(1), size_t(100), size_t(3) << 20, size_t(5) << 20, size_t(777), size_t(1) << 20}) {
    uint8_t* p = arena.alloc(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << n;
    EXPECT_TRUE(std::all_of(p, p + n, [](uint8_t b) { return b == 0; })) << n;
    std::memset(p, 0xA5, n);  // writable, and a later buffer must not see these bytes
    got.emplace_back(p, n);
  }
  std::sort(got.begin(), got.end());
  for (size_t i = 1; i < got.size(); ++i) EXPECT_LE(got[i - 1].first + got[i - 1].second, got[i].first);
  for (const auto& [p, n] : got) EXPECT_TRUE(std::all_of(p, p + n, [](uint8_t b) { return b == 0xA5; }));
}

TEST(HugeArena, SmallBuffersShareOneHugePageAlignedMapping) {
  HugeArena arena(size_t(8) << 20);
  uint8_t* a = arena.alloc(1000);
  uint8_t* b = arena.alloc(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % (size_t(2) << 20), 0u);  // a mapping starts on a huge page
  EXPECT_EQ(b, a + 1024);                                              // the next buffer follows, 64-aligned
}

}  // namespace
}  // namespace elm
