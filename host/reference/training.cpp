// warpfuse::ref — the training bookkeeping (include/warpfuse/ref/training.h).
#include "warpfuse/ref/training.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace warpfuse::ref {
namespace {

/// The first index of the largest element (NaN is never larger), as the device's argmax.
template <class S>
std::int64_t argmax_of(const S* row, std::int64_t cols) {
  std::int64_t best = 0;
  for (std::int64_t c = 1; c < cols; ++c) {
    if (row[c] > row[best]) best = c;
  }
  return best;
}

}  // namespace

template <class S, class L>
void accumulate_metrics(nondeduced_t<MatrixView<const S>> outputs,
                        nondeduced_t<MatrixView<const S>> targets,
                        nondeduced_t<VectorView<const L>> labels, const double* batch_loss,
                        const MetricOptions& options, TrainingTotals& totals) {
  const std::int64_t rows = outputs.rows;
  const std::int64_t cols = outputs.cols;
  const bool needs_targets = options.errors || options.accuracy == AccuracyKind::argmax_onehot ||
                             options.accuracy == AccuracyKind::threshold;
  if (needs_targets && (targets.rows != rows || targets.cols != cols)) {
    throw std::invalid_argument("ref::accumulate_metrics: targets must be " + std::to_string(rows) +
                                " x " + std::to_string(cols));
  }
  if (options.accuracy == AccuracyKind::argmax_index && labels.size != rows) {
    throw std::invalid_argument("ref::accumulate_metrics: labels must hold " +
                                std::to_string(rows));
  }
  double correct = 0.0, abs_sum = 0.0, sq_sum = 0.0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const S* out = outputs.data + r * outputs.ld;
    const S* target = needs_targets ? targets.data + r * targets.ld : nullptr;
    if (cols > 0 && options.accuracy == AccuracyKind::argmax_index) {
      correct += argmax_of(out, cols) == static_cast<std::int64_t>(labels.data[r]) ? 1.0 : 0.0;
    } else if (cols > 0 && options.accuracy == AccuracyKind::argmax_onehot) {
      correct += argmax_of(out, cols) == argmax_of(target, cols) ? 1.0 : 0.0;
    } else if (options.accuracy == AccuracyKind::threshold) {
      for (std::int64_t c = 0; c < cols; ++c) {
        correct += (out[c] > options.threshold) == (target[c] > 0.5) ? 1.0 : 0.0;
      }
    }
    if (options.errors) {
      for (std::int64_t c = 0; c < cols; ++c) {
        const double e = static_cast<double>(out[c]) - static_cast<double>(target[c]);
        abs_sum += std::fabs(e);
        sq_sum += e * e;
      }
    }
  }
  const auto n = static_cast<double>(rows);
  if (batch_loss != nullptr) {
    if (!std::isfinite(*batch_loss) && totals.first_nonfinite_step < 0) {
      totals.first_nonfinite_step = totals.steps;
    }
    totals.loss_sum += *batch_loss * n;
  }
  totals.samples += n;
  if (options.accuracy != AccuracyKind::none) {
    totals.correct += correct;
    totals.accuracy_count +=
        options.accuracy == AccuracyKind::threshold ? n * static_cast<double>(cols) : n;
  }
  if (options.errors) {
    totals.abs_error_sum += abs_sum;
    totals.squared_error_sum += sq_sum;
    totals.elements += n * static_cast<double>(cols);
  }
  if (options.advance) {
    totals.steps += 1;
    totals.global_step += 1;
    totals.cursor += rows;
  }
}

template <class S>
void gather_rows(nondeduced_t<MatrixView<const S>> src,
                 nondeduced_t<VectorView<const std::int64_t>> indices, std::int64_t offset,
                 MatrixView<S> dst) {
  if (dst.cols != src.cols) {
    throw std::invalid_argument("ref::gather_rows: dst and src differ in columns");
  }
  for (std::int64_t i = 0; i < dst.rows; ++i) {
    const std::int64_t position = offset + i;
    const std::int64_t source =
        position >= 0 && position < indices.size ? indices.data[position] : -1;
    S* row = dst.data + i * dst.ld;
    if (source >= 0 && source < src.rows) {
      std::memcpy(row, src.data + source * src.ld, static_cast<std::size_t>(dst.cols) * sizeof(S));
    } else {
      std::memset(static_cast<void*>(row), 0xFF, static_cast<std::size_t>(dst.cols) * sizeof(S));
    }
  }
}

#define WARPFUSE_INSTANTIATE_REF_METRICS(S, L)                                                     \
  template void accumulate_metrics<S, L>(MatrixView<const S>, MatrixView<const S>,                 \
                                         VectorView<const L>, const double*, const MetricOptions&, \
                                         TrainingTotals&);
WARPFUSE_INSTANTIATE_REF_METRICS(float, std::int32_t)
WARPFUSE_INSTANTIATE_REF_METRICS(float, std::int64_t)
WARPFUSE_INSTANTIATE_REF_METRICS(double, std::int32_t)
WARPFUSE_INSTANTIATE_REF_METRICS(double, std::int64_t)
#undef WARPFUSE_INSTANTIATE_REF_METRICS

template void gather_rows<float>(MatrixView<const float>, VectorView<const std::int64_t>,
                                 std::int64_t, MatrixView<float>);
template void gather_rows<double>(MatrixView<const double>, VectorView<const std::int64_t>,
                                  std::int64_t, MatrixView<double>);
template void gather_rows<std::int32_t>(MatrixView<const std::int32_t>,
                                        VectorView<const std::int64_t>, std::int64_t,
                                        MatrixView<std::int32_t>);
template void gather_rows<std::int64_t>(MatrixView<const std::int64_t>,
                                        VectorView<const std::int64_t>, std::int64_t,
                                        MatrixView<std::int64_t>);

}  // namespace warpfuse::ref
