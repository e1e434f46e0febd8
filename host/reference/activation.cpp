// warpfuse::ref — reference activations in double precision (see include/warpfuse/ref/activation.h
// for the formulas and the conventions at kinks, NaN and infinities).
#include "warpfuse/ref/activation.h"

#include "views.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace warpfuse::ref {
namespace {

constexpr double kSqrtHalf = 0.70710678118654752440084436210485;    // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267793994605993438;  // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535587989211986876;
constexpr double kGeluTanhCubic = 0.044715;

double sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

/// elu with the given alpha, the shared body of elu and selu.
double elu(double x, double alpha) {
  return x > 0.0 ? x : alpha * std::expm1(x);
}
double elu_derivative(double x, double alpha) {
  return x > 0.0 ? 1.0 : alpha * std::exp(x);
}

double gelu(double x) {
  if (x == -std::numeric_limits<double>::infinity()) return 0.0;
  return 0.5 * x * std::erfc(-x * kSqrtHalf);
}
double gelu_derivative(double x) {
  if (std::isinf(x)) return x > 0.0 ? 1.0 : 0.0;
  return 0.5 * std::erfc(-x * kSqrtHalf) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x);
}

double gelu_tanh_u(double x) {
  return kSqrt2OverPi * (x + kGeluTanhCubic * x * x * x);
}
double gelu_tanh(double x) {
  if (x == -std::numeric_limits<double>::infinity()) return 0.0;
  return x * sigmoid(2.0 * gelu_tanh_u(x));
}
double gelu_tanh_derivative(double x) {
  if (std::isinf(x)) return x > 0.0 ? 1.0 : 0.0;
  const double s = sigmoid(2.0 * gelu_tanh_u(x));
  const double du = kSqrt2OverPi * (1.0 + 3.0 * kGeluTanhCubic * x * x);
  return s + 2.0 * x * s * (1.0 - s) * du;
}

double silu(double x) {
  if (x == -std::numeric_limits<double>::infinity()) return 0.0;
  return x * sigmoid(x);
}
double silu_derivative(double x) {
  if (std::isinf(x)) return x > 0.0 ? 1.0 : 0.0;
  const double s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}

double softplus(double x, double beta, double threshold) {
  const double z = beta * x;
  if (z > threshold) return x;
  // max(z, 0) + log1p(e^-|z|): no overflow for any z, NaN stays NaN.
  const double soft = z <= 0.0 ? std::log1p(std::exp(z)) : z + std::log1p(std::exp(-z));
  return soft / beta;
}
double softplus_derivative(double x, double beta, double threshold) {
  const double z = beta * x;
  return z > threshold ? 1.0 : sigmoid(z);
}

double nan_or(double saved, double value) {
  return std::isnan(saved) ? saved : value;
}

}  // namespace

