// warpfuse host — helpers shared by the op families' launchers in host/cuda/.
#pragma once

#include <cstddef>
#include <cstdint>

#include "warpfuse/device.h"

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

/// Forgets the cached occupancy answers and shared-memory allowances (tests that change what the
/// emulator reports for a kernel).
void reset_launch_caches();

}  // namespace warpfuse::detail
