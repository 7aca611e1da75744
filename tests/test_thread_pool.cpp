// The thread pool: every item of every job visited exactly once, whatever the thread count, chunk
// size, and whether the workers were spinning or asleep when the job came.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/thread_pool.h"

using namespace elm;

TEST(ThreadPool, EveryItemOnceAcrossManyJobs) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int job = 0; job < 300; ++job) {
      const int64_t n = job % 37, chunk = 1 + job % 5;
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      auto fn = [&](int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LE(e, n);
        for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
      };
      if (job % 2) pool.parallel_for_dynamic(n, fn, chunk);
      else pool.parallel_for(n, fn, chunk);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "job " << job << " item " << i;
    }
  }
}

TEST(ThreadPool, JobsAfterWorkersFellAsleep) {
  ThreadPool pool(3);
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // longer than the spin: workers sleep
    std::atomic<int64_t> sum{0};
    pool.parallel_for_dynamic(1000, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sum += i;
    }, 7);
    EXPECT_EQ(sum.load(), 999 * 1000 / 2);
  }
}

TEST(ThreadPool, RunOnAllCallsEveryThreadIndexOnce) {
  ThreadPool pool(4);
  for (int job = 0; job < 50; ++job) {
    std::vector<std::atomic<int>> calls(4);
    pool.run_on_all([&](int t, int n) {
      ASSERT_EQ(n, 4);
      calls[size_t(t)]++;
    });
    for (auto& c : calls) ASSERT_EQ(c.load(), 1);
    // Interleave with chunked jobs: the two kinds must not confuse the workers.
    std::atomic<int> items{0};
    pool.parallel_for(10, [&](int64_t b, int64_t e) { items += int(e - b); });
    ASSERT_EQ(items.load(), 10);
  }
}