double activation(double x, const ActivationParams& params, double slope) {
  switch (params.kind) {
    case Activation::relu:
      return x <= 0.0 ? 0.0 : x;
    case Activation::leaky_relu:
      return x > 0.0 ? x : static_cast<double>(params.negative_slope) * x;
    case Activation::prelu:
      return x > 0.0 ? x : slope * x;
    case Activation::elu:
      return elu(x, params.alpha);
    case Activation::selu:
      return kSeluScale * elu(x, kSeluAlpha);
    case Activation::gelu:
      return gelu(x);
    case Activation::gelu_tanh:
      return gelu_tanh(x);
    case Activation::silu:
      return silu(x);
    case Activation::softplus:
      return softplus(x, params.beta, params.threshold);
    case Activation::sigmoid:
      return sigmoid(x);
    case Activation::tanh:
      return std::tanh(x);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

double activation_derivative(double x, const ActivationParams& params, double slope) {
  switch (params.kind) {
    case Activation::relu:
      return nan_or(x, x > 0.0 ? 1.0 : 0.0);
    case Activation::leaky_relu:
      return nan_or(x, x > 0.0 ? 1.0 : static_cast<double>(params.negative_slope));
    case Activation::prelu:
      return nan_or(x, x > 0.0 ? 1.0 : slope);
    case Activation::elu:
      return elu_derivative(x, params.alpha);
    case Activation::selu:
      return kSeluScale * elu_derivative(x, kSeluAlpha);
    case Activation::gelu:
      return gelu_derivative(x);
    case Activation::gelu_tanh:
      return gelu_tanh_derivative(x);
    case Activation::silu:
      return silu_derivative(x);
    case Activation::softplus:
      return softplus_derivative(x, params.beta, params.threshold);
    case Activation::sigmoid: {
      const double y = sigmoid(x);
      return y * (1.0 - y);
    }
    case Activation::tanh: {
      const double y = std::tanh(x);
      return (1.0 - y) * (1.0 + y);
    }
  }
  return std::numeric_limits<double>::quiet_NaN();
}

double activation_backward(double saved, double dy, const ActivationParams& params, double slope) {
  switch (params.kind) {
    case Activation::relu:  // saved = y; a select, as PyTorch's threshold_backward
      return nan_or(saved, saved > 0.0 ? dy : 0.0);
    case Activation::leaky_relu:  // saved = y; y > 0 exactly when x > 0 (negative_slope >= 0)
      return nan_or(saved, saved > 0.0 ? dy : static_cast<double>(params.negative_slope) * dy);
    case Activation::sigmoid:  // saved = y
      return dy * (saved * (1.0 - saved));
    case Activation::tanh:  // saved = y
      return dy * ((1.0 - saved) * (1.0 + saved));
    case Activation::prelu:  // saved = x, and below
      return nan_or(saved, saved > 0.0 ? dy : slope * dy);
    default:
      return dy * activation_derivative(saved, params, slope);
  }
}

double prelu_slope_term(double x, double dy) {
  return x > 0.0 ? 0.0 : x * dy;
}

template <class T>
void activation_forward(nondeduced_t<MatrixView<const T>> x, nondeduced_t<VectorView<const T>> bias,
                        nondeduced_t<VectorView<const T>> slope, MatrixView<T> y, MatrixView<T> pre,
                        const ActivationParams& params) {
  const std::int64_t rows = x.rows, cols = x.cols;
  detail::require_shape("activation_forward", "y", y, rows, cols);
  if (pre.data != nullptr) detail::require_shape("activation_forward", "pre", pre, rows, cols);
  if (bias.data != nullptr) detail::require_size("activation_forward", "bias", bias, cols);
  if (slope.data != nullptr) detail::require_size("activation_forward", "slope", slope, cols);
  for (std::int64_t row = 0; row < rows; ++row) {
    for (std::int64_t col = 0; col < cols; ++col) {
      double value = static_cast<double>(x.data[row * x.ld + col]);
      if (bias.data != nullptr) value += static_cast<double>(bias.data[col]);
      const double w = slope.data != nullptr ? static_cast<double>(slope.data[col]) : 0.0;
      if (pre.data != nullptr) pre.data[row * pre.ld + col] = static_cast<T>(value);
      y.data[row * y.ld + col] = static_cast<T>(activation(value, params, w));
    }
  }
}

template <class T>
void activation_backward(nondeduced_t<MatrixView<const T>> saved,
                         nondeduced_t<MatrixView<const T>> dy,
                         nondeduced_t<VectorView<const T>> slope, MatrixView<T> dx,
                         VectorView<T> dbias, VectorView<T> dslope,
                         const ActivationParams& params) {
  const std::int64_t rows = saved.rows, cols = saved.cols;
  detail::require_shape("activation_backward", "dy", dy, rows, cols);
  detail::require_shape("activation_backward", "dx", dx, rows, cols);
  if (slope.data != nullptr) detail::require_size("activation_backward", "slope", slope, cols);
  if (dbias.data != nullptr) detail::require_size("activation_backward", "dbias", dbias, cols);
  if (dslope.data != nullptr) detail::require_size("activation_backward", "dslope", dslope, cols);
  // Row by row (the matrices' own order: the CPU trainer runs this on every step), each column's
  // sums accumulated in row order.
  // Only the sums asked for are formed.
  const bool want_bias = dbias.data != nullptr;
  const bool want_slope = dslope.data != nullptr;
  std::vector<double> bias_sums(want_bias ? static_cast<std::size_t>(cols) : 0, 0.0);
  std::vector<double> slope_sums(want_slope ? static_cast<std::size_t>(cols) : 0, 0.0);
  for (std::int64_t row = 0; row < rows; ++row) {
    for (std::int64_t col = 0; col < cols; ++col) {
      const double w = slope.data != nullptr ? static_cast<double>(slope.data[col]) : 0.0;
      const double s = static_cast<double>(saved.data[row * saved.ld + col]);
      const double g = static_cast<double>(dy.data[row * dy.ld + col]);
      const double grad = activation_backward(s, g, params, w);
      dx.data[row * dx.ld + col] = static_cast<T>(grad);
      if (want_bias) bias_sums[col] += grad;
      if (want_slope) slope_sums[col] += prelu_slope_term(s, g);
    }
  }
  for (std::int64_t col = 0; col < cols; ++col) {
    if (dbias.data != nullptr) dbias.data[col] = static_cast<T>(bias_sums[col]);
    if (dslope.data != nullptr) dslope.data[col] = static_cast<T>(slope_sums[col]);
  }
}

#define WARPFUSE_REF_ACTIVATION(T)                                                        \
  template void activation_forward<T>(MatrixView<const T>, VectorView<const T>,           \
                                      VectorView<const T>, MatrixView<T>, MatrixView<T>,  \
                                      const ActivationParams&);                           \
  template void activation_backward<T>(MatrixView<const T>, MatrixView<const T>,          \
                                       VectorView<const T>, MatrixView<T>, VectorView<T>, \
                                       VectorView<T>, const ActivationParams&);
WARPFUSE_REF_ACTIVATION(float)
WARPFUSE_REF_ACTIVATION(double)
#undef WARPFUSE_REF_ACTIVATION

}  // namespace warpfuse::ref
