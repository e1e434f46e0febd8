// warpfuse::ref — CPU reference of the elementwise losses of <warpfuse/elementwise_loss.h>, in
// double precision: per element the loss L and its derivative dL/dpred, then the reductions.
//
// Per element, p = pred, t = target, d = p - t:
//   binary_cross_entropy_with_logits  l = 1 + (w - 1) t, w = pos_weight[col] (1 when empty)
//       L = (1 - t) p + l (log1p(exp(-|p|)) + max(-p, 0)),   dL/dp = (1 - t) - l sigmoid(-p)
//   binary_cross_entropy  p' = clamp(p, eps, 1 - eps)
//       L = -(t log p' + (1 - t) log(1 - p')),   dL/dp = (1 - t)/(1 - p') - t/p', 0 where clamped
//       (p < eps or p > 1 - eps)
//   mse_loss    L = d^2,  dL/dp = 2 d
//   mae_loss    L = |d|,  dL/dp = sign(d), 0 at d = 0
//   huber_loss  L = 0.5 d^2 for |d| <= delta, else delta (|d| - 0.5 delta)
//               dL/dp = clamp(d, -delta, delta)
// NaN propagates through every formula (clamps and signs included); infinities follow IEEE
// arithmetic on the formulas as written, as the device does.
//
// Matrices are host MatrixViews (row-major, any row stride); T, float or double, is deduced from
// the outputs and every intermediate is double. `loss` and `grad` may each be empty (not
// computed); a shape mismatch throws std::invalid_argument. No CUDA needed.
#pragma once

#include <cstdint>
#include <vector>

#include "warpfuse/view_types.h"

namespace warpfuse::ref {

// pred and target are rows x cols; loss and grad, each optional (an empty view is not written),
// have their shape. pos_weight: cols values, or empty for ones.
template <class T>
void binary_cross_entropy_with_logits(nondeduced_t<MatrixView<const T>> pred,
                                      nondeduced_t<MatrixView<const T>> target,
                                      nondeduced_t<VectorView<const T>> pos_weight,
                                      MatrixView<T> loss, MatrixView<T> grad);

template <class T>
void binary_cross_entropy(nondeduced_t<MatrixView<const T>> pred,
                          nondeduced_t<MatrixView<const T>> target, double eps, MatrixView<T> loss,
                          MatrixView<T> grad);

template <class T>
void mse_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
              MatrixView<T> loss, MatrixView<T> grad);

template <class T>
void mae_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
              MatrixView<T> loss, MatrixView<T> grad);

template <class T>
void huber_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
                double delta, MatrixView<T> loss, MatrixView<T> grad);

/// Every reduction of a rows x cols matrix of element losses, as warpfuse::Reduction defines
/// them, accumulated in double in index order, together with the weight g each one gives the
/// gradient (dreduced/dL of one element). A mean over zero elements is 0.
struct LossReductions {
  double sum = 0.0;                ///< sum:            g = 1 (none: g = 1 as well)
  double mean = 0.0;               ///< mean:           g = mean_weight
  std::vector<double> per_sample;  ///< per_sample:     rows row means, g = per_sample_weight
  double per_sample_sum = 0.0;     ///< per_sample_sum: g = per_sample_weight
  double mean_weight = 0.0;        ///< 1 / (rows * cols), 0 when empty
  double per_sample_weight = 0.0;  ///< 1 / cols, 0 when cols == 0
};

template <class T>
LossReductions reduce_losses(MatrixView<const T> loss);

}  // namespace warpfuse::ref
