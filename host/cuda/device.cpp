// warpfuse host — device queries (include/warpfuse/device.h).
#include "warpfuse/device.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "host/cuda/common.h"
#include "warpfuse/error.h"

namespace warpfuse {

DeviceInfo device_info(int device) {
  if (device < 0) WARPFUSE_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  WARPFUSE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  DeviceInfo info;
  info.device = device;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  info.global_memory_bytes = prop.totalGlobalMem;
  info.shared_memory_per_block_optin = prop.sharedMemPerBlockOptin;
  info.l2_cache_bytes = static_cast<std::size_t>(prop.l2CacheSize);
  return info;
}

namespace detail {

const DeviceInfo& current_device_info() {
  static std::mutex mutex;
  static std::map<int, DeviceInfo> cache;
  int device = 0;
  WARPFUSE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  auto found = cache.find(device);
  if (found == cache.end()) found = cache.emplace(device, device_info(device)).first;
  return found->second;
}

namespace {

struct OccupancyKey {
  int device;
  const void* kernel;
  unsigned threads;
  std::size_t shared_bytes;
  bool operator<(const OccupancyKey& other) const {
    return std::tie(device, kernel, threads, shared_bytes) <
           std::tie(other.device, other.kernel, other.threads, other.shared_bytes);
  }
};

struct LaunchCaches {
  std::mutex mutex;
  std::map<OccupancyKey, int> occupancy;
  std::map<std::pair<int, const void*>, std::size_t> dynamic_shared;
  std::map<std::pair<OccupancyKey, unsigned>, int> clusters;  // by (kernel shape, cluster blocks)
  std::map<std::pair<int, const void*>, bool> non_portable;
};

LaunchCaches& launch_caches() {
  static LaunchCaches caches;
  return caches;
}

}  // namespace

void reset_launch_caches() {
  LaunchCaches& caches = launch_caches();
  std::lock_guard<std::mutex> lock(caches.mutex);
  caches.occupancy.clear();
  caches.dynamic_shared.clear();
  caches.clusters.clear();
  caches.non_portable.clear();
}

int resident_blocks_per_sm(const void* kernel, unsigned threads, std::size_t shared_bytes) {
  LaunchCaches& caches = launch_caches();
  auto& mutex = caches.mutex;
  auto& cache = caches.occupancy;
  int device = 0;
  WARPFUSE_CUDA_CHECK(cudaGetDevice(&device));
  const OccupancyKey key{device, kernel, threads, shared_bytes};
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto found = cache.find(key);
    if (found != cache.end()) return found->second;
  }
  int blocks = 0;
  WARPFUSE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &blocks, kernel, static_cast<int>(threads), shared_bytes));
  std::lock_guard<std::mutex> lock(mutex);
  cache.emplace(key, blocks);
  return blocks;
}

std::int64_t wave_blocks(const void* kernel, std::int64_t work_blocks, unsigned threads,
                         std::size_t shared_bytes) {
  const std::int64_t wave = static_cast<std::int64_t>(current_device_info().multiprocessors) *
                            resident_blocks_per_sm(kernel, threads, shared_bytes);
  return std::max<std::int64_t>(1, std::min(work_blocks, wave));
}

void allow_dynamic_shared(const void* kernel, std::size_t bytes) {
  constexpr std::size_t kDefaultDynamicShared = 48 * 1024;
  if (bytes <= kDefaultDynamicShared) return;
  LaunchCaches& caches = launch_caches();
  auto& allowed = caches.dynamic_shared;
  int device = 0;
  WARPFUSE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(caches.mutex);
  std::size_t& high_water = allowed[{device, kernel}];
  if (bytes <= high_water) return;
  WARPFUSE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(bytes)));
  high_water = bytes;
}

int active_clusters(const void* kernel, unsigned cluster_blocks, unsigned threads,
                    std::size_t shared_bytes) {
  if (current_device_info().compute_major < 9 || cluster_blocks < 1 || cluster_blocks > 16) {
    return 0;
  }
  LaunchCaches& caches = launch_caches();
  int device = 0;
  WARPFUSE_CUDA_CHECK(cudaGetDevice(&device));
  const auto key =
      std::make_pair(OccupancyKey{device, kernel, threads, shared_bytes}, cluster_blocks);
  {
    std::lock_guard<std::mutex> lock(caches.mutex);
    const auto found = caches.clusters.find(key);
    if (found != caches.clusters.end()) return found->second;
  }
  allow_dynamic_shared(kernel, shared_bytes);
  if (cluster_blocks > 8) allow_non_portable_clusters(kernel);
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = cluster_blocks;
  attribute.val.clusterDim.y = 1;
  attribute.val.clusterDim.z = 1;
  // In field order (gridDim, blockDim, ...): the emulated build's built-in variables are macros.
  const cudaLaunchConfig_t config{
      dim3(cluster_blocks), dim3(threads), shared_bytes, nullptr, &attribute, 1};
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    // The device or driver cannot schedule this cluster shape: no clusters, not an error.
    static_cast<void>(cudaGetLastError());
    clusters = 0;
  }
  std::lock_guard<std::mutex> lock(caches.mutex);
  caches.clusters.emplace(key, clusters);
  return clusters;
}

void allow_non_portable_clusters(const void* kernel) {
  LaunchCaches& caches = launch_caches();
  int device = 0;
  WARPFUSE_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(caches.mutex);
  bool& allowed = caches.non_portable[{device, kernel}];
  if (allowed) return;
  WARPFUSE_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  allowed = true;
}

}  // namespace detail
}  // namespace warpfuse
