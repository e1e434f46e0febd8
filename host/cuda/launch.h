// warpfuse host — the one way kernels are launched.
//
// Under nvcc this is kernel<<<grid, block, shared_bytes, stream>>>(args...) followed by the launch
// check; in the emulated build (WARPFUSE_SIMT) the same call runs the kernel on the SIMT emulator,
// and the launch check reads the emulator's cudaGetLastError. Either way a bad configuration
// surfaces as warpfuse::CudaError naming the kernel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "host/cuda/common.h"
#include "warpfuse/error.h"

namespace warpfuse::detail {

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
};

/// Launches `kernel` (named `name` in errors) with `config`, then checks the launch.
template <class... Params, class... Args>
void launch(const LaunchConfig& config, const char* name, void (*kernel)(Params...),
            Args&&... args) {
#if defined(WARPFUSE_SIMT)
  ::simt::launch(name, config.grid, config.block, config.shared_bytes, config.stream, kernel,
                 std::forward<Args>(args)...);
#else
  // clang-format does not know CUDA's launch syntax in a .h file.
  // clang-format off
  kernel<<<config.grid, config.block, config.shared_bytes, config.stream>>>(
      std::forward<Args>(args)...);
  // clang-format on
#endif
  check_launch(name, __FILE__, __LINE__);
}

/// Launches `kernel` in clusters of `cluster_blocks` blocks along x (config.grid.x a multiple of
/// it): cudaLaunchKernelEx with the cluster-dimension attribute under nvcc, the emulator's cluster
/// launch otherwise. The caller has checked active_clusters(...) > 0, which also set the
/// opt-ins the shape needs.
template <class... Params, class... Args>
void launch_clustered(const LaunchConfig& config, unsigned cluster_blocks, const char* name,
                      void (*kernel)(Params...), Args&&... args) {
#if defined(WARPFUSE_SIMT)
  ::simt::launch_cluster(name, config.grid, config.block, dim3(cluster_blocks), config.shared_bytes,
                         config.stream, kernel, std::forward<Args>(args)...);
#else
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = cluster_blocks;
  attribute.val.clusterDim.y = 1;
  attribute.val.clusterDim.z = 1;
  cudaLaunchConfig_t launch_config{};
  launch_config.gridDim = config.grid;
  launch_config.blockDim = config.block;
  launch_config.dynamicSmemBytes = config.shared_bytes;
  launch_config.stream = config.stream;
  launch_config.attrs = &attribute;
  launch_config.numAttrs = 1;
  const cudaError_t status =
      cudaLaunchKernelEx(&launch_config, kernel, std::forward<Args>(args)...);
  if (status != cudaSuccess) {
    static_cast<void>(cudaGetLastError());  // not sticky: leave no stale error behind
    throw_cuda_error(status, (std::string("launch of kernel ") + name).c_str(), __FILE__, __LINE__);
  }
#endif
  check_launch(name, __FILE__, __LINE__);
}

/// The type-erased handle the occupancy and attribute queries take.
template <class... Params>
const void* kernel_handle(void (*kernel)(Params...)) {
  return reinterpret_cast<const void*>(kernel);
}

/// Launch shape of a grid-stride `kernel` that needs `work_blocks` blocks of `block` threads: one
/// full wave at most, from the kernel's real occupancy (wave_blocks).
template <class... Params>
LaunchConfig wave_config(void (*kernel)(Params...), std::int64_t work_blocks, dim3 block,
                         std::size_t shared_bytes, cudaStream_t stream) {
  const unsigned threads = block.x * block.y * block.z;
  const std::int64_t blocks =
      wave_blocks(kernel_handle(kernel), work_blocks, threads, shared_bytes);
  return LaunchConfig{dim3(static_cast<unsigned>(blocks)), block, shared_bytes, stream};
}

}  // namespace warpfuse::detail
