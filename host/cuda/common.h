// warpfuse host — helpers shared by the op families' launchers in host/cuda/.
#pragma once

#include <cstdint>

#include "warpfuse/device.h"

namespace warpfuse::detail {

/// The current device's properties, queried once per device and cached (dispatch runs on every
/// call, and cudaGetDeviceProperties is far slower than a launch). Throws CudaError.
const DeviceInfo& current_device_info();

/// Blocks for a grid-stride kernel that needs `work_blocks` blocks to cover its work: all of them
/// up to `blocks_per_sm` resident blocks per multiprocessor, so huge inputs launch a bounded grid
/// and small ones no idle blocks.
std::int64_t grid_stride_blocks(std::int64_t work_blocks, int blocks_per_sm);

}  // namespace warpfuse::detail
