// warpfuse kernels — the trainer's per-step bookkeeping on the device: the running loss and
// metric sums of an epoch, the step counters, and the mini-batch gather index.
//
// nn_accumulate_kernel runs once per training step (and per evaluation batch), after the loss op:
// it adds the batch's mean loss times its rows, counts correct predictions (argmax against the
// class index or the one-hot row, or a threshold for binary accuracy) and sums |e| and e^2, then
// advances the step counters and the cursor into the epoch's sample order. Doing this on the
// device keeps the host out of the step: the totals are read only when the progress bar or the
// epoch's end needs them, and a captured CUDA Graph of the step replays them too.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/dialect.cuh"

namespace warpfuse::detail {

/// The epoch's sums and counters (device memory; the host reads it as a whole).
struct NnTotals {
  double loss_sum;
  double samples;
  double correct;
  double accuracy_count;
  double abs_sum;
  double sq_sum;
  double elements;
  long long bad_step;        ///< first epoch step with a non-finite loss, -1 when none
  long long epoch_step;      ///< steps since the totals were reset
  std::int64_t global_step;  ///< optimizer steps ever taken (Adam's t); never reset by the epoch
  long long cursor;          ///< position in the epoch's sample order of the next mini-batch
};

enum class NnAccuracy : int { none = 0, categorical = 1, sparse = 2, binary = 3 };

struct NnAccumulateArgs {
  const float* loss;  ///< the batch's mean loss (one float)
  const float* out;   ///< rows x cols outputs (logits or activations: argmax is the same)
  const float* y;     ///< rows x cols targets (categorical, binary, regression) or null
  const int* labels;  ///< rows class indices (sparse) or null
  std::int64_t rows;
  std::int64_t cols;
  NnAccuracy accuracy;
  float threshold;  ///< binary accuracy: out > threshold predicts 1
  int want_errors;  ///< sum |out - y| and (out - y)^2
  int advance;      ///< training step: advance the counters and the cursor
};

constexpr int kNnAccumulateThreads = 256;

/// One block of kNnAccumulateThreads threads. Thread i takes rows i, i + 256, ...; the partial
/// sums meet in a fixed-shape tree in shared memory, so the result is bitwise reproducible.
__global__ void __launch_bounds__(kNnAccumulateThreads)
    nn_accumulate_kernel(NnAccumulateArgs a, NnTotals* totals) {
  __shared__ double shared[3][kNnAccumulateThreads];
  const int t = static_cast<int>(threadIdx.x);
  double correct = 0.0, abs_sum = 0.0, sq_sum = 0.0;
  for (std::int64_t r = t; r < a.rows; r += kNnAccumulateThreads) {
    const float* o = a.out + r * a.cols;
    if (a.accuracy == NnAccuracy::categorical || a.accuracy == NnAccuracy::sparse) {
      std::int64_t best = 0;
      for (std::int64_t c = 1; c < a.cols; ++c) best = o[c] > o[best] ? c : best;
      std::int64_t truth = 0;
      if (a.accuracy == NnAccuracy::sparse) {
        truth = a.labels[r];
      } else {
        const float* yr = a.y + r * a.cols;
        for (std::int64_t c = 1; c < a.cols; ++c) truth = yr[c] > yr[truth] ? c : truth;
      }
      correct += best == truth ? 1.0 : 0.0;
    } else if (a.accuracy == NnAccuracy::binary) {
      for (std::int64_t c = 0; c < a.cols; ++c) {
        correct += ((o[c] > a.threshold) == (a.y[r * a.cols + c] > 0.5f)) ? 1.0 : 0.0;
      }
    }
    if (a.want_errors) {
      for (std::int64_t c = 0; c < a.cols; ++c) {
        const double e = static_cast<double>(o[c]) - a.y[r * a.cols + c];
        abs_sum += fabs(e);
        sq_sum += e * e;
      }
    }
  }
  shared[0][t] = correct;
  shared[1][t] = abs_sum;
  shared[2][t] = sq_sum;
  __syncthreads();
  for (int width = kNnAccumulateThreads / 2; width > 0; width /= 2) {
    if (t < width) {
      for (int k = 0; k < 3; ++k) shared[k][t] += shared[k][t + width];
    }
    __syncthreads();
  }
  if (t == 0) {
    const float loss = *a.loss;
    const double rows = static_cast<double>(a.rows);
    if (!isfinite(loss) && totals->bad_step < 0) totals->bad_step = totals->epoch_step;
    totals->loss_sum += static_cast<double>(loss) * rows;
    totals->samples += rows;
    totals->correct += shared[0][0];
    if (a.accuracy == NnAccuracy::binary) {
      totals->accuracy_count += rows * static_cast<double>(a.cols);
    } else if (a.accuracy != NnAccuracy::none) {
      totals->accuracy_count += rows;
    }
    if (a.want_errors) {
      totals->abs_sum += shared[1][0];
      totals->sq_sum += shared[2][0];
      totals->elements += rows * static_cast<double>(a.cols);
    }
    if (a.advance) {
      totals->epoch_step += 1;
      totals->global_step += 1;
      totals->cursor += a.rows;
    }
  }
}

/// Thrust gather map for a mini-batch: element i of the gathered rows x cols batch comes from
/// source element order[cursor + i / cols] * cols + i % cols. Reads the cursor from device memory
/// so a captured step gathers the next batch on every replay.
struct NnBatchIndex {
  const long long* order;
  const long long* cursor;
  long long cols;
  WF_HOST_DEVICE long long operator()(long long i) const {
    return order[*cursor + i / cols] * cols + i % cols;
  }
};

}  // namespace warpfuse::detail
