// warpfuse host — device queries (include/warpfuse/device.h).
#include "warpfuse/device.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <map>
#include <mutex>

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

std::int64_t grid_stride_blocks(std::int64_t work_blocks, int blocks_per_sm) {
  const std::int64_t resident =
      static_cast<std::int64_t>(current_device_info().multiprocessors) * blocks_per_sm;
  return std::max<std::int64_t>(1, std::min(work_blocks, resident));
}

}  // namespace detail
}  // namespace warpfuse
