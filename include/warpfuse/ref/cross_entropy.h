// warpfuse::ref — CPU reference of cross-entropy from logits, in double precision, with the same
// math and edge semantics as <warpfuse/cross_entropy.h>. No CUDA needed.
//
// These compute per-row values; the reductions are left to the caller:
//   sum  = sum_i row_loss[i]
//   mean = sum / cross_entropy_mean_denominator(...)  (index targets; rows for probabilities)
// and the gradient of the reduced loss is grad_scale / (1 or the denominator) times row_grad.
#pragma once

#include <cstdint>

#include "warpfuse/view_types.h"

namespace warpfuse::ref {

struct CrossEntropyParams {
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  double z_loss = 0.0;
  const double* weight = nullptr;  ///< C class weights, or null for ones
};

/// Class-index targets (rows values). row_loss (rows values) is NaN for a target outside [0, C)
/// (not ignore_index) and 0 for an ignored row; row_grad (rows x C, optional: empty) is
/// d row_loss[i] / d logits[i, c], zero for bad and ignored rows; lse (rows values, optional) is
/// each row's logsumexp. Host views, any row stride; a size mismatch throws std::invalid_argument.
void cross_entropy(MatrixView<const double> logits, VectorView<const std::int64_t> targets,
                   const CrossEntropyParams& params, VectorView<double> row_loss,
                   VectorView<double> lse = {}, MatrixView<double> row_grad = {});

/// Probability targets (rows x C).
void cross_entropy(MatrixView<const double> logits, MatrixView<const double> target_probabilities,
                   const CrossEntropyParams& params, VectorView<double> row_loss,
                   VectorView<double> lse = {}, MatrixView<double> row_grad = {});

/// The mean's denominator for index targets: the sum of w_t over rows neither ignored nor bad.
double cross_entropy_mean_denominator(VectorView<const std::int64_t> targets, std::int64_t classes,
                                      const CrossEntropyParams& params);

}  // namespace warpfuse::ref
