// The access observer's detectors, each proven on a planted bug (observed build only): shared- and
// global-memory races, intra-warp exchanges without __syncwarp, uninitialised global and static
// shared reads; and the correct versions of the same kernels, which must stay clean.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "host/cuda/launch.h"
#include "kernels/common/dialect.cuh"
#include "simt/observer.h"
#include "simt/simt.h"
#include "simt/testing.h"
#include "warpfuse/memory.h"

// Not in an anonymous namespace: the reports name a static shared array through the symbol table.
namespace planted {

using warpfuse::DeviceBuffer;
using warpfuse::detail::launch;
using warpfuse::detail::LaunchConfig;

using simt::testing::fault_of;

DeviceBuffer<float> filled(std::size_t n, float value = 1.0f) {
  DeviceBuffer<float> buffer(n);
  std::vector<float> host(n, value);
  WARPFUSE_CUDA_CHECK(
      cudaMemcpy(buffer.data(), host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  return buffer;
}

// --- shared memory: a missing barrier before the buffer is reused -------------------------------

template <bool kBarrier>
__global__ void reuse_kernel(const float* x, float* y) {
  __shared__ float stage[64];
  const unsigned t = threadIdx.x;
  stage[t] = x[t];
  __syncthreads();
  y[t] = stage[(t + 1) % 64];
  if (kBarrier) __syncthreads();
  stage[t] = 2.0f * x[t];  // without the barrier: overwrites what thread t - 1 may still read
  __syncthreads();
  y[t] += stage[(t + 1) % 64];
}

TEST(Racecheck, MissingBarrierBeforeSharedReuse) {
  ASSERT_TRUE(simt::observing());
  DeviceBuffer<float> x = filled(64), y(64);
  const std::string bad = fault_of([&] {
    launch(LaunchConfig{dim3(1), dim3(64)}, "reuse_kernel", reuse_kernel<false>, x.data(),
           y.data());
  });
  EXPECT_NE(bad.find("kernel 'reuse_kernel' block (0,0,0)"), std::string::npos) << bad;
  // Which of the two accesses comes first depends on the schedule (SIMT_SCHEDULE): either kind.
  EXPECT_TRUE(bad.find("race (write after read) on static shared") != std::string::npos ||
              bad.find("race (read after write) on static shared") != std::string::npos)
      << bad;
  EXPECT_NE(bad.find("stage"), std::string::npos) << "names the array: " << bad;
  EXPECT_NE(bad.find("thread ("), std::string::npos) << bad;
  EXPECT_NE(bad.find("racecheck_test.cpp:"), std::string::npos) << "code locations: " << bad;
  EXPECT_EQ(fault_of([&] {
              launch(LaunchConfig{dim3(1), dim3(64)}, "reuse_kernel", reuse_kernel<true>, x.data(),
                     y.data());
            }),
            "");
}

// --- a warp exchanging through shared memory without __syncwarp -------------------------------

template <bool kSyncwarp>
__global__ void warp_exchange_kernel(const float* x, float* y) {
  __shared__ float lanes[32];
  const unsigned lane = threadIdx.x;
  lanes[lane] = x[lane];
  if (kSyncwarp) __syncwarp();
  y[lane] = lanes[lane ^ 1];
}

TEST(Racecheck, IntraWarpExchangeWithoutSyncwarp) {
  DeviceBuffer<float> x = filled(32), y(32);
  const std::string bad = fault_of([&] {
    launch(LaunchConfig{dim3(1), dim3(32)}, "warp_exchange_kernel", warp_exchange_kernel<false>,
           x.data(), y.data());
  });
  // Lane 0 reads lanes[1] before lane 1 writes it (and later lanes after): either way unordered.
  EXPECT_TRUE(bad.find("race (write after read) on static shared") != std::string::npos ||
              bad.find("race (read after write) on static shared") != std::string::npos)
      << bad;
  EXPECT_NE(bad.find("(warp 0 lane "), std::string::npos) << bad;
  EXPECT_EQ(fault_of([&] {
              launch(LaunchConfig{dim3(1), dim3(32)}, "warp_exchange_kernel",
                     warp_exchange_kernel<true>, x.data(), y.data());
            }),
            "");
}

// --- global memory: two blocks writing one output; an in-place neighbour read -------------------

__global__ void one_output_kernel(float* out) {
  if (threadIdx.x == 0) out[0] = static_cast<float>(blockIdx.x);
}

TEST(Racecheck, TwoBlocksWriteOneOutput) {
  DeviceBuffer<float> out = filled(4);
  const std::string bad = fault_of([&] {
    launch(LaunchConfig{dim3(2), dim3(32)}, "one_output_kernel", one_output_kernel, out.data());
  });
  EXPECT_NE(bad.find("race (write after write) on global byte 0 of the 16-byte allocation"),
            std::string::npos)
      << bad;
  // The kernel's block and the other one, whichever ran first (SIMT_SCHEDULE).
  EXPECT_TRUE(bad.find("block (0,0,0) thread (0,0,0)") != std::string::npos ||
              bad.find("block (1,0,0) thread (0,0,0)") != std::string::npos)
      << "names the other block: " << bad;
  EXPECT_EQ(
      fault_of([&] {
        launch(LaunchConfig{dim3(1), dim3(32)}, "one_output_kernel", one_output_kernel, out.data());
      }),
      "");
}

/// x[i] += x[i + 1] in place: thread i reads the element thread i + 1 overwrites.
template <bool kCopyFirst>
__global__ void in_place_neighbour_kernel(float* x, const float* copy, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i + 1 >= n) return;
  const float next = kCopyFirst ? copy[i + 1] : x[i + 1];
  x[i] = x[i] + next;
}

TEST(Racecheck, InPlaceOpReadsAnOverwrittenNeighbour) {
  DeviceBuffer<float> x = filled(128), copy = filled(128);
  const std::string bad = fault_of([&] {
    launch(LaunchConfig{dim3(2), dim3(64)}, "in_place_neighbour_kernel",
           in_place_neighbour_kernel<false>, x.data(), copy.data(), 128);
  });
  EXPECT_NE(bad.find("race ("), std::string::npos) << bad;
  EXPECT_NE(bad.find("of the 512-byte allocation"), std::string::npos) << bad;
  EXPECT_EQ(fault_of([&] {
              launch(LaunchConfig{dim3(2), dim3(64)}, "in_place_neighbour_kernel",
                     in_place_neighbour_kernel<true>, x.data(), copy.data(), 128);
            }),
            "");
}

__global__ void count_kernel(unsigned* counter) {
  atomicAdd(counter, 1u);
}

TEST(Racecheck, AtomicsAreNotRaces) {
  DeviceBuffer<unsigned> counter(1);
  WARPFUSE_CUDA_CHECK(cudaMemset(counter.data(), 0, sizeof(unsigned)));
  const std::size_t first = simt::observed_launches();
  EXPECT_EQ(fault_of([&] {
              launch(LaunchConfig{dim3(3), dim3(64)}, "count_kernel", count_kernel, counter.data());
            }),
            "");
  unsigned value = 0;
  WARPFUSE_CUDA_CHECK(cudaMemcpy(&value, counter.data(), sizeof(value), cudaMemcpyDeviceToHost));
  EXPECT_EQ(value, 192u);
  const auto traffic = simt::traffic_since(first);
  ASSERT_EQ(traffic.size(), 1u);
  EXPECT_EQ(traffic[0].atomics, 192u);
}

// --- traffic: what the observer counts -------------------------------------------------------

__global__ void read_twice_kernel(const float* x, float* y, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = x[i] + x[(i + 1) % n];  // every element read twice, by 32-bit loads
}

TEST(Traffic, CountsEveryAccessByAllocationAndWidth) {
  DeviceBuffer<float> x = filled(256), y(256);
  const std::size_t first = simt::observed_launches();
  launch(LaunchConfig{dim3(2), dim3(128)}, "read_twice_kernel", read_twice_kernel, x.data(),
         y.data(), 256);
  const auto traffic = simt::traffic_since(first);
  ASSERT_EQ(traffic.size(), 1u);
  EXPECT_EQ(traffic[0].kernel, "read_twice_kernel");
  EXPECT_EQ(traffic[0].bytes_read(x.data()), 2u * 256 * sizeof(float));
  EXPECT_EQ(traffic[0].bytes_written(y.data()), 256u * sizeof(float));
  EXPECT_EQ(traffic[0].loads[2], 512u);  // 32-bit
  EXPECT_EQ(traffic[0].stores[2], 256u);
  EXPECT_EQ(traffic[0].loads[0] + traffic[0].stores[0], 0u);  // no 128-bit access
}

// --- initcheck -----------------------------------------------------------------------------------

__global__ void copy_kernel(const float* x, float* y) {
  y[threadIdx.x] = x[threadIdx.x];
}

TEST(Initcheck, ReadOfMemoryNothingWrote) {
  DeviceBuffer<float> fresh(32), y(32);
  const std::string bad = fault_of([&] {
    launch(LaunchConfig{dim3(1), dim3(32)}, "copy_kernel", copy_kernel, fresh.data(), y.data());
  });
  EXPECT_NE(bad.find("uninitialised read"), std::string::npos) << bad;
  EXPECT_NE(bad.find("of the 128-byte allocation"), std::string::npos) << bad;
  // A memset, a host copy or a kernel's write each initialise it.
  WARPFUSE_CUDA_CHECK(cudaMemset(fresh.data(), 0, 32 * sizeof(float)));
  EXPECT_EQ(
      fault_of([&] {
        launch(LaunchConfig{dim3(1), dim3(32)}, "copy_kernel", copy_kernel, fresh.data(), y.data());
      }),
      "");
  DeviceBuffer<float> next(32);
  EXPECT_EQ(
      fault_of([&] {
        launch(LaunchConfig{dim3(1), dim3(32)}, "copy_kernel", copy_kernel, y.data(), next.data());
      }),
      "")
      << "y was written by the previous kernel";
}

template <bool kWriteFirst>
__global__ void static_shared_kernel(float* y) {
  __shared__ float scratch[32];
  if (kWriteFirst) scratch[threadIdx.x] = 1.0f;
  __syncthreads();
  y[blockIdx.x * 32 + threadIdx.x] = scratch[threadIdx.x];
}

TEST(Initcheck, StaticSharedMemoryIsPoisonedPerBlock) {
  DeviceBuffer<float> y(64);
  const std::string bad = fault_of([&] {
    launch(LaunchConfig{dim3(1), dim3(32)}, "static_shared_kernel", static_shared_kernel<false>,
           y.data());
  });
  EXPECT_NE(bad.find("uninitialised read"), std::string::npos) << bad;
  EXPECT_NE(bad.find("scratch"), std::string::npos) << bad;
  // Written by block 0 does not count for block 1: each block starts poisoned.
  EXPECT_EQ(fault_of([&] {
              launch(LaunchConfig{dim3(2), dim3(32)}, "static_shared_kernel",
                     static_shared_kernel<true>, y.data());
            }),
            "");
}

// --- clusters: a peer's shared memory is ordered only by a cluster barrier ----------------------

/// Each block stores its value into its right neighbour's shared memory, then reads the value its
/// left neighbour stored into its own. Without the cluster barrier between them the read races
/// the peer's remote write.
template <bool kBarrier>
__global__ void push_to_peer_kernel(const float* x, float* y) {
  WF_DYNAMIC_SHARED(float, slots);
  namespace wd = warpfuse::detail;
  const unsigned rank = wd::cluster_block_rank();
  const unsigned right = (rank + 1) % wd::cluster_num_blocks();
  float* theirs = wd::cluster_map_shared(slots, right);
  theirs[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  if (kBarrier) wd::cluster_sync();
  y[blockIdx.x * blockDim.x + threadIdx.x] = slots[threadIdx.x];
  wd::cluster_sync();  // peers are done with this block's memory before it exits
}

TEST(Racecheck, PeerSharedMemoryWithoutAClusterBarrier) {
  ASSERT_TRUE(simt::observing());
  DeviceBuffer<float> x = filled(4 * 32), y(4 * 32);
  const LaunchConfig config{dim3(4), dim3(32), 32 * sizeof(float)};
  const std::string bad = fault_of([&] {
    warpfuse::detail::launch_clustered(config, 4, "push_to_peer_kernel", push_to_peer_kernel<false>,
                                       x.data(), y.data());
  });
  EXPECT_NE(bad.find("race ("), std::string::npos) << bad;
  EXPECT_NE(bad.find("dynamic shared byte"), std::string::npos) << bad;
  EXPECT_NE(bad.find("no ordering between their blocks"), std::string::npos) << bad;
  EXPECT_NE(bad.find("racecheck_test.cpp:"), std::string::npos) << "code locations: " << bad;
  EXPECT_EQ(fault_of([&] {
              warpfuse::detail::launch_clustered(config, 4, "push_to_peer_kernel",
                                                 push_to_peer_kernel<true>, x.data(), y.data());
            }),
            "");
}

__global__ void static_shared_cluster_kernel(const float* x, float* y) {
  __shared__ float stage[32];
  stage[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  y[blockIdx.x * blockDim.x + threadIdx.x] = stage[31 - threadIdx.x];
  warpfuse::detail::cluster_sync();
}

TEST(Racecheck, StaticSharedMemoryInAClusterKernel) {
  DeviceBuffer<float> x = filled(32), y(2 * 32);
  const std::string bad = fault_of([&] {
    warpfuse::detail::launch_clustered(LaunchConfig{dim3(2), dim3(32)}, 2,
                                       "static_shared_cluster_kernel", static_shared_cluster_kernel,
                                       x.data(), y.data());
  });
  EXPECT_NE(bad.find("static __shared__ memory"), std::string::npos) << bad;
  EXPECT_NE(bad.find("cluster kernel"), std::string::npos) << bad;
  // The same kernel as clusters of one block (ordinary blocks) is clean.
  EXPECT_EQ(fault_of([&] {
              warpfuse::detail::launch_clustered(LaunchConfig{dim3(2), dim3(32)}, 1,
                                                 "static_shared_cluster_kernel",
                                                 static_shared_cluster_kernel, x.data(), y.data());
            }),
            "");
}

}  // namespace planted
