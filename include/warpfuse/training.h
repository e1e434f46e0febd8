// warpfuse — the device-side bookkeeping of a training loop, so a step (gather a mini-batch,
// forward, loss, metrics, backward, optimizer) runs without the host and can be captured once as
// a CUDA Graph and replayed: running loss and metric totals in device memory, their reset, and
// the gather of a mini-batch's rows through an index list at a device-side cursor.
//
// accumulate_metrics adds one batch of rows x cols outputs to a TrainingTotals in device memory:
//   loss_sum          += batch_loss x rows (batch_loss: the batch's mean loss, one device float)
//   samples           += rows
//   correct           += the rows whose prediction is right (accuracy below), or for threshold
//                        accuracy the elements
//   accuracy_count    += rows (argmax accuracies) or rows x cols (threshold)
//   abs_error_sum     += sum |out - target|, squared_error_sum += sum (out - target)^2,
//   elements          += rows x cols                            (MetricOptions::errors)
//   first_nonfinite_step = steps, the first time batch_loss is NaN or infinite (-1 until then)
//   steps, global_step += 1 and cursor += rows                  (MetricOptions::advance)
// Accuracy kinds (predictions by argmax take the first maximum, as torch.argmax; a NaN output is
// never the maximum unless the row starts with it):
//   argmax_index    argmax(out row) == labels[row]   (Keras' sparse_categorical_accuracy)
//   argmax_onehot   argmax(out row) == argmax(target row)  (categorical_accuracy)
//   threshold       (out > threshold) == (target > 0.5), per element  (binary_accuracy)
// Sums are formed in double in a fixed order: per-block partials of a row partition that depends
// only on the row count, then one block adds them in block order, so the same batch gives
// bitwise the same totals on every run (no atomics).
//
// gather_rows copies dst row i from src row indices[offset + i], offset = *device_offset (read
// when the kernel runs: a captured step gathers the next batch on every replay as
// accumulate_metrics advances the cursor) or 0. An index outside [0, src.rows), or a position
// offset + i past the end of `indices`, fills that dst row with 0xFF bytes (NaN in every float
// type, -1 in integers) instead of reading out of bounds: visible, never silent. Rows move in
// 16-byte words when both matrices' rows are 16-byte aligned and their byte length is a
// multiple of 16, element by element otherwise.
//
// Every call validates its arguments (warpfuse::InvalidArgument naming the op and the argument),
// allocates nothing, launches on `stream` and does not synchronise; all are safe under CUDA Graph
// capture. accumulate_metrics is instantiated for T = float, __half, __nv_bfloat16 and labels
// L = int32 and int64; gather_rows for float, __half, __nv_bfloat16, int32 and int64.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "warpfuse/training_types.h"
#include "warpfuse/view.h"
#include "warpfuse/workspace.h"

namespace warpfuse {

/// One batch: rows x cols outputs and what the options need of the rest.
template <class T, class L = std::int32_t>
struct MetricInputs {
  MatrixView<const T> outputs;
  MatrixView<const T> targets;        ///< rows x cols: argmax_onehot, threshold, errors
  VectorView<const L> labels;         ///< rows class indices: argmax_index
  const float* batch_loss = nullptr;  ///< device: the batch's mean loss; null adds no loss
};

/// Bytes of workspace accumulate_metrics needs for `rows` rows (at least 512).
std::size_t metrics_workspace_bytes(std::int64_t rows);

template <class T, class L = std::int32_t>
void accumulate_metrics(const MetricInputs<T, L>& inputs, const MetricOptions& options,
                        TrainingTotals* totals, const Workspace& workspace,
                        cudaStream_t stream = nullptr);

/// Zeroes the sums and counters (first_nonfinite_step = -1); global_step too unless
/// `keep_global_step`. Two cudaMemsetAsync calls: no host round trip.
void reset_training_totals(TrainingTotals* totals, bool keep_global_step,
                           cudaStream_t stream = nullptr);

template <class T>
void gather_rows(nondeduced_t<MatrixView<const T>> src, VectorView<const std::int64_t> indices,
                 const std::int64_t* device_offset, MatrixView<T> dst,
                 cudaStream_t stream = nullptr);

}  // namespace warpfuse
