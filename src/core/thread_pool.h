// A fixed pool of worker threads for data-parallel kernels. The calling thread takes part in every
// job, so a pool of n threads has n - 1 workers and never oversubscribes the cores it was sized for.
//
// Dispatch is built for decode, where one token runs a few hundred small parallel regions separated
// by microseconds of serial work:
// - an idle worker spins on the job counter for a short while before it sleeps
//   (a condition variable), so back-to-back jobs start without a syscall, and a pool left idle (between
//   requests) costs no CPU;
// - parallel_for hands out chunks on demand (one atomic claim each) and the caller only waits for
//   chunks that were claimed, never for a worker that has not woken up yet: on a shared, loaded
//   machine a descheduled worker slows a job down instead of stalling it.
#pragma once
#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace elm {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads <= 0: one per hardware thread
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` items, about
  // one chunk per thread; returns when all are done. Not reentrant.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);
  // Like parallel_for, with chunks of `chunk` items (smaller chunks balance better when threads run
  // at different speeds). Every item is visited exactly once.
  void parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t chunk);
  // Calls fn(thread_index, n_threads) once on every thread (waits for every worker to wake).
  void run_on_all(const std::function<void(int, int)>& fn);

  static int default_threads();

 private:
  void worker(int index);
  void wake_workers();
  // Spins briefly, then sleeps until pred() holds; wake_sleepers() after making any pred true.
  template <class Pred>
  void sleep_until(Pred pred);
  void wake_sleepers();
  void run_chunks();  // claims and runs chunks of the current parallel_for until none are left

  std::vector<std::thread> workers_;
  std::atomic<uint32_t> wake_{0};  // bumped for every job; idle workers wait on it
  std::atomic<bool> stop_{false};
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;

  // parallel_for: the job, and one word [job 24 bits | chunks 20 bits | next chunk 20 bits] that
  // claims are made on, so a worker that wakes after the job ended claims nothing.
  const std::function<void(int64_t, int64_t)>* chunk_fn_ = nullptr;
  int64_t chunk_n_ = 0, chunk_size_ = 0;
  uint32_t chunk_job_ = 0;
  std::atomic<uint64_t> claim_{0};
  std::atomic<uint32_t> chunks_done_{0};

  // run_on_all: the job and its wake count; the caller waits for `pending_` workers.
  const std::function<void(int, int)>* all_fn_ = nullptr;
  std::atomic<uint32_t> all_job_{0};
  std::atomic<int> pending_{0};
};

}  // namespace elm
