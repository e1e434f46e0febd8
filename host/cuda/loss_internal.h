// warpfuse host — workspace and reduction helpers shared by the loss op families.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/loss.cuh"
#include "warpfuse/loss.h"

namespace warpfuse::detail {

struct LossScratch {
  LossHeader* header;
  float* row_partials;  // `rows` floats
  float* block_sums;    // reduce_blocks(rows) floats: the reductions' first stage
};

/// Checks `workspace` for an op over `rows` rows (InvalidArgument naming `op` and 'workspace'),
/// resets its status on `stream`, and returns its parts.
LossScratch prepare_loss_workspace(const char* op, const LossWorkspace& workspace,
                                   std::int64_t rows, cudaStream_t stream);

/// Launches out[0] = scale * sum(partials[0, n)) / (*divisor or 1), deterministically: one block
/// for n <= kReduceItemsPerBlock, else the two stages of kernels/loss.cuh through `block_sums`
/// (reduce_blocks(n) floats).
void launch_loss_reduce(const float* partials, std::int64_t n, float scale, const float* divisor,
                        float* block_sums, float* out, cudaStream_t stream);

/// Where the block sums of a reduction over `rows` values start, past the row partials.
std::int64_t block_sums_offset_bytes(std::int64_t rows);

}  // namespace warpfuse::detail
