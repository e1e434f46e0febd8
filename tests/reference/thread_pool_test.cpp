// The CPU trainer's pool (host/reference/thread_pool.h): every task runs exactly once per job, for
// any thread count, for jobs back to back (workers still spinning) and after they slept, with
// jobs submitted from several threads at once; and the optimizer step it splits gives bitwise the
// results of one thread.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "host/reference/thread_pool.h"
#include "warpfuse/ref/optimizer.h"

namespace warpfuse::ref {
namespace {

struct ThreadsGuard {
  ~ThreadsGuard() { detail::set_parallel_threads(0); }
};

void expect_each_task_once(int tasks) {
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(tasks));
  detail::parallel_for(tasks, [&](int t) { runs[static_cast<std::size_t>(t)].fetch_add(1); });
  for (int t = 0; t < tasks; ++t) ASSERT_EQ(runs[static_cast<std::size_t>(t)].load(), 1) << t;
}

TEST(ThreadPool, EveryTaskRunsOnceForAnyThreadCount) {
  ThreadsGuard guard;
  for (const int threads : {1, 2, 3, 5}) {
    detail::set_parallel_threads(threads);
    EXPECT_EQ(detail::parallel_threads(), threads);
    for (int job = 0; job < 300; ++job) expect_each_task_once(1 + job % 17);
    // Let the workers fall asleep, then wake them.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    expect_each_task_once(64);
  }
}

TEST(ThreadPool, JobsFromSeveralThreadsAtOnce) {
  ThreadsGuard guard;
  detail::set_parallel_threads(3);
  std::atomic<long> total{0};
  std::vector<std::thread> submitters;
  for (int s = 0; s < 3; ++s) {
    submitters.emplace_back([&] {
      for (int job = 0; job < 200; ++job) {
        detail::parallel_for(7, [&](int t) { total.fetch_add(t + 1); });
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  EXPECT_EQ(total.load(), 3L * 200 * (7 * 8 / 2));
}

TEST(ThreadPool, SplitOptimizerStepIsBitwiseOneThread) {
  ThreadsGuard guard;
  const std::int64_t n = 200003;  // above the split threshold, not a multiple of the parts
  std::mt19937 rng(4);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> params(n), grads(n), state(2 * n);
  for (float& v : params) v = dist(rng);
  for (float& v : grads) v = dist(rng);
  for (std::int64_t i = 0; i < n; ++i) state[i] = 0.1f * dist(rng);
  for (std::int64_t i = n; i < 2 * n; ++i) state[i] = std::abs(dist(rng));
  OptimizerOptions o;
  o.rule = OptimizerRule::adamw;
  o.weight_decay = 0.01f;
  o.step = 3;
  o.max_grad_norm = 50.0f;
  std::vector<std::vector<float>> results;
  for (const int threads : {1, 2, 3}) {
    detail::set_parallel_threads(threads);
    std::vector<float> p = params, s = state;
    std::vector<OptimizerTensor<float>> tensors = {{p.data(), grads.data(), s.data(), n}};
    optimizer_step<float>(tensors, o);
    results.push_back(p);
    results.back().insert(results.back().end(), s.begin(), s.end());
  }
  ASSERT_NE(results[0], std::vector<float>(params.begin(), params.end()));
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

}  // namespace
}  // namespace warpfuse::ref
