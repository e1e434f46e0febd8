// warpfuse::ref — reference elementwise losses (see include/warpfuse/ref/elementwise_loss.h).
#include "warpfuse/ref/elementwise_loss.h"

#include "views.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace warpfuse::ref {
namespace {

struct Term {
  double value;
  double grad;
};

/// Applies `formula(p, t, col)` to every element, writing the requested outputs (an empty view is
/// not written).
template <class T, class Formula>
void elementwise(const char* op, MatrixView<const T> pred, MatrixView<const T> target,
                 MatrixView<T> loss, MatrixView<T> grad, Formula formula) {
  const std::int64_t rows = pred.rows, cols = pred.cols;
  detail::require_shape(op, "target", target, rows, cols);
  const bool want_loss = loss.data != nullptr, want_grad = grad.data != nullptr;
  if (want_loss) detail::require_shape(op, "loss", loss, rows, cols);
  if (want_grad) detail::require_shape(op, "grad", grad, rows, cols);
  for (std::int64_t row = 0; row < rows; ++row) {
    for (std::int64_t col = 0; col < cols; ++col) {
      const Term result = formula(static_cast<double>(pred.data[row * pred.ld + col]),
                                  static_cast<double>(target.data[row * target.ld + col]), col);
      if (want_loss) loss.data[row * loss.ld + col] = static_cast<T>(result.value);
      if (want_grad) grad.data[row * grad.ld + col] = static_cast<T>(result.grad);
    }
  }
}

}  // namespace

template <class T>
void binary_cross_entropy_with_logits(nondeduced_t<MatrixView<const T>> pred,
                                      nondeduced_t<MatrixView<const T>> target,
                                      nondeduced_t<VectorView<const T>> pos_weight,
                                      MatrixView<T> loss, MatrixView<T> grad) {
  const char* op = "binary_cross_entropy_with_logits";
  if (pos_weight.data != nullptr) detail::require_size(op, "pos_weight", pos_weight, pred.cols);
  const T* weight = pos_weight.data;
  elementwise<T>(op, pred, target, loss, grad, [weight](double z, double t, std::int64_t col) {
    const double w = weight == nullptr ? 1.0 : static_cast<double>(weight[col]);
    const double l = 1.0 + (w - 1.0) * t;
    const double e = std::exp(-std::fabs(z));
    const double softplus_neg = std::log1p(e) + (z < 0.0 ? -z : 0.0);
    const double sigmoid_neg = (z >= 0.0 ? e : 1.0) / (1.0 + e);
    return Term{(1.0 - t) * z + l * softplus_neg, (1.0 - t) - l * sigmoid_neg};
  });
}

template <class T>
void binary_cross_entropy(nondeduced_t<MatrixView<const T>> pred,
                          nondeduced_t<MatrixView<const T>> target, double eps, MatrixView<T> loss,
                          MatrixView<T> grad) {
  elementwise<T>("binary_cross_entropy", pred, target, loss, grad,
                 [eps](double p, double t, std::int64_t) {
                   const bool low = p < eps;
                   const bool high = p > 1.0 - eps;
                   const double clamped = low ? eps : (high ? 1.0 - eps : p);
                   const double q = high ? eps : 1.0 - clamped;
                   const double value = -(t * std::log(clamped) + (1.0 - t) * std::log(q));
                   return Term{value, low || high ? 0.0 : (1.0 - t) / q - t / clamped};
                 });
}

template <class T>
void mse_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
              MatrixView<T> loss, MatrixView<T> grad) {
  elementwise<T>("mse_loss", pred, target, loss, grad, [](double p, double t, std::int64_t) {
    const double d = p - t;
    return Term{d * d, 2.0 * d};
  });
}

template <class T>
void mae_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
              MatrixView<T> loss, MatrixView<T> grad) {
  elementwise<T>("mae_loss", pred, target, loss, grad, [](double p, double t, std::int64_t) {
    const double d = p - t;
    return Term{std::fabs(d), d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : d)};
  });
}

template <class T>
void huber_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
                double delta, MatrixView<T> loss, MatrixView<T> grad) {
  elementwise<T>("huber_loss", pred, target, loss, grad, [delta](double p, double t, std::int64_t) {
    const double d = p - t;
    const double magnitude = std::fabs(d);
    const double value = magnitude <= delta ? 0.5 * d * d : delta * (magnitude - 0.5 * delta);
    return Term{value, d > delta ? delta : (d < -delta ? -delta : d)};
  });
}

template <class T>
LossReductions reduce_losses(MatrixView<const T> loss) {
  const std::int64_t rows = loss.rows, cols = loss.cols, ld_loss = loss.ld;
  LossReductions result;
  result.per_sample.assign(static_cast<std::size_t>(rows > 0 ? rows : 0), 0.0);
  const bool empty = rows <= 0 || cols <= 0;
  result.mean_weight = empty ? 0.0 : 1.0 / (static_cast<double>(rows) * static_cast<double>(cols));
  result.per_sample_weight = cols <= 0 ? 0.0 : 1.0 / static_cast<double>(cols);
  for (std::int64_t row = 0; row < rows; ++row) {
    double row_sum = 0.0;
    for (std::int64_t col = 0; col < cols; ++col) {
      row_sum += static_cast<double>(loss.data[row * ld_loss + col]);
    }
    result.sum += row_sum;
    result.per_sample[static_cast<std::size_t>(row)] = row_sum * result.per_sample_weight;
    result.per_sample_sum += row_sum * result.per_sample_weight;
  }
  result.mean = result.sum * result.mean_weight;
  return result;
}

#define WARPFUSE_INSTANTIATE_REF_ELEMENTWISE_LOSS(T)                                           \
  template void binary_cross_entropy_with_logits<T>(MatrixView<const T>, MatrixView<const T>,  \
                                                    VectorView<const T>, MatrixView<T>,        \
                                                    MatrixView<T>);                            \
  template void binary_cross_entropy<T>(MatrixView<const T>, MatrixView<const T>, double,      \
                                        MatrixView<T>, MatrixView<T>);                         \
  template void mse_loss<T>(MatrixView<const T>, MatrixView<const T>, MatrixView<T>,           \
                            MatrixView<T>);                                                    \
  template void mae_loss<T>(MatrixView<const T>, MatrixView<const T>, MatrixView<T>,           \
                            MatrixView<T>);                                                    \
  template void huber_loss<T>(MatrixView<const T>, MatrixView<const T>, double, MatrixView<T>, \
                              MatrixView<T>);                                                  \
  template LossReductions reduce_losses<T>(MatrixView<const T>);
WARPFUSE_INSTANTIATE_REF_ELEMENTWISE_LOSS(float)
WARPFUSE_INSTANTIATE_REF_ELEMENTWISE_LOSS(double)
#undef WARPFUSE_INSTANTIATE_REF_ELEMENTWISE_LOSS

}  // namespace warpfuse::ref
