// Tests of the emulator's thread-block clusters (emulated binary only): blocks of a cluster run
// together with their own dynamic shared memory, reach each other's through the mapping, meet at
// the cluster barrier; and each cluster rule, broken on purpose, is reported.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "kernels/common/dialect.cuh"
#include "simt/testing.h"
#include "test_util.h"

namespace warpfuse::test {
namespace {

using detail::cluster_block_rank;
using detail::cluster_map_shared;
using detail::cluster_num_blocks;
using detail::cluster_sync;
using detail::LaunchConfig;
using simt::testing::fault_of;
using ::testing::AnyOf;
using ::testing::HasSubstr;

/// Each block fills its shared memory with its own values, then reads its right neighbour's
/// (rank + 1 mod cluster) through the mapping. kFirstBarrier = false drops the barrier between
/// the writes and the peer's reads (a planted race); the final barrier keeps every block alive
/// until its peers are done with its shared memory.
template <bool kFirstBarrier>
__global__ void ring_kernel(const float* in, float* out, unsigned* ranks) {
  WF_DYNAMIC_SHARED(float, mine);
  const unsigned t = threadIdx.x;
  const unsigned block = blockIdx.x;
  mine[t] = in[block * blockDim.x + t] + 1000.0f * static_cast<float>(cluster_block_rank());
  if (kFirstBarrier) cluster_sync();
  const unsigned peer = (cluster_block_rank() + 1) % cluster_num_blocks();
  const float* theirs = cluster_map_shared(mine, peer);
  out[block * blockDim.x + t] = theirs[(t + 1) % blockDim.x];
  if (t == 0) ranks[2 * block] = cluster_block_rank();
  if (t == 0) ranks[2 * block + 1] = cluster_num_blocks();
  cluster_sync();
}

void launch_ring(bool first_barrier, unsigned clusters, unsigned size, unsigned threads,
                 const float* in, float* out, unsigned* ranks) {
  const LaunchConfig config{dim3(clusters * size), dim3(threads), threads * sizeof(float)};
  if (first_barrier) {
    detail::launch_clustered(config, size, "ring_kernel<true>", ring_kernel<true>, in, out, ranks);
  } else {
    detail::launch_clustered(config, size, "ring_kernel<false>", ring_kernel<false>, in, out,
                             ranks);
  }
}

std::vector<float> expected_ring(const std::vector<float>& in, unsigned clusters, unsigned size,
                                 unsigned threads) {
  std::vector<float> expected(in.size());
  for (unsigned c = 0; c < clusters; ++c)
    for (unsigned r = 0; r < size; ++r)
      for (unsigned t = 0; t < threads; ++t) {
        const unsigned peer = (r + 1) % size;
        const unsigned source = (c * size + peer) * threads + (t + 1) % threads;
        expected[(c * size + r) * threads + t] = in[source] + 1000.0f * static_cast<float>(peer);
      }
  return expected;
}

TEST(SimtCluster, BlocksOfAClusterShareTheirSharedMemory) {
  for (const unsigned size : {2u, 4u, 8u}) {
    const unsigned clusters = 3, threads = 64;
    const auto in = random_values<float>(clusters * size * threads, 11 + size);
    const auto device_in = to_device(in);
    const auto expected = expected_ring(in, clusters, size, threads);
    for_each_schedule([&](const std::string& schedule) {
      DeviceBuffer<float> out = poisoned_buffer<float>(in.size());
      DeviceBuffer<unsigned> ranks = poisoned_buffer<unsigned>(2 * clusters * size);
      launch_ring(true, clusters, size, threads, device_in.data(), out.data(), ranks.data());
      EXPECT_TRUE(bitwise_equal(out.to_host(), expected)) << "cluster " << size << " " << schedule;
      const auto got = ranks.to_host();
      for (unsigned b = 0; b < clusters * size; ++b) {
        EXPECT_EQ(got[2 * b], b % size) << "rank of block " << b << ", " << schedule;
        EXPECT_EQ(got[2 * b + 1], size) << schedule;
      }
    });
  }
}

TEST(SimtCluster, MissingClusterBarrierGivesWrongResultsUnderSomeSchedule) {
  const unsigned clusters = 2, size = 4, threads = 32;
  const auto in = random_values<float>(clusters * size * threads, 5);
  const auto device_in = to_device(in);
  const auto expected = expected_ring(in, clusters, size, threads);
  int wrong = 0;
  for_each_schedule([&](const std::string&) {
    DeviceBuffer<float> out = poisoned_buffer<float>(in.size());
    DeviceBuffer<unsigned> ranks(2 * clusters * size);
    launch_ring(false, clusters, size, threads, device_in.data(), out.data(), ranks.data());
    if (!bitwise_equal(out.to_host(), expected)) ++wrong;
  });
  EXPECT_GE(wrong, 1) << "a peer read before its owner wrote went unnoticed under every schedule";
}

// --- launch configuration -----------------------------------------------------------------------

__global__ void cluster_empty_kernel() {}

TEST(SimtCluster, ClusterMustDivideTheGridAndFitItsSizeLimit) {
  const auto launch_with = [](unsigned grid, unsigned size) {
    detail::launch_clustered(LaunchConfig{dim3(grid), dim3(32)}, size, "cluster_empty_kernel",
                             cluster_empty_kernel);
  };
  for (const auto& [grid, size] : {std::pair{6u, 4u}, std::pair{16u, 16u}, std::pair{17u, 17u}}) {
    try {
      launch_with(grid, size);
      FAIL() << "expected a CudaError for grid " << grid << " cluster " << size;
    } catch (const CudaError& error) {
      EXPECT_EQ(error.code(), cudaErrorInvalidClusterSize) << grid << " " << size;
      EXPECT_THAT(std::string(error.what()), HasSubstr("cluster_empty_kernel"));
    }
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  }
  launch_with(8, 4);
  launch_with(8, 8);
  const void* handle = detail::kernel_handle(cluster_empty_kernel);
  // 16 blocks need the non-portable opt-in, which active_clusters sets for sizes above 8.
  EXPECT_GT(detail::active_clusters(handle, 16, 32, 0), 0);
  launch_with(32, 16);
  EXPECT_EQ(detail::active_clusters(handle, 17, 32, 0), 0);
  // The model: 8 GPCs of 16 SMs; a 1024-thread block fills an SM (2048 threads: 2 blocks).
  EXPECT_EQ(detail::active_clusters(handle, 8, 1024, 0), 8 * (16 * 2 / 8));
}

// --- detectors -----------------------------------------------------------------------------------

__global__ void divergent_cluster_barrier_kernel() {
  if (cluster_block_rank() == 0) {
    cluster_sync();
  } else {
    cluster_sync();
  }
}

TEST(SimtClusterDetect, ClusterBarrierDivergence) {
  for_each_schedule([](const std::string& schedule) {
    const std::string what = fault_of([] {
      detail::launch_clustered(LaunchConfig{dim3(4), dim3(64)}, 2,
                               "divergent_cluster_barrier_kernel",
                               divergent_cluster_barrier_kernel);
    });
    EXPECT_THAT(what, HasSubstr("cluster barrier divergence")) << schedule;
    EXPECT_THAT(what, HasSubstr("kernel 'divergent_cluster_barrier_kernel'")) << schedule;
    EXPECT_THAT(what, HasSubstr("cluster_test.cpp")) << "names the barriers: " << what;
  });
}

__global__ void cluster_early_exit_kernel(float* out) {
  if (cluster_block_rank() == 1 && threadIdx.x == 5) return;
  cluster_sync();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

TEST(SimtClusterDetect, ThreadExitingBeforeAClusterBarrier) {
  DeviceBuffer<float> out(4 * 32);
  for_each_schedule([&](const std::string& schedule) {
    const std::string what = fault_of([&] {
      detail::launch_clustered(LaunchConfig{dim3(4), dim3(32)}, 4, "cluster_early_exit_kernel",
                               cluster_early_exit_kernel, out.data());
    });
    EXPECT_THAT(what, HasSubstr("cluster barrier divergence")) << schedule;
    EXPECT_THAT(what, HasSubstr("exited")) << schedule;
  });
}

/// Reads the right neighbour's shared memory and exits without the final cluster barrier.
__global__ void exit_without_cluster_barrier_kernel(float* out) {
  WF_DYNAMIC_SHARED(float, mine);
  mine[threadIdx.x] = static_cast<float>(threadIdx.x);
  cluster_sync();
  const float* theirs = cluster_map_shared(mine, (cluster_block_rank() + 1) % cluster_num_blocks());
  out[blockIdx.x * blockDim.x + threadIdx.x] = theirs[threadIdx.x];
}

TEST(SimtClusterDetect, BlockExitingWhileAPeerMayStillAccessItsSharedMemory) {
  DeviceBuffer<float> out(4 * 32);
  for_each_schedule([&](const std::string& schedule) {
    const std::string what = fault_of([&] {
      detail::launch_clustered(LaunchConfig{dim3(4), dim3(32), 32 * sizeof(float)}, 4,
                               "exit_without_cluster_barrier_kernel",
                               exit_without_cluster_barrier_kernel, out.data());
    });
    // Whichever comes first: a block leaving while the peer that mapped it runs, or a block
    // mapping a peer that has already left.
    EXPECT_THAT(what, HasSubstr("distributed shared memory")) << schedule << ": " << what;
    EXPECT_THAT(what, AnyOf(HasSubstr("is still running"), HasSubstr("has exited")))
        << schedule << ": " << what;
  });
}

__global__ void rank_outside_cluster_kernel(float* out) {
  WF_DYNAMIC_SHARED(float, mine);
  mine[threadIdx.x] = 1.0f;
  cluster_sync();
  out[threadIdx.x] = *cluster_map_shared(mine, cluster_num_blocks());
  cluster_sync();
}

TEST(SimtClusterDetect, MappingARankOutsideTheCluster) {
  DeviceBuffer<float> out(32);
  const std::string what = fault_of([&] {
    detail::launch_clustered(LaunchConfig{dim3(2), dim3(32), 32 * sizeof(float)}, 2,
                             "rank_outside_cluster_kernel", rank_outside_cluster_kernel,
                             out.data());
  });
  EXPECT_THAT(what, HasSubstr("rank 2 is outside the cluster of 2 block(s)"));
  EXPECT_THAT(what, HasSubstr("map_shared_rank at"));
}

__global__ void map_outside_dynamic_shared_kernel(float* out) {
  out[threadIdx.x] = *cluster_map_shared(out + threadIdx.x, 0);
  cluster_sync();
}

TEST(SimtClusterDetect, MappingAnAddressOutsideDynamicSharedMemory) {
  DeviceBuffer<float> out(32);
  const std::string what = fault_of([&] {
    detail::launch_clustered(LaunchConfig{dim3(2), dim3(32), 32 * sizeof(float)}, 2,
                             "map_outside_dynamic_shared_kernel", map_outside_dynamic_shared_kernel,
                             out.data());
  });
  EXPECT_THAT(what, HasSubstr("not in this block's dynamic shared memory"));
}

/// Lane 0 of rank 1 waits in __syncwarp for lane 1, which waits at the cluster barrier.
__global__ void cluster_deadlock_kernel() {
  if (cluster_block_rank() == 1 && threadIdx.x == 0) __syncwarp(0x3u);
  cluster_sync();
}

TEST(SimtClusterDetect, Deadlock) {
  for_each_schedule([](const std::string& schedule) {
    const std::string what = fault_of([] {
      detail::launch_clustered(LaunchConfig{dim3(2), dim3(32)}, 2, "cluster_deadlock_kernel",
                               cluster_deadlock_kernel);
    });
    // Lane 1 first at the barrier: nobody can move. Lane 0 first in __syncwarp: lane 1 is caught
    // reaching the barrier while lane 0 waits for it.
    EXPECT_THAT(what, AnyOf(HasSubstr("deadlock: no thread can make progress"),
                            HasSubstr("of its warp wait for it in __syncwarp")))
        << schedule << ": " << what;
    EXPECT_THAT(what, HasSubstr("cluster barrier")) << schedule << ": " << what;
  });
  const ScopedSchedule reverse("reverse");
  const std::string what = fault_of([] {
    detail::launch_clustered(LaunchConfig{dim3(2), dim3(32)}, 2, "cluster_deadlock_kernel",
                             cluster_deadlock_kernel);
  });
  EXPECT_THAT(what, HasSubstr("deadlock: no thread can make progress"));
  EXPECT_THAT(what, HasSubstr("wait at the cluster barrier"));
  EXPECT_THAT(what, HasSubstr("__syncwarp"));
}

}  // namespace
}  // namespace warpfuse::test
