// warpfuse::ref — reference elementwise losses (see include/warpfuse/ref/elementwise_loss.h).
#include "warpfuse/ref/elementwise_loss.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace warpfuse::ref {
namespace {

struct Term {
  double value;
  double grad;
};

/// Applies `formula(p, t, col)` to every element, writing the requested outputs.
template <class T, class Formula>
void elementwise(const T* pred, std::int64_t ld_pred, const T* target, std::int64_t ld_target,
                 std::int64_t rows, std::int64_t cols, T* loss, std::int64_t ld_loss, T* grad,
                 std::int64_t ld_grad, Formula formula) {
  for (std::int64_t row = 0; row < rows; ++row) {
    for (std::int64_t col = 0; col < cols; ++col) {
      const Term result = formula(static_cast<double>(pred[row * ld_pred + col]),
                                  static_cast<double>(target[row * ld_target + col]), col);
      if (loss != nullptr) loss[row * ld_loss + col] = static_cast<T>(result.value);
      if (grad != nullptr) grad[row * ld_grad + col] = static_cast<T>(result.grad);
    }
  }
}

}  // namespace

template <class T>
void binary_cross_entropy_with_logits(const T* pred, std::int64_t ld_pred, const T* target,
                                      std::int64_t ld_target, const T* pos_weight,
                                      std::int64_t rows, std::int64_t cols, T* loss,
                                      std::int64_t ld_loss, T* grad, std::int64_t ld_grad) {
  elementwise(pred, ld_pred, target, ld_target, rows, cols, loss, ld_loss, grad, ld_grad,
              [pos_weight](double z, double t, std::int64_t col) {
                const double w = pos_weight == nullptr ? 1.0 : static_cast<double>(pos_weight[col]);
                const double l = 1.0 + (w - 1.0) * t;
                const double e = std::exp(-std::fabs(z));
                const double softplus_neg = std::log1p(e) + (z < 0.0 ? -z : 0.0);
                const double sigmoid_neg = (z >= 0.0 ? e : 1.0) / (1.0 + e);
                return Term{(1.0 - t) * z + l * softplus_neg, (1.0 - t) - l * sigmoid_neg};
              });
}

template <class T>
void binary_cross_entropy(const T* pred, std::int64_t ld_pred, const T* target,
                          std::int64_t ld_target, double eps, std::int64_t rows, std::int64_t cols,
                          T* loss, std::int64_t ld_loss, T* grad, std::int64_t ld_grad) {
  elementwise(pred, ld_pred, target, ld_target, rows, cols, loss, ld_loss, grad, ld_grad,
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
void mse_loss(const T* pred, std::int64_t ld_pred, const T* target, std::int64_t ld_target,
              std::int64_t rows, std::int64_t cols, T* loss, std::int64_t ld_loss, T* grad,
              std::int64_t ld_grad) {
  elementwise(pred, ld_pred, target, ld_target, rows, cols, loss, ld_loss, grad, ld_grad,
              [](double p, double t, std::int64_t) {
                const double d = p - t;
                return Term{d * d, 2.0 * d};
              });
}

template <class T>
void mae_loss(const T* pred, std::int64_t ld_pred, const T* target, std::int64_t ld_target,
              std::int64_t rows, std::int64_t cols, T* loss, std::int64_t ld_loss, T* grad,
              std::int64_t ld_grad) {
  elementwise(pred, ld_pred, target, ld_target, rows, cols, loss, ld_loss, grad, ld_grad,
              [](double p, double t, std::int64_t) {
                const double d = p - t;
                return Term{std::fabs(d), d > 0.0 ? 1.0 : (d < 0.0 ? -1.0 : d)};
              });
}

template <class T>
void huber_loss(const T* pred, std::int64_t ld_pred, const T* target, std::int64_t ld_target,
                double delta, std::int64_t rows, std::int64_t cols, T* loss, std::int64_t ld_loss,
                T* grad, std::int64_t ld_grad) {
  elementwise(pred, ld_pred, target, ld_target, rows, cols, loss, ld_loss, grad, ld_grad,
              [delta](double p, double t, std::int64_t) {
                const double d = p - t;
                const double magnitude = std::fabs(d);
                const double value =
                    magnitude <= delta ? 0.5 * d * d : delta * (magnitude - 0.5 * delta);
                return Term{value, d > delta ? delta : (d < -delta ? -delta : d)};
              });
}

template <class T>
LossReductions reduce_losses(const T* loss, std::int64_t ld_loss, std::int64_t rows,
                             std::int64_t cols) {
  LossReductions result;
  result.per_sample.assign(static_cast<std::size_t>(rows > 0 ? rows : 0), 0.0);
  const bool empty = rows <= 0 || cols <= 0;
  result.mean_weight = empty ? 0.0 : 1.0 / (static_cast<double>(rows) * static_cast<double>(cols));
  result.per_sample_weight = cols <= 0 ? 0.0 : 1.0 / static_cast<double>(cols);
  for (std::int64_t row = 0; row < rows; ++row) {
    double row_sum = 0.0;
    for (std::int64_t col = 0; col < cols; ++col) {
      row_sum += static_cast<double>(loss[row * ld_loss + col]);
    }
    result.sum += row_sum;
    result.per_sample[static_cast<std::size_t>(row)] = row_sum * result.per_sample_weight;
    result.per_sample_sum += row_sum * result.per_sample_weight;
  }
  result.mean = result.sum * result.mean_weight;
  return result;
}

#define WARPFUSE_INSTANTIATE_REF_ELEMENTWISE_LOSS(T)                                            \
  template void binary_cross_entropy_with_logits<T>(                                            \
      const T*, std::int64_t, const T*, std::int64_t, const T*, std::int64_t, std::int64_t, T*, \
      std::int64_t, T*, std::int64_t);                                                          \
  template void binary_cross_entropy<T>(const T*, std::int64_t, const T*, std::int64_t, double, \
                                        std::int64_t, std::int64_t, T*, std::int64_t, T*,       \
                                        std::int64_t);                                          \
  template void mse_loss<T>(const T*, std::int64_t, const T*, std::int64_t, std::int64_t,       \
                            std::int64_t, T*, std::int64_t, T*, std::int64_t);                  \
  template void mae_loss<T>(const T*, std::int64_t, const T*, std::int64_t, std::int64_t,       \
                            std::int64_t, T*, std::int64_t, T*, std::int64_t);                  \
  template void huber_loss<T>(const T*, std::int64_t, const T*, std::int64_t, double,           \
                              std::int64_t, std::int64_t, T*, std::int64_t, T*, std::int64_t);  \
  template LossReductions reduce_losses<T>(const T*, std::int64_t, std::int64_t, std::int64_t);
WARPFUSE_INSTANTIATE_REF_ELEMENTWISE_LOSS(float)
WARPFUSE_INSTANTIATE_REF_ELEMENTWISE_LOSS(double)
#undef WARPFUSE_INSTANTIATE_REF_ELEMENTWISE_LOSS

}  // namespace warpfuse::ref
