// warpfuse::ref — CPU reference of the elementwise losses of <warpfuse/elementwise_loss.h>, in
// double precision: per element the loss L and its derivative dL/dpred, then the reductions.
//
// Per element, p = pred, t = target, d = p - t:
//   binary_cross_entropy_with_logits  l = 1 + (w - 1) t, w = pos_weight[col] (1 when null)
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
// Matrices are row-major with row strides; T is float or double, every intermediate is double.
// `loss` and `grad` may each be null (not computed). No CUDA needed.
#pragma once

#include <cstdint>
#include <vector>

namespace warpfuse::ref {

template <class T>
void binary_cross_entropy_with_logits(const T* pred, std::int64_t ld_pred, const T* target,
                                      std::int64_t ld_target, const T* pos_weight,
                                      std::int64_t rows, std::int64_t cols, T* loss,
                                      std::int64_t ld_loss, T* grad, std::int64_t ld_grad);

template <class T>
void binary_cross_entropy(const T* pred, std::int64_t ld_pred, const T* target,
                          std::int64_t ld_target, double eps, std::int64_t rows, std::int64_t cols,
                          T* loss, std::int64_t ld_loss, T* grad, std::int64_t ld_grad);

template <class T>
void mse_loss(const T* pred, std::int64_t ld_pred, const T* target, std::int64_t ld_target,
              std::int64_t rows, std::int64_t cols, T* loss, std::int64_t ld_loss, T* grad,
              std::int64_t ld_grad);

template <class T>
void mae_loss(const T* pred, std::int64_t ld_pred, const T* target, std::int64_t ld_target,
              std::int64_t rows, std::int64_t cols, T* loss, std::int64_t ld_loss, T* grad,
              std::int64_t ld_grad);

template <class T>
void huber_loss(const T* pred, std::int64_t ld_pred, const T* target, std::int64_t ld_target,
                double delta, std::int64_t rows, std::int64_t cols, T* loss, std::int64_t ld_loss,
                T* grad, std::int64_t ld_grad);

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
LossReductions reduce_losses(const T* loss, std::int64_t ld_loss, std::int64_t rows,
                             std::int64_t cols);

}  // namespace warpfuse::ref
