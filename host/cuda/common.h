// warpfuse host — helpers shared by the op families' launchers in host/cuda/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "warpfuse/device.h"
#include "warpfuse/error.h"
#include "warpfuse/view.h"
#include "warpfuse/workspace.h"

namespace warpfuse::detail {

/// The current device's properties, queried once per device and cached (dispatch runs on every
/// call, and cudaGetDeviceProperties is far slower than a launch). Throws CudaError.
const DeviceInfo& current_device_info();

/// Blocks of `kernel` resident on one multiprocessor at `threads` threads per block and
/// `shared_bytes` of dynamic shared memory: cudaOccupancyMaxActiveBlocksPerMultiprocessor, asked
/// once per (device, kernel, threads, bytes) and cached, so the answer reflects the kernel's real
/// registers and shared memory rather than an assumed 2048 threads per SM. Throws CudaError.
int resident_blocks_per_sm(const void* kernel, unsigned threads, std::size_t shared_bytes);

/// Blocks for a grid-stride kernel that needs `work_blocks` blocks to cover its work: all of them
/// up to one full wave (multiprocessors x resident_blocks_per_sm), so huge inputs launch exactly
/// the blocks that run at once and small ones no idle blocks. At least 1: a kernel that cannot be
/// resident at all fails its launch check with the CUDA error, naming the kernel.
std::int64_t wave_blocks(const void* kernel, std::int64_t work_blocks, unsigned threads,
                         std::size_t shared_bytes);

/// Lets `kernel` use `bytes` of dynamic shared memory: cudaFuncSetAttribute (the opt-in above the
/// 48 KiB default) only when `bytes` exceeds what this kernel was already allowed on this device,
/// so a launch sequence sets the attribute once per kernel, not once per launch. Throws CudaError.
void allow_dynamic_shared(const void* kernel, std::size_t bytes);

/// Clusters of `cluster_blocks` blocks (1..16, along x) of `kernel` at `threads` threads and
/// `shared_bytes` of dynamic shared memory per block that the current device runs at once:
/// cudaOccupancyMaxActiveClusters, asked once per (device, kernel, shape) and cached; 0 on a
/// device below compute capability 9.0 or when the shape cannot be scheduled. Sets the kernel's
/// shared-memory opt-in, and the non-portable cluster size opt-in above 8 blocks, first. The
/// cluster strategies launch only where this is > 0.
int active_clusters(const void* kernel, unsigned cluster_blocks, unsigned threads,
                    std::size_t shared_bytes);

/// cudaFuncAttributeNonPortableClusterSizeAllowed for `kernel` (clusters of 9..16 blocks), once
/// per device and kernel. Throws CudaError.
void allow_non_portable_clusters(const void* kernel);

/// [begin, end) of the bytes a view or workspace spans; empty (begin == end) for an empty one.
struct ByteSpan {
  std::uintptr_t begin = 0;
  std::uintptr_t end = 0;
};

template <class V>
ByteSpan span_of(const MatrixView<V>& view) {
  if (view.empty()) return {};
  return {reinterpret_cast<std::uintptr_t>(view.data),
          reinterpret_cast<std::uintptr_t>(view.data + ((view.rows - 1) * view.ld + view.cols))};
}
template <class V>
ByteSpan span_of(const VectorView<V>& view) {
  if (view.empty()) return {};
  return {reinterpret_cast<std::uintptr_t>(view.data),
          reinterpret_cast<std::uintptr_t>(view.data + view.size)};
}
ByteSpan span_of(const Workspace& workspace);

/// Throws InvalidArgument naming `op` and `out_arg` when the output shares any byte with `other`
/// (where even an exact alias is wrong: an fp32 loss, a weight vector, the workspace).
void check_disjoint(const char* op, const char* out_arg, ByteSpan out, const char* other_arg,
                    ByteSpan other);

/// Throws InvalidArgument naming `op` and `arg` unless the view's rows, cols and ld fit cuBLAS's
/// int dimensions (below 2^31).
template <class V>
void check_cublas_dims(const char* op, const char* arg, const MatrixView<V>& view) {
  constexpr std::int64_t kMax = 2147483647;
  if (view.rows > kMax || view.cols > kMax || view.ld > kMax) {
    throw InvalidArgument(op, arg,
                          std::to_string(view.rows) + " x " + std::to_string(view.cols) + " (ld " +
                              std::to_string(view.ld) +
                              "): cuBLAS takes dimensions and row strides below 2^31");
  }
}

/// Throws InvalidArgument naming `op` and 'workspace' unless `workspace` holds at least `needed`
/// bytes at a non-null, kWorkspaceAlignment-aligned address; `query` names the op's size query.
void check_workspace(const char* op, const Workspace& workspace, std::size_t needed,
                     const char* query);

/// Forgets the cached occupancy answers and shared-memory allowances (tests that change what the
/// emulator reports for a kernel).
void reset_launch_caches();

}  // namespace warpfuse::detail
