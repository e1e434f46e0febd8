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

}  // namespace detail
}  // namespace warpfuse
