// Tests of the SIMT emulator itself (emulated binary only): the CUDA built-ins and intrinsics it
// provides, and each of its detectors firing on a planted bug.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "host/cuda/launch.h"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"
#include "simt/testing.h"
#include "test_util.h"

namespace warpfuse::test {
namespace {

using detail::LaunchConfig;
using ::testing::HasSubstr;

// --- built-ins ---------------------------------------------------------------------------------

__global__ void builtins_kernel(unsigned* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned slot = 6 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
  out[slot + 0] = threadIdx.x;
  out[slot + 1] = threadIdx.y;
  out[slot + 2] = threadIdx.z;
  out[slot + 3] = blockIdx.x;
  out[slot + 4] = blockIdx.y;
  out[slot + 5] = blockIdx.z + 100 * (gridDim.x + 10 * gridDim.y) + 100000 * warpSize;
}

TEST(Simt, BuiltinVariablesCoverA3dGrid) {
  const dim3 grid(3, 2, 2);
  const dim3 block(4, 3, 5);
  const int total = 12 * 60;
  DeviceBuffer<unsigned> out = poisoned_buffer<unsigned>(6 * total);
  detail::launch(LaunchConfig{grid, block}, "builtins_kernel", builtins_kernel, out.data());
  const auto got = out.to_host();
  int slot = 0;
  for (unsigned bz = 0; bz < 2; ++bz)
    for (unsigned by = 0; by < 2; ++by)
      for (unsigned bx = 0; bx < 3; ++bx)
        for (unsigned tz = 0; tz < 5; ++tz)
          for (unsigned ty = 0; ty < 3; ++ty)
            for (unsigned tx = 0; tx < 4; ++tx, slot += 6) {
              ASSERT_EQ(got[slot + 0], tx);
              ASSERT_EQ(got[slot + 1], ty);
              ASSERT_EQ(got[slot + 2], tz);
              ASSERT_EQ(got[slot + 3], bx);
              ASSERT_EQ(got[slot + 4], by);
              ASSERT_EQ(got[slot + 5], bz + 100 * (3 + 10 * 2) + 100000 * 32);
            }
}

// --- warp intrinsics ---------------------------------------------------------------------------

/// out[4 * t + k]: the four shuffle kinds with the given parameter and width, on values 1000 + t.
__global__ void shuffle_kernel(int* out, int param, int width) {
  const int value = 1000 + static_cast<int>(threadIdx.x);
  const int t = static_cast<int>(threadIdx.x);
  out[4 * t + 0] = __shfl_xor_sync(0xffffffffu, value, param, width);
  out[4 * t + 1] = __shfl_down_sync(0xffffffffu, value, static_cast<unsigned>(param), width);
  out[4 * t + 2] = __shfl_up_sync(0xffffffffu, value, static_cast<unsigned>(param), width);
  out[4 * t + 3] = __shfl_sync(0xffffffffu, value, param + t, width);
}

TEST(Simt, ShufflesFollowCudaWidthSegments) {
  constexpr int kThreads = 64;
  DeviceBuffer<int> out(4 * kThreads);
  for (int width : {1, 2, 4, 8, 16, 32}) {
    for (int param = 0; param < 32; ++param) {
      out.fill_bytes(0xFF);
      detail::launch(LaunchConfig{dim3(1), dim3(kThreads)}, "shuffle_kernel", shuffle_kernel,
                     out.data(), param, width);
      const auto got = out.to_host();
      for (int t = 0; t < kThreads; ++t) {
        const int lane = t % 32;
        const int base = lane & ~(width - 1);
        const auto in_segment = [&](int source) { return source >= base && source < base + width; };
        const int xor_src = in_segment(lane ^ param) ? lane ^ param : lane;
        const int down_src = in_segment(lane + param) ? lane + param : lane;
        const int up_src = in_segment(lane - param) ? lane - param : lane;
        const int idx_src = base + ((param + t) & (width - 1));
        const int warp_base = t - lane;
        SCOPED_TRACE("width " + std::to_string(width) + " param " + std::to_string(param) +
                     " thread " + std::to_string(t));
        ASSERT_EQ(got[4 * t + 0], 1000 + warp_base + xor_src);
        ASSERT_EQ(got[4 * t + 1], 1000 + warp_base + down_src);
        ASSERT_EQ(got[4 * t + 2], 1000 + warp_base + up_src);
        ASSERT_EQ(got[4 * t + 3], 1000 + warp_base + idx_src);
      }
    }
  }
}

__global__ void vote_kernel(unsigned* out, unsigned pattern) {
  const unsigned lane = threadIdx.x % 32;
  const int predicate = (pattern >> lane) & 1u;
  out[3 * threadIdx.x + 0] = __ballot_sync(0xffffffffu, predicate);
  out[3 * threadIdx.x + 1] = __any_sync(0xffffffffu, predicate) ? 1u : 0u;
  out[3 * threadIdx.x + 2] = __all_sync(0xffffffffu, predicate) ? 1u : 0u;
}

TEST(Simt, BallotAnyAll) {
  DeviceBuffer<unsigned> out(3 * 32);
  for (unsigned pattern : {0u, 1u, 0x80000000u, 0xdeadbeefu, 0xffffffffu}) {
    out.fill_bytes(0xFF);
    detail::launch(LaunchConfig{dim3(1), dim3(32)}, "vote_kernel", vote_kernel, out.data(),
                   pattern);
    const auto got = out.to_host();
    for (int t = 0; t < 32; ++t) {
      EXPECT_EQ(got[3 * t + 0], pattern);
      EXPECT_EQ(got[3 * t + 1], pattern != 0 ? 1u : 0u);
      EXPECT_EQ(got[3 * t + 2], pattern == 0xffffffffu ? 1u : 0u);
    }
  }
}

__global__ void atomic_kernel(int* counter, unsigned long long* total, unsigned* biggest) {
  atomicAdd(counter, 1);
  atomicAdd(total, static_cast<unsigned long long>(threadIdx.x + 1));
  atomicMax(biggest, blockIdx.x * 1000 + threadIdx.x);
}

TEST(Simt, IntegerAtomics) {
  DeviceBuffer<int> counter(1);
  DeviceBuffer<unsigned long long> total(1);
  DeviceBuffer<unsigned> biggest(1);
  counter.fill_bytes(0);
  total.fill_bytes(0);
  biggest.fill_bytes(0);
  detail::launch(LaunchConfig{dim3(7), dim3(96)}, "atomic_kernel", atomic_kernel, counter.data(),
                 total.data(), biggest.data());
  EXPECT_EQ(counter.to_host()[0], 7 * 96);
  EXPECT_EQ(total.to_host()[0], 7ull * (96 * 97 / 2));
  EXPECT_EQ(biggest.to_host()[0], 6u * 1000 + 95);
}

// --- shared memory -----------------------------------------------------------------------------

/// Thread 0 reads dynamic shared memory before anyone wrote it in this block, then the block
/// fills it: each block must start from the NaN pattern, not the previous block's data.
__global__ void dynamic_shared_kernel(float* first_seen, int count) {
  WF_DYNAMIC_SHARED(float, scratch);
  if (threadIdx.x == 0) first_seen[blockIdx.x] = scratch[count - 1];
  __syncthreads();
  for (int i = threadIdx.x; i < count; i += blockDim.x) scratch[i] = 1.0f + i;
  __syncthreads();
}

TEST(Simt, DynamicSharedMemoryStartsAsNanInEveryBlock) {
  const int count = 1000;
  DeviceBuffer<float> seen = poisoned_buffer<float>(4);
  seen.fill_bytes(0);
  detail::launch(LaunchConfig{dim3(4), dim3(64), count * sizeof(float)}, "dynamic_shared_kernel",
                 dynamic_shared_kernel, seen.data(), count);
  for (float value : seen.to_host()) EXPECT_TRUE(std::isnan(value));
}

/// Static shared memory is one array per block; a block-wide reversal through it needs a barrier.
template <bool kWithBarrier>
__global__ void reverse_kernel(const int* in, int* out) {
  __shared__ int tile[256];
  const unsigned t = threadIdx.x;
  tile[t] = in[blockIdx.x * blockDim.x + t];
  if (kWithBarrier) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = tile[blockDim.x - 1 - t];
}

TEST(Simt, MissingBarrierGivesWrongResultsUnderSomeSchedule) {
  const int blocks = 3, threads = 256;
  const auto in = random_values<int>(blocks * threads, 1, 1, 1 << 20);
  std::vector<int> expected(in.size());
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) expected[b * threads + t] = in[b * threads + threads - 1 - t];
  auto device_in = to_device(in);
  auto out = DeviceBuffer<int>(in.size());
  int wrong_schedules = 0;
  for_each_schedule([&](const std::string& schedule) {
    out.fill_bytes(0xFF);
    detail::launch(LaunchConfig{dim3(blocks), dim3(threads)}, "reverse_kernel<true>",
                   reverse_kernel<true>, device_in.data(), out.data());
    EXPECT_TRUE(bitwise_equal(out.to_host(), expected)) << "with the barrier, " << schedule;
    out.fill_bytes(0xFF);
    detail::launch(LaunchConfig{dim3(blocks), dim3(threads)}, "reverse_kernel<false>",
                   reverse_kernel<false>, device_in.data(), out.data());
    if (out.to_host() != expected) ++wrong_schedules;
  });
  EXPECT_GE(wrong_schedules, 1) << "the missing barrier went unnoticed under every schedule";
}

// --- detectors -----------------------------------------------------------------------------------

using simt::testing::fault_of;

__global__ void divergent_barrier_kernel() {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}

TEST(SimtDetect, BarrierDivergence) {
  for_each_schedule([](const std::string& schedule) {
    const std::string what = fault_of([] {
      detail::launch(LaunchConfig{dim3(2), dim3(64)}, "divergent_barrier_kernel",
                     divergent_barrier_kernel);
    });
    EXPECT_THAT(what, HasSubstr("barrier divergence")) << schedule;
  });
  // Forward order: threads 0..15 wait at the first barrier, thread 16 reaches the other one.
  const ScopedSchedule forward("forward");
  const std::string what = fault_of([] {
    detail::launch(LaunchConfig{dim3(2), dim3(64)}, "divergent_barrier_kernel",
                   divergent_barrier_kernel);
  });
  EXPECT_THAT(what, HasSubstr("kernel 'divergent_barrier_kernel'"));
  EXPECT_THAT(what, HasSubstr("block (0,0,0)"));
  EXPECT_THAT(what, HasSubstr("thread (16,0,0)"));
  EXPECT_THAT(what, HasSubstr("barrier divergence"));
  EXPECT_THAT(what, HasSubstr("simt/simt_test.cpp"));
}

__global__ void early_exit_kernel(int* out) {
  if (threadIdx.x == 40) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST(SimtDetect, ThreadExitingBeforeABarrier) {
  DeviceBuffer<int> out(64);
  for_each_schedule([&](const std::string& schedule) {
    const std::string what = fault_of([&] {
      detail::launch(LaunchConfig{dim3(1), dim3(64)}, "early_exit_kernel", early_exit_kernel,
                     out.data());
    });
    EXPECT_THAT(what, HasSubstr("barrier divergence")) << schedule;
    EXPECT_THAT(what, HasSubstr("exited")) << schedule;
  });
}

__global__ void shuffle_outside_mask_kernel(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, 7, 20);
}

TEST(SimtDetect, ShuffleReadingALaneOutsideTheMask) {
  DeviceBuffer<int> out(32);
  const std::string what = fault_of([&] {
    detail::launch(LaunchConfig{dim3(1), dim3(32)}, "shuffle_outside_mask_kernel",
                   shuffle_outside_mask_kernel, out.data());
  });
  // Width 32: lane L reads lane (20 & 31) = 20, outside 0x0000ffff.
  EXPECT_THAT(what, HasSubstr("reads lane 20, which is outside mask 0x0000ffff"));
  EXPECT_THAT(what, HasSubstr("thread (0,0,0)"));
}

__global__ void shuffle_exited_lane_kernel(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

TEST(SimtDetect, ShuffleWhoseMaskNamesExitedLanes) {
  DeviceBuffer<int> out(32);
  for_each_schedule([&](const std::string& schedule) {
    const std::string what = fault_of([&] {
      detail::launch(LaunchConfig{dim3(1), dim3(32)}, "shuffle_exited_lane_kernel",
                     shuffle_exited_lane_kernel, out.data());
    });
    EXPECT_THAT(what, HasSubstr("__shfl_xor_sync")) << schedule;
    EXPECT_THAT(what, HasSubstr("exited")) << schedule;
  });
}

__global__ void mask_without_caller_kernel(int* out) {
  if (threadIdx.x == 0) out[0] = __shfl_down_sync(0x2u, 1, 1);
}

TEST(SimtDetect, MaskLeavingOutTheCaller) {
  DeviceBuffer<int> out(32);
  const std::string what = fault_of([&] {
    detail::launch(LaunchConfig{dim3(1), dim3(32)}, "mask_without_caller_kernel",
                   mask_without_caller_kernel, out.data());
  });
  EXPECT_THAT(what, HasSubstr("leaves out the calling lane"));
}

__global__ void partial_warp_kernel(float* out) {
  out[threadIdx.x] = detail::warp_all_reduce_sum(1.0f);
}

TEST(SimtDetect, FullMaskOnAPartialWarp) {
  DeviceBuffer<float> out(48);
  const std::string what = fault_of([&] {
    detail::launch(LaunchConfig{dim3(1), dim3(48)}, "partial_warp_kernel", partial_warp_kernel,
                   out.data());
  });
  EXPECT_THAT(what, HasSubstr("do not exist (the block has 48 threads)"));
}

__global__ void mixed_warp_ops_kernel(unsigned* out) {
  if (threadIdx.x % 2 == 0) {
    out[threadIdx.x] = __ballot_sync(0xffffffffu, 1);
  } else {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 3u, 1);
  }
}

TEST(SimtDetect, LanesInDifferentWarpOps) {
  DeviceBuffer<unsigned> out(32);
  const std::string what = fault_of([&] {
    detail::launch(LaunchConfig{dim3(1), dim3(32)}, "mixed_warp_ops_kernel", mixed_warp_ops_kernel,
                   out.data());
  });
  EXPECT_THAT(what, HasSubstr("warp divergence"));
}

/// Lane 0 goes straight to the block barrier; its warp-mates wait for it in __syncwarp first.
__global__ void deadlock_kernel() {
  if (threadIdx.x != 0) __syncwarp();
  __syncthreads();
}

TEST(SimtDetect, Deadlock) {
  for_each_schedule([&](const std::string& schedule) {
    const std::string what = fault_of([&] {
      detail::launch(LaunchConfig{dim3(1), dim3(64)}, "deadlock_kernel", deadlock_kernel);
    });
    EXPECT_THAT(what, HasSubstr("kernel 'deadlock_kernel'")) << schedule;
    EXPECT_THAT(what, HasSubstr("__syncwarp")) << schedule;
    EXPECT_THAT(what, HasSubstr("__syncthreads")) << schedule;
  });
  const ScopedSchedule forward("forward");
  const std::string what = fault_of([&] {
    detail::launch(LaunchConfig{dim3(1), dim3(64)}, "deadlock_kernel", deadlock_kernel);
  });
  EXPECT_THAT(what, HasSubstr("deadlock: no thread can make progress"));
}

template <class T>
__global__ void misaligned_pack_kernel(const T* in, T* out) {
  detail::store_pack<4>(out, detail::load_pack<4>(in));
}

TEST(SimtDetect, MisalignedVectorAccess) {
  DeviceBuffer<float> in(16);
  DeviceBuffer<float> out(16);
  in.fill_bytes(0);
  const std::string what = fault_of([&] {
    detail::launch(LaunchConfig{dim3(1), dim3(1)}, "misaligned_pack_kernel",
                   misaligned_pack_kernel<float>, in.data() + 1, out.data());
  });
  EXPECT_THAT(what, HasSubstr("misaligned 16-byte access in load_pack"));
  // The aligned form runs.
  detail::launch(LaunchConfig{dim3(1), dim3(1)}, "misaligned_pack_kernel",
                 misaligned_pack_kernel<float>, in.data(), out.data());
}

TEST(SimtDetect, LaterLaunchesRunAfterAFault) {
  EXPECT_THROW(detail::launch(LaunchConfig{dim3(1), dim3(64)}, "deadlock_kernel", deadlock_kernel),
               simt::KernelFault);
  DeviceBuffer<unsigned> out(6 * 8);
  detail::launch(LaunchConfig{dim3(2), dim3(4)}, "builtins_kernel", builtins_kernel, out.data());
  EXPECT_EQ(out.to_host()[6 * 7 + 0], 3u);
  EXPECT_EQ(out.to_host()[6 * 7 + 3], 1u);
}

// --- launch configuration errors (the path a real launch reports through cudaGetLastError) ------

__global__ void empty_kernel() {}

TEST(SimtLaunch, TooManyThreadsIsACudaError) {
  try {
    detail::launch(LaunchConfig{dim3(1), dim3(1025)}, "empty_kernel", empty_kernel);
    FAIL() << "expected a CudaError";
  } catch (const CudaError& error) {
    EXPECT_EQ(error.code(), cudaErrorInvalidConfiguration);
    EXPECT_THAT(std::string(error.what()), HasSubstr("launch of kernel empty_kernel"));
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "the launch check must consume the error";
}

/// A copy of dynamic_shared_kernel that only this test opts in to large shared memory.
__global__ void opt_in_kernel(float* first_seen, int count) {
  dynamic_shared_kernel(first_seen, count);
}

TEST(SimtLaunch, LargeDynamicSharedMemoryNeedsTheOptIn) {
  const std::size_t bytes = 100 * 1024;
  try {
    detail::launch(LaunchConfig{dim3(1), dim3(32), bytes}, "opt_in_kernel", opt_in_kernel,
                   static_cast<float*>(nullptr), 0);
    FAIL() << "expected a CudaError without cudaFuncSetAttribute";
  } catch (const CudaError& error) {
    EXPECT_EQ(error.code(), cudaErrorInvalidValue);
  }
  DeviceBuffer<float> seen(1);
  WARPFUSE_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(&opt_in_kernel),
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(bytes)));
  detail::launch(LaunchConfig{dim3(1), dim3(32), bytes}, "opt_in_kernel", opt_in_kernel,
                 seen.data(), static_cast<int>(bytes / sizeof(float)));
  EXPECT_TRUE(std::isnan(seen.to_host()[0]));
}

