// warpfuse host — device queries (include/warpfuse/device.h).
#include "warpfuse/device.h"

#include <cuda_runtime_api.h>

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

}  // namespace warpfuse
