// warpfuse — the caller's scratch memory. No op allocates: an op that needs scratch (the loss
// reductions, cross-entropy's status, the fused activation backward's column sums) takes a
// Workspace sized by that op's *_workspace_bytes query.
#pragma once

#include <cstddef>

namespace warpfuse {

/// Every workspace's alignment: cudaMalloc's (and cudaMallocAsync's) 256 bytes.
constexpr std::size_t kWorkspaceAlignment = 256;

/// Device memory an op may use for scratch: `bytes` bytes at `data`, kWorkspaceAlignment-aligned,
/// at least the op's *_workspace_bytes query. It holds nothing an op needs between calls (the loss
/// status, read by read_loss_status, is what the last loss op left), so one workspace can serve
/// consecutive ops on one stream; ops on concurrent streams need their own. It must not overlap
/// any tensor of the call (checked).
struct Workspace {
  void* data = nullptr;
  std::size_t bytes = 0;
};

}  // namespace warpfuse
