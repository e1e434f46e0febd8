// warpfuse::ref — CPU reference of cross-entropy from logits, in double precision, with the same
// math and edge semantics as <warpfuse/cross_entropy.h>. No CUDA needed.
//
// These compute per-row values; the reductions are left to the caller:
//   sum  = sum_i row_loss[i]
//   mean = sum / cross_entropy_mean_denominator(...)  (index targets; rows for probabilities)
// and the gradient of the reduced loss is grad_scale / (1 or the denominator) times row_grad.
#pragma once

#include <cstdint>

namespace warpfuse::ref {

struct CrossEntropyParams {
  std::int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  double z_loss = 0.0;
  const double* weight = nullptr;  ///< C class weights, or null for ones
};

/// Class-index targets. row_loss[i] is NaN for a target outside [0, C) (not ignore_index) and 0
/// for an ignored row; row_grad (rows x C, optional) is d row_loss[i] / d logits[i, c], zero for
/// bad and ignored rows; lse (optional) is each row's logsumexp.
void cross_entropy(const double* logits, std::int64_t rows, std::int64_t classes,
                   const std::int64_t* targets, const CrossEntropyParams& params, double* row_loss,
                   double* lse, double* row_grad);

/// Probability targets (rows x C).
void cross_entropy(const double* logits, std::int64_t rows, std::int64_t classes,
                   const double* target_probabilities, const CrossEntropyParams& params,
                   double* row_loss, double* lse, double* row_grad);

/// The mean's denominator for index targets: the sum of w_t over rows neither ignored nor bad.
double cross_entropy_mean_denominator(const std::int64_t* targets, std::int64_t rows,
                                      std::int64_t classes, const CrossEntropyParams& params);

}  // namespace warpfuse::ref
