// warpfuse::ref internals — the CPU trainer's thread pool (thread_pool.h).
#include "host/reference/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace warpfuse::ref::detail {
namespace {

/// How long an idle worker spins before it sleeps. The trainer's step issues a job every few
/// microseconds to a millisecond; a sleeping worker costs a futex wake-up (~10-50 us) per job.
constexpr auto kSpin = std::chrono::microseconds(200);

class Pool {
 public:
  ~Pool() { stop(); }

  int threads() {
    int t = cap_.load();
    if (t == 0) {
      t = std::max(1, openblas_get_num_threads());
      cap_.store(t);
    }
    return t;
  }
  void set_threads(int threads) {
    std::lock_guard<std::mutex> submit(submit_mutex_);
    stop();
    cap_.store(std::max(0, threads));  // 0: the default again
  }

  void run(int tasks, TaskFunction fn, void* context) {
    if (tasks <= 0) return;
    const int threads = std::min(this->threads(), tasks);
    if (threads <= 1 || tasks > kMaxTasks) {
      for (int t = 0; t < tasks; ++t) fn(context, t);
      return;
    }
    std::lock_guard<std::mutex> submit(submit_mutex_);
    start(threads - 1);
    const std::uint64_t generation = generation_.load() + 1;
    fn_ = fn;
    context_ = context;
    pending_.store(tasks);
    // The job's fields are written before the claim word that names them (release); a worker
    // reads them only after it claimed a task of this generation (acquire), and the job cannot
    // finish (nor these fields change) before that task is done.
    next_.store(pack(generation, tasks, 0), std::memory_order_release);
    // Wake (seq_cst: a worker either sees the new generation before it sleeps, or is counted in
    // sleepers_ and notified here).
    generation_.store(generation);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    work(generation);
    while (pending_.load(std::memory_order_acquire) > 0) std::this_thread::yield();
  }

 private:
  static constexpr int kMaxTasks = 0xffff;
  // The claim word: generation (32 bits) | task count (16) | next task (16).
  static std::uint64_t pack(std::uint64_t generation, int tasks, int next) {
    return (generation << 32) | (static_cast<std::uint64_t>(tasks) << 16) |
           static_cast<std::uint64_t>(next);
  }

  // Claims and runs tasks of `generation` until none is left (or another job replaced it).
  void work(std::uint64_t generation) {
    std::uint64_t word = next_.load(std::memory_order_acquire);
    for (;;) {
      const int tasks = static_cast<int>((word >> 16) & 0xffff);
      const int task = static_cast<int>(word & 0xffff);
      if ((word >> 32) != (generation & 0xffffffffu) || task >= tasks) return;
      if (!next_.compare_exchange_weak(word, word + 1, std::memory_order_acquire)) continue;
      fn_(context_, task);
      pending_.fetch_sub(1, std::memory_order_release);
      word = next_.load(std::memory_order_acquire);
    }
  }

  void worker() {
    std::uint64_t seen = generation_.load();
    for (;;) {
      const auto spin_until = std::chrono::steady_clock::now() + kSpin;
      while (generation_.load() == seen && !stopping_.load()) {
        if (std::chrono::steady_clock::now() > spin_until) {
          std::unique_lock<std::mutex> lock(mutex_);
          sleepers_.fetch_add(1);
          wake_.wait(lock, [&] { return generation_.load() != seen || stopping_.load(); });
          sleepers_.fetch_sub(1);
          break;
        }
        std::this_thread::yield();
      }
      if (stopping_.load()) return;
      seen = generation_.load();
      work(seen);
    }
  }

  // Under submit_mutex_ (or at exit).
  void start(int workers) {
    while (static_cast<int>(workers_.size()) < workers) workers_.emplace_back([this] { worker(); });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_.store(true);
      wake_.notify_all();
    }
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    stopping_.store(false);
  }

  std::atomic<int> cap_{0};
  std::mutex submit_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  // The job: written before generation_ is published, read by workers after they see it.
  TaskFunction fn_ = nullptr;
  void* context_ = nullptr;
  std::atomic<std::uint64_t> next_{0};
  std::atomic<int> pending_{0};
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int parallel_threads() {
  return pool().threads();
}
void set_parallel_threads(int threads) {
  pool().set_threads(threads);
}
void parallel_for(int tasks, TaskFunction fn, void* context) {
  pool().run(tasks, fn, context);
}

}  // namespace warpfuse::ref::detail
