#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace elm {

namespace {

// How long an idle thread polls before it sleeps. Long enough to bridge the serial work between
// two matmuls of a decode step (microseconds), short enough that an idle pool goes quiet at once.
constexpr auto kSpin = std::chrono::microseconds(300);

constexpr uint64_t kField = (uint64_t(1) << 20) - 1;  // chunk counts and indexes in the claim word

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls until pred() holds or kSpin has passed; returns pred().
template <class Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() > deadline) return pred();
  }
}

}  // namespace

// Sleeping is a condition variable rather than std::atomic::wait: libstdc++ 12's atomic waits lost
// wake-ups under qemu-aarch64 (the NEON tests hung), and the mutex only costs where someone sleeps.
template <class Pred>
void ThreadPool::sleep_until(Pred pred) {
  if (spin_until(pred)) return;
  std::unique_lock<std::mutex> lock(sleep_mu_);
  sleep_cv_.wait(lock, pred);
}

void ThreadPool::wake_sleepers() {
  // Taking the mutex orders this notify after any sleeper's check of its predicate.
  { std::lock_guard<std::mutex> lock(sleep_mu_); }
  sleep_cv_.notify_all();
}

int ThreadPool::default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = default_threads();
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  wake_workers();
  for (auto& t : workers_) t.join();
}

void ThreadPool::wake_workers() {
  wake_.fetch_add(1, std::memory_order_release);
  wake_sleepers();
}

void ThreadPool::worker(int index) {
  uint32_t seen = 0, all_seen = 0;
  for (;;) {
    sleep_until([&] { return wake_.load(std::memory_order_acquire) != seen; });
    seen = wake_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    run_chunks();
    const uint32_t aj = all_job_.load(std::memory_order_acquire);
    if (aj != all_seen) {
      all_seen = aj;
      (*all_fn_)(index, size());
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) wake_sleepers();
    }
  }
}

void ThreadPool::run_chunks() {
  uint64_t c = claim_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t total = (c >> 20) & kField, next = c & kField;
    if (next >= total) return;
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // A successful claim means the job is live: the caller waits for this chunk before it returns,
    // so the job fields stay valid (and were published by its release store of claim_).
    const int64_t begin = int64_t(next) * chunk_size_, end = std::min(chunk_n_, begin + chunk_size_);
    (*chunk_fn_)(begin, end);
    if (chunks_done_.fetch_add(1, std::memory_order_acq_rel) + 1 == total) wake_sleepers();
    c = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t chunk) {
  if (n <= 0) return;
  chunk = std::max<int64_t>({chunk, 1, (n + int64_t(kField) - 1) / int64_t(kField)});
  const uint64_t total = uint64_t((n + chunk - 1) / chunk);
  if (workers_.empty() || total == 1) {
    fn(0, n);
    return;
  }
  chunk_fn_ = &fn;
  chunk_n_ = n;
  chunk_size_ = chunk;
  chunks_done_.store(0, std::memory_order_relaxed);
  chunk_job_ = (chunk_job_ + 1) & ((1u << 24) - 1);
  claim_.store(uint64_t(chunk_job_) << 40 | total << 20, std::memory_order_release);
  wake_workers();
  run_chunks();
  sleep_until([&] { return chunks_done_.load(std::memory_order_acquire) == total; });
  chunk_fn_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  const int64_t per_thread = (n + size() - 1) / size();
  parallel_for_dynamic(n, fn, std::max<int64_t>(grain, per_thread));
}

void ThreadPool::run_on_all(const std::function<void(int, int)>& fn) {
  const int n = size();
  if (n == 1) {
    fn(0, 1);
    return;
  }
  all_fn_ = &fn;
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  all_job_.fetch_add(1, std::memory_order_release);
  wake_workers();
  fn(0, n);
  sleep_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
  all_fn_ = nullptr;
}

}  // namespace elm
