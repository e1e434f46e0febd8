// warpfuse — asking whether a CUDA device is present, without throwing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

namespace warpfuse {

/// True when cudaGetDeviceCount reports at least one device. Otherwise false, with cudart's reason
/// ("no CUDA-capable device is detected", "CUDA driver version is insufficient ...") in *reason.
/// The error this leaves in cudart's last-error slot is cleared, so later launch checks are not
/// confused by it.
inline bool cuda_device_available(std::string* reason = nullptr) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    if (reason != nullptr)
      *reason = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    return false;
  }
  if (count == 0) {
    if (reason != nullptr) *reason = "cudaGetDeviceCount reports 0 devices";
    return false;
  }
  return true;
}

/// What warpfuse's dispatch looks at, for one device.
struct DeviceInfo {
  int device = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  std::size_t global_memory_bytes = 0;
  std::size_t shared_memory_per_block_optin = 0;  ///< the most dynamic shared memory one block gets
  std::size_t l2_cache_bytes = 0;
};

/// Properties of `device` (-1: the current device). Throws warpfuse::CudaError when the query
/// fails, for example when no device is present.
DeviceInfo device_info(int device = -1);

}  // namespace warpfuse
