// warpfuse — what every loss op shares: reductions, the caller's workspace, and the status through
// which device-side data errors (a class index outside [0, C)) reach the host.
//
// Loss values are fp32 whatever the input dtype. Reductions over rows are deterministic: each row's
// partial loss lands in the workspace, then they are summed in a fixed order (one block, or two
// stages over many rows, chunked by the row count alone; no atomics), so the same inputs give
// bitwise the same loss on every run.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "warpfuse/workspace.h"

namespace warpfuse {

/// How the elementwise losses' per-element values become the op's output (cross-entropy, whose
/// loss is per row, has CrossEntropyReduction).
///   none            one loss per element
///   mean            the mean over all elements
///   sum             the sum over all elements
///   per_sample      one loss per row: the mean over its columns (Keras's reduction "none")
///   per_sample_sum  the sum over rows of per_sample (Keras's reduction "sum")
/// Keras's default, "sum_over_batch_size", is `mean`: the batch mean of the per-sample means.
enum class Reduction { none, mean, sum, per_sample, per_sample_sum };

/// "none", "mean", "sum", "per_sample" or "per_sample_sum".
const char* to_string(Reduction reduction);

/// What the last loss op that used a workspace found in its targets.
struct LossStatus {
  std::int64_t bad_rows = 0;        ///< rows whose class index is outside [0, C) and not ignored
  std::int64_t first_bad_row = -1;  ///< the smallest such row, -1 if none
};

/// Waits for `stream` and reads the status the last loss op left in `workspace`.
/// Throws InvalidArgument for a workspace that is too small, CudaError on a failed copy.
LossStatus read_loss_status(const Workspace& workspace, cudaStream_t stream = nullptr);

}  // namespace warpfuse
