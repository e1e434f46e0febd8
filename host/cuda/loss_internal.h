// warpfuse host — workspace and reduction helpers shared by the loss op families.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/loss.cuh"
#include "warpfuse/loss.h"

namespace warpfuse::detail {

struct LossScratch {
  LossHeader* header;
  float* row_partials;  // `rows` floats
  float* block_sums;    // reduce_blocks(rows) floats: the reductions' first stage
};

/// Bytes of workspace a loss op over `rows` rows needs (at least 512): the header, the row partials
/// and the reductions' first stage, rounded up to kWorkspaceAlignment. The public per-op queries
/// (cross_entropy_workspace_bytes, elementwise_loss_workspace_bytes) return it.
std::size_t loss_workspace_bytes(std::int64_t rows);

/// Checks `workspace` for an op over `rows` rows (InvalidArgument naming `op` and 'workspace';
/// `query` names the op's size query), resets its status on `stream`, and returns its parts.
LossScratch prepare_loss_workspace(const char* op, const char* query, const Workspace& workspace,
                                   std::int64_t rows, cudaStream_t stream);

/// Launches out[0] = scale * sum(partials[0, n)) / (*divisor or 1), deterministically: one block
/// for n <= kReduceItemsPerBlock, else the two stages of kernels/loss.cuh through `block_sums`
/// (reduce_blocks(n) floats).
void launch_loss_reduce(const float* partials, std::int64_t n, float scale, const float* divisor,
                        float* block_sums, float* out, cudaStream_t stream);

/// Where the block sums of a reduction over `rows` values start, past the row partials.
std::int64_t block_sums_offset_bytes(std::int64_t rows);

}  // namespace warpfuse::detail
