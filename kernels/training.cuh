// warpfuse kernels — a training loop's device-side bookkeeping (<warpfuse/training.h>): the metric
// totals of a batch and the mini-batch gather.
//
//   metrics_partials_kernel  a grid of metrics_blocks(rows) blocks, each a contiguous range of
//                            rows (thread per row inside it): the block's correct count and error
//                            sums, in double, into partials[block]
//   metrics_finish_kernel    one block: adds the partials in block order and updates the totals
//                            (loss, samples, counts, the first non-finite step, the counters)
//   gather_rows_kernel       grid-stride over dst's rows x words: each word copied from the
//                            indexed src row, or 0xFF words for an index out of range
// The partition depends only on the row count, so the sums are bitwise reproducible.
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/reduce.cuh"
#include "warpfuse/training_types.h"

namespace warpfuse::detail {

// The totals and the accuracy kinds are the public vocabulary's (warpfuse/training_types.h, a
// CUDA-free header of plain types): one definition for the host, the reference and the kernels.

constexpr int kMetricsThreads = 256;
/// Rows per block of the partials kernel (a thread per row, kMetricsRowsPerThread rows each).
constexpr int kMetricsRowsPerThread = 4;
constexpr std::int64_t kMetricsRowsPerBlock =
    static_cast<std::int64_t>(kMetricsThreads) * kMetricsRowsPerThread;
constexpr int kGatherThreads = 256;

template <class T, class L>
struct MetricsArgs {
  const T* outputs;
  std::int64_t out_ld;
  const T* targets;  ///< or null
  std::int64_t target_ld;
  const L* labels;  ///< or null
  std::int64_t rows;
  std::int64_t cols;
  AccuracyKind accuracy;
  float threshold;
  int errors;
};

/// Blocks of the partials kernel for `rows` rows (at least 1).
WF_HOST_DEVICE std::int64_t metrics_blocks(std::int64_t rows) {
  return rows <= 0 ? 1 : (rows + kMetricsRowsPerBlock - 1) / kMetricsRowsPerBlock;
}

/// The first index of the largest element of row[0, cols) (NaN is never larger).
template <class T>
WF_DEVICE std::int64_t argmax_of(const T* row, std::int64_t cols) {
  std::int64_t best = 0;
  float top = to_float(row[0]);
  for (std::int64_t c = 1; c < cols; ++c) {
    const float value = to_float(row[c]);
    if (value > top) {
      top = value;
      best = c;
    }
  }
  return best;
}

/// metrics_blocks(rows) blocks of kMetricsThreads; block b takes rows [b, b + 1) x
/// kMetricsRowsPerBlock. partials holds 3 doubles per block: correct, |e| sum, e^2 sum.
template <class T, class L>
__global__ void __launch_bounds__(kMetricsThreads)
    metrics_partials_kernel(MetricsArgs<T, L> a, double* __restrict__ partials) {
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * kMetricsRowsPerBlock;
  const std::int64_t last =
      first + kMetricsRowsPerBlock < a.rows ? first + kMetricsRowsPerBlock : a.rows;
  double correct = 0.0, abs_sum = 0.0, sq_sum = 0.0;
  for (std::int64_t r = first + threadIdx.x; r < last; r += kMetricsThreads) {
    const T* out = a.outputs + r * a.out_ld;
    const T* target = a.targets != nullptr ? a.targets + r * a.target_ld : nullptr;
    if (a.cols > 0 && a.accuracy == AccuracyKind::argmax_index) {
      correct += argmax_of(out, a.cols) == static_cast<std::int64_t>(a.labels[r]) ? 1.0 : 0.0;
    } else if (a.cols > 0 && a.accuracy == AccuracyKind::argmax_onehot) {
      correct += argmax_of(out, a.cols) == argmax_of(target, a.cols) ? 1.0 : 0.0;
    } else if (a.accuracy == AccuracyKind::threshold) {
      for (std::int64_t c = 0; c < a.cols; ++c) {
        correct += (to_float(out[c]) > a.threshold) == (to_float(target[c]) > 0.5f) ? 1.0 : 0.0;
      }
    }
    if (a.errors) {
      for (std::int64_t c = 0; c < a.cols; ++c) {
        const double e = static_cast<double>(to_float(out[c])) - to_float(target[c]);
        abs_sum += fabs(e);
        sq_sum += e * e;
      }
    }
  }
  correct = block_all_reduce_sum(correct);
  abs_sum = block_all_reduce_sum(abs_sum);
  sq_sum = block_all_reduce_sum(sq_sum);
  if (threadIdx.x == 0) {
    partials[3 * blockIdx.x] = correct;
    partials[3 * blockIdx.x + 1] = abs_sum;
    partials[3 * blockIdx.x + 2] = sq_sum;
  }
}

struct MetricsFinishArgs {
  const double* partials;
  std::int64_t blocks;
  const float* batch_loss;  ///< or null
  std::int64_t rows;
  std::int64_t cols;
  AccuracyKind accuracy;
  int errors;
  int advance;
};

/// One block of kMetricsThreads: adds the partials (thread t takes blocks t, t + 256, ... in
/// order, then the fixed tree of block_all_reduce) and updates the totals.
__global__ void __launch_bounds__(kMetricsThreads)
    metrics_finish_kernel(MetricsFinishArgs a, TrainingTotals* totals) {
  double sums[3] = {0.0, 0.0, 0.0};
  for (std::int64_t b = threadIdx.x; b < a.blocks; b += kMetricsThreads) {
    for (int k = 0; k < 3; ++k) sums[k] += a.partials[3 * b + k];
  }
  for (int k = 0; k < 3; ++k) sums[k] = block_all_reduce_sum(sums[k]);
  if (threadIdx.x != 0) return;
  const auto rows = static_cast<double>(a.rows);
  if (a.batch_loss != nullptr) {
    const float loss = *a.batch_loss;
    if (!is_finite(loss) && totals->first_nonfinite_step < 0) {
      totals->first_nonfinite_step = totals->steps;
    }
    totals->loss_sum += static_cast<double>(loss) * rows;
  }
  totals->samples += rows;
  if (a.accuracy != AccuracyKind::none) {
    totals->correct += sums[0];
    totals->accuracy_count +=
        a.accuracy == AccuracyKind::threshold ? rows * static_cast<double>(a.cols) : rows;
  }
  if (a.errors) {
    totals->abs_error_sum += sums[1];
    totals->squared_error_sum += sums[2];
    totals->elements += rows * static_cast<double>(a.cols);
  }
  if (a.advance) {
    totals->steps += 1;
    totals->global_step += 1;
    totals->cursor += a.rows;
  }
}

/// Grid-stride over dst's rows x words (Word: T, or a 16-byte uint4 when rows allow it): dst row
/// i is src row indices[offset + i]; a bad index or position gives a row of 0xFF bytes.
template <class Word>
__global__ void __launch_bounds__(kGatherThreads)
    gather_rows_kernel(const Word* __restrict__ src, std::int64_t src_rows, std::int64_t src_ld,
                       const std::int64_t* __restrict__ indices, std::int64_t index_count,
                       const std::int64_t* device_offset, Word* __restrict__ dst,
                       std::int64_t dst_rows, std::int64_t dst_ld, std::int64_t words) {
  const std::int64_t offset = device_offset != nullptr ? *device_offset : 0;
  const std::int64_t total = dst_rows * words;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const std::int64_t row = i / words;
    const std::int64_t word = i - row * words;
    const std::int64_t position = offset + row;
    const std::int64_t source =
        position >= 0 && position < index_count ? indices[position] : std::int64_t{-1};
    Word value;
    if (source >= 0 && source < src_rows) {
      value = src[source * src_ld + word];
    } else {
      memset(static_cast<void*>(&value), 0xFF, sizeof(value));
    }
    dst[row * dst_ld + word] = value;
  }
}

}  // namespace warpfuse::detail
