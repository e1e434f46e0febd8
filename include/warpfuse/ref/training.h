// warpfuse::ref — CPU reference of the training bookkeeping of <warpfuse/training.h>:
// accumulate_metrics (the same totals, accuracies and error sums, in double, rows in order) and
// gather_rows (the same 0xFF rows for an index out of range). The trainer's CPU backend runs the
// float instantiation. No CUDA needed.
#pragma once

#include <cstdint>

#include "warpfuse/training_types.h"
#include "warpfuse/view_types.h"

namespace warpfuse::ref {

/// Adds one batch to `totals` as the device op does. `targets` (rows x cols) is read for
/// argmax_onehot, threshold and errors; `labels` (rows) for argmax_index; `batch_loss` (the
/// batch's mean loss) may be null. Throws std::invalid_argument for a shape the options need
/// that does not match.
template <class S, class L>
void accumulate_metrics(nondeduced_t<MatrixView<const S>> outputs,
                        nondeduced_t<MatrixView<const S>> targets,
                        nondeduced_t<VectorView<const L>> labels, const double* batch_loss,
                        const MetricOptions& options, TrainingTotals& totals);

/// dst row i = src row indices[offset + i]; a bad index or position fills the row with 0xFF bytes.
template <class S>
void gather_rows(nondeduced_t<MatrixView<const S>> src,
                 nondeduced_t<VectorView<const std::int64_t>> indices, std::int64_t offset,
                 MatrixView<S> dst);

}  // namespace warpfuse::ref
