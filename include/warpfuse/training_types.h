// warpfuse — the training bookkeeping's totals and options, without CUDA: shared by the device ops
// (<warpfuse/training.h>, where their meaning is documented), their CPU reference
// (<warpfuse/ref/training.h>) and the trainer (warpfuse::nn).
#pragma once

#include <cstdint>

namespace warpfuse {

/// A loop's running totals, one struct in device memory (zero it with reset_training_totals).
struct TrainingTotals {
  double loss_sum;
  double samples;
  double correct;
  double accuracy_count;
  double abs_error_sum;
  double squared_error_sum;
  double elements;
  std::int64_t first_nonfinite_step;  ///< the steps value of the first non-finite loss, or -1
  std::int64_t steps;                 ///< batches advanced since the last reset
  std::int64_t cursor;                ///< rows advanced since the last reset
  std::int64_t global_step;           ///< batches advanced ever (Adam's t); kept by a reset
};

/// Totals as a reset leaves them: zero, first_nonfinite_step -1 (for host-side copies).
inline TrainingTotals empty_training_totals() {
  TrainingTotals t{};
  t.first_nonfinite_step = -1;
  return t;
}

enum class AccuracyKind { none, argmax_index, argmax_onehot, threshold };

struct MetricOptions {
  AccuracyKind accuracy = AccuracyKind::none;
  float threshold = 0.5f;  ///< threshold accuracy: out > threshold predicts 1 (finite)
  bool errors = false;     ///< sum |out - target| and (out - target)^2 (needs targets)
  bool advance = false;    ///< a training step: steps, global_step += 1, cursor += rows
};

}  // namespace warpfuse
