// warpfuse::ref — CPU reference of chunked linear + cross-entropy
// (<warpfuse/linear_cross_entropy.h>) in double precision: the unfused composition, logits = hidden
// weight^T + bias (a reference GEMM), cross_entropy (the reference's), then the backward GEMMs. No
// CUDA needed.
#pragma once

#include <cstdint>

#include "warpfuse/ref/cross_entropy.h"
#include "warpfuse/view_types.h"

namespace warpfuse::ref {

/// Optional outputs of linear_cross_entropy (empty views are skipped).
struct LinearCrossEntropyGrads {
  MatrixView<double> dhidden{};  ///< rows x d
  MatrixView<double> dweight{};  ///< V x d
  VectorView<double> dbias{};    ///< V values
};

/// hidden: rows x d; weight: V x d; bias: V values or empty; per-row loss, lse and extras as
/// cross_entropy's. The gradients are of grad_scale x sum_i row_loss[i] (a caller wanting the mean
/// passes grad_scale / cross_entropy_mean_denominator). `storage_round`, when set, rounds each
/// logit and each dz value as a storage type would (the unfused path's T tensors: a GEMM's output,
/// cross-entropy's dlogits); null keeps them exact. A size mismatch throws std::invalid_argument.
void linear_cross_entropy(MatrixView<const double> hidden, MatrixView<const double> weight,
                          VectorView<const double> bias, VectorView<const std::int64_t> targets,
                          const CrossEntropyParams& params, double grad_scale,
                          VectorView<double> row_loss, const LinearCrossEntropyGrads& grads,
                          VectorView<double> lse = {}, const CrossEntropyRowExtras& extras = {},
                          double (*storage_round)(double) = nullptr);

}  // namespace warpfuse::ref
