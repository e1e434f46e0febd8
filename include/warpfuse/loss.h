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

namespace warpfuse {

/// How per-element (or per-row) losses become the op's output.
///   none            one loss per element (per row for cross-entropy)
///   mean            the mean over all elements (cross-entropy: the weighted mean over rows)
///   sum             the sum over all elements
///   per_sample      one loss per row: the mean over its columns (Keras's reduction "none")
///   per_sample_sum  the sum over rows of per_sample (Keras's reduction "sum")
/// Keras's default, "sum_over_batch_size", is `mean`: the batch mean of the per-sample means.
enum class Reduction { none, mean, sum, per_sample, per_sample_sum };

/// "none", "mean", "sum", "per_sample" or "per_sample_sum".
const char* to_string(Reduction reduction);

/// Scratch device memory a loss op uses, provided by the caller (ops allocate nothing). Size it
/// with loss_workspace_bytes; one workspace may be reused by consecutive ops on one stream.
struct LossWorkspace {
  void* data = nullptr;
  std::size_t bytes = 0;
};

/// Bytes of workspace a loss op over `rows` rows needs (at least 512).
std::size_t loss_workspace_bytes(std::int64_t rows);

/// What the last loss op that used a workspace found in its targets.
struct LossStatus {
  std::int64_t bad_rows = 0;        ///< rows whose class index is outside [0, C) and not ignored
  std::int64_t first_bad_row = -1;  ///< the smallest such row, -1 if none
};

/// Waits for `stream` and reads the status the last loss op left in `workspace`.
/// Throws InvalidArgument for a workspace that is too small, CudaError on a failed copy.
LossStatus read_loss_status(const LossWorkspace& workspace, cudaStream_t stream = nullptr);

}  // namespace warpfuse