// --- schedules -----------------------------------------------------------------------------------

TEST(SimtSchedule, Parse) {
  EXPECT_EQ(simt::parse_schedule("forward").order, simt::Order::forward);
  EXPECT_EQ(simt::parse_schedule("reverse").order, simt::Order::reverse);
  EXPECT_EQ(simt::parse_schedule("shuffle").order, simt::Order::shuffle);
  const auto seeded = simt::parse_schedule("shuffle:1234");
  EXPECT_EQ(seeded.order, simt::Order::shuffle);
  EXPECT_EQ(seeded.seed, 1234u);
  EXPECT_EQ(simt::to_string(seeded), "shuffle:1234");
  EXPECT_THROW(simt::parse_schedule("sideways"), std::invalid_argument);
  EXPECT_THROW(simt::parse_schedule("shuffle:"), std::invalid_argument);
  EXPECT_THROW(simt::parse_schedule("shuffle:12x"), std::invalid_argument);
}

/// ctest runs this binary again with SIMT_SCHEDULE=reverse and =shuffle:<seed>; the schedule in
/// force must be the one the environment asked for.
TEST(SimtSchedule, EnvironmentSelectsTheSchedule) {
  const char* text = std::getenv("SIMT_SCHEDULE");
  const std::string expected =
      text == nullptr ? "forward" : simt::to_string(simt::parse_schedule(text));
  EXPECT_EQ(simt::to_string(simt::current_schedule()), expected);
}

// --- AddressSanitizer inside kernels
// ---------------------------------------------------------------

[[maybe_unused]] __global__ void out_of_bounds_kernel(float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = 1.0f;  // the bug: no `if (i < n)`
  static_cast<void>(n);
}

TEST(SimtAsan, OutOfBoundsWriteInAKernelIsReported) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        DeviceBuffer<float> out(100);
        detail::launch(LaunchConfig{dim3(1), dim3(128)}, "out_of_bounds_kernel",
                       out_of_bounds_kernel, out.data(), 100);
      },
      "AddressSanitizer: heap-buffer-overflow");
#else
  GTEST_SKIP() << "not an AddressSanitizer build; the asan preset runs this test";
#endif
}

}  // namespace
}  // namespace warpfuse::test
