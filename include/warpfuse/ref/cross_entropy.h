// warpfuse::ref — CPU reference of cross-entropy from logits, in double precision, with the same
// math and edge semantics as <warpfuse/cross_entropy.h>. No CUDA needed.
//
// Softcap and scale: every logit is first mapped to z' (cross_entropy_logit) and the loss, lse and
// extras are of z'; row_grad is with respect to the raw logits (times cross_entropy_logit_slope).
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
  double logit_softcap = 0.0;      ///< cap > 0: z' = cap tanh(logit_scale z / cap)
  double logit_scale = 1.0;        ///< s: z' = s z without a cap
};

/// Optional per-row outputs (rows values each, or empty): the z-loss term zl lse^2 (0 ignored,
/// NaN bad), whether the target is the first maximal z' (1 / 0; 0 for ignored and bad rows; index
/// targets only), the softmax's entropy.
struct CrossEntropyRowExtras {
  VectorView<double> z_loss_term{};
  VectorView<double> correct{};
  VectorView<double> entropy{};
};

/// z' of one raw logit under params' softcap and scale.
double cross_entropy_logit(double z, const CrossEntropyParams& params);
/// dz'/dz at the raw logit z.
double cross_entropy_logit_slope(double z, const CrossEntropyParams& params);

/// Class-index targets (rows values). row_loss (rows values) is NaN for a target outside [0, C)
/// (not ignore_index) and 0 for an ignored row; row_grad (rows x C, optional: empty) is
/// d row_loss[i] / d logits[i, c], zero for bad and ignored rows; lse (rows values, optional) is
/// each row's logsumexp. Host views, any row stride; a size mismatch throws std::invalid_argument.
void cross_entropy(MatrixView<const double> logits, VectorView<const std::int64_t> targets,
                   const CrossEntropyParams& params, VectorView<double> row_loss,
                   VectorView<double> lse = {}, MatrixView<double> row_grad = {},
                   const CrossEntropyRowExtras& extras = {});

/// Probability targets (rows x C).
void cross_entropy(MatrixView<const double> logits, MatrixView<const double> target_probabilities,
                   const CrossEntropyParams& params, VectorView<double> row_loss,
                   VectorView<double> lse = {}, MatrixView<double> row_grad = {},
                   const CrossEntropyRowExtras& extras = {});

/// Vocabulary-parallel cross-entropy (<warpfuse/cross_entropy_shard.h>), in double, with the
/// device's 8 statistics per row (max, log_sum, entropy, z'_t, w_t, count, linear, weight sum).
/// `logits` holds the shard's columns [vocab_begin, vocab_begin + cols); params.weight, when set,
/// the shard's cols weights. Stats: rows x 8.
void cross_entropy_shard_stats(MatrixView<const double> logits,
                               VectorView<const std::int64_t> targets, std::int64_t vocab_begin,
                               const CrossEntropyParams& params, MatrixView<double> stats);
/// gathered: (shards x rows) x 8, shard-major; combined: rows x 8.
void cross_entropy_shard_combine(MatrixView<const double> gathered, std::int64_t shards,
                                 MatrixView<double> combined);
/// Per-row loss (NaN for a target no shard holds, 0 ignored), lse, extras (z_loss_term, entropy;
/// not correct) and the shard's row_grad (d row_loss / d raw logits of its columns).
void cross_entropy_shard_finish(MatrixView<const double> logits,
                                VectorView<const std::int64_t> targets, std::int64_t vocab_begin,
                                std::int64_t vocab_size, MatrixView<const double> combined,
                                const CrossEntropyParams& params, VectorView<double> row_loss,
                                VectorView<double> lse = {}, MatrixView<double> row_grad = {},
                                const CrossEntropyRowExtras& extras = {});

/// The mean's denominator for index targets: the sum of w_t over rows neither ignored nor bad.
double cross_entropy_mean_denominator(VectorView<const std::int64_t> targets, std::int64_t classes,
                                      const CrossEntropyParams& params);

}  // namespace warpfuse::ref
