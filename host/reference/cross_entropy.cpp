// warpfuse::ref — reference cross-entropy (see include/warpfuse/ref/cross_entropy.h).
#include "warpfuse/ref/cross_entropy.h"

#include "views.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace warpfuse::ref {
namespace {

double logsumexp(const double* z, std::int64_t n) {
  double max = -std::numeric_limits<double>::infinity();
  for (std::int64_t c = 0; c < n; ++c) max = std::fmax(max, z[c]);
  const double shift = std::isinf(max) && max < 0 ? 0.0 : max;
  double sum = 0.0;
  for (std::int64_t c = 0; c < n; ++c) sum += std::exp(z[c] - shift);
  return shift + std::log(sum);
}

/// Shared by both target kinds: mass[c] = w_c q'_c is the target distribution (times weights).
void row_from_mass(const double* z, std::int64_t classes, const std::vector<double>& mass,
                   double z_loss, double lse, double* loss, double* grad) {
  double total_mass = 0.0;
  double value = 0.0;
  for (std::int64_t c = 0; c < classes; ++c) {
    total_mass += mass[c];
    if (mass[c] != 0.0) value += mass[c] * (lse - z[c]);  // -mass log p, skipping 0 * inf
  }
  *loss = value + z_loss * lse * lse;
  if (grad != nullptr) {
    const double factor = total_mass + 2.0 * z_loss * lse;
    for (std::int64_t c = 0; c < classes; ++c) grad[c] = std::exp(z[c] - lse) * factor - mass[c];
  }
}

double weight_of(const CrossEntropyParams& params, std::int64_t c) {
  return params.weight != nullptr ? params.weight[c] : 1.0;
}

}  // namespace

namespace {

/// The checks both target kinds share.
void check_outputs(MatrixView<const double> logits, VectorView<double> row_loss,
                   VectorView<double> lse, MatrixView<double> row_grad) {
  detail::require_size("cross_entropy", "row_loss", row_loss, logits.rows);
  if (lse.data != nullptr) detail::require_size("cross_entropy", "lse", lse, logits.rows);
  if (row_grad.data != nullptr) {
    detail::require_shape("cross_entropy", "row_grad", row_grad, logits.rows, logits.cols);
  }
}

}  // namespace

void cross_entropy(MatrixView<const double> logits, VectorView<const std::int64_t> targets,
                   const CrossEntropyParams& params, VectorView<double> row_loss,
                   VectorView<double> lse, MatrixView<double> row_grad) {
  const std::int64_t rows = logits.rows, classes = logits.cols;
  detail::require_size("cross_entropy", "targets", targets, rows);
  check_outputs(logits, row_loss, lse, row_grad);
  std::vector<double> mass(static_cast<std::size_t>(classes));
  const double eps = params.label_smoothing;
  for (std::int64_t i = 0; i < rows; ++i) {
    const double* z = logits.data + i * logits.ld;
    double* grad = row_grad.data != nullptr ? row_grad.data + i * row_grad.ld : nullptr;
    const double row_lse = logsumexp(z, classes);
    if (lse.data != nullptr) lse.data[i] = row_lse;
    const std::int64_t t = targets.data[i];
    const bool ignored = t == params.ignore_index;
    const bool bad = !ignored && (t < 0 || t >= classes);
    if (ignored || bad) {
      row_loss.data[i] = bad ? std::numeric_limits<double>::quiet_NaN() : 0.0;
      if (grad != nullptr) {
        for (std::int64_t c = 0; c < classes; ++c) grad[c] = 0.0;
      }
      continue;
    }
    for (std::int64_t c = 0; c < classes; ++c) {
      const double one_hot = c == t ? 1.0 : 0.0;
      // The target's weight scales the one-hot part; each class's own weight the uniform part.
      mass[c] = (1.0 - eps) * one_hot * weight_of(params, t) +
                eps / static_cast<double>(classes) * weight_of(params, c);
    }
    row_from_mass(z, classes, mass, params.z_loss, row_lse, &row_loss.data[i], grad);
  }
}

void cross_entropy(MatrixView<const double> logits, MatrixView<const double> target_probabilities,
                   const CrossEntropyParams& params, VectorView<double> row_loss,
                   VectorView<double> lse, MatrixView<double> row_grad) {
  const std::int64_t rows = logits.rows, classes = logits.cols;
  detail::require_shape("cross_entropy", "target_probabilities", target_probabilities, rows,
                        classes);
  check_outputs(logits, row_loss, lse, row_grad);
  std::vector<double> mass(static_cast<std::size_t>(classes));
  const double eps = params.label_smoothing;
  for (std::int64_t i = 0; i < rows; ++i) {
    const double* z = logits.data + i * logits.ld;
    const double row_lse = logsumexp(z, classes);
    if (lse.data != nullptr) lse.data[i] = row_lse;
    for (std::int64_t c = 0; c < classes; ++c) {
      const double q = target_probabilities.data[i * target_probabilities.ld + c];
      mass[c] = weight_of(params, c) * ((1.0 - eps) * q + eps / static_cast<double>(classes));
    }
    row_from_mass(z, classes, mass, params.z_loss, row_lse, &row_loss.data[i],
                  row_grad.data != nullptr ? row_grad.data + i * row_grad.ld : nullptr);
  }
}

double cross_entropy_mean_denominator(VectorView<const std::int64_t> targets, std::int64_t classes,
                                      const CrossEntropyParams& params) {
  double denominator = 0.0;
  for (std::int64_t i = 0; i < targets.size; ++i) {
    const std::int64_t t = targets.data[i];
    if (t != params.ignore_index && t >= 0 && t < classes) denominator += weight_of(params, t);
  }
  return denominator;
}

}  // namespace warpfuse::ref
