// warpfuse — the activation vocabulary, and warpfuse::ref's double-precision activations.
//
// The vocabulary (Activation, ActivationParams, activation_backward_from) is shared by the CUDA ops
// in <warpfuse/activation.h> and the CPU reference below. It lives in this header because the
// reference must compile without CUDA; <warpfuse/activation.h> includes it.
//
// The activations, with their defaults (PyTorch's) and the tensor each backward reads:
//
//   kind        f(x)                                             f'(x)                    backward
//   relu        max(x, 0)                                        x > 0 ? 1 : 0            from y
//   leaky_relu  x > 0 ? x : a x          a = negative_slope 0.01 x > 0 ? 1 : a            from y
//   prelu       x > 0 ? x : w[c] x       w = a slope per column  x > 0 ? 1 : w[c]         from x
//   elu         x > 0 ? x : alpha (e^x - 1)       alpha = 1      x > 0 ? 1 : alpha e^x    from x
//   selu        scale elu(x) with alpha = kSeluAlpha, scale = kSeluScale                  from x
//   gelu        x Phi(x) = x/2 erfc(-x / sqrt 2)                 Phi(x) + x phi(x)        from x
//   gelu_tanh   x sigma(2u), u = sqrt(2/pi) (x + 0.044715 x^3)   (the same as 0.5 x (1 + tanh u))
//                                                                s + 2 x s (1 - s) u'     from x
//   silu        x sigma(x)                                       s (1 + x (1 - s))        from x
//   softplus    z = beta x > threshold ? x : log(1 + e^z) / beta   z > threshold ? 1 : sigma(z)
//                                        beta = 1, threshold = 20                         from x
//   sigmoid     sigma(x) = 1 / (1 + e^-x)                        y (1 - y)                from y
//   tanh        tanh(x)                                          (1 - y)(1 + y)           from y
//
// (sigma is the logistic function, Phi and phi the standard normal CDF and density, s = sigma(2u)
// for gelu_tanh and sigma(x) for silu.) "from y" means the backward reads the forward's output, so
// the input need not be kept: dx = dy f'(x) written in terms of y. relu and leaky_relu recover the
// sign of x from y, which needs negative_slope >= 0 (the backward rejects a negative one).
//
// Conventions at the kinks (subgradients, as PyTorch): relu'(0) = 0, leaky_relu'(0) = a,
// prelu'(0) = w, elu'(0) = alpha, selu'(0) = scale alpha, softplus' at z == threshold is
// sigma(threshold) (the smooth branch). prelu's slope gradient is sum over rows of dy min(x, 0).
//
// Special values: NaN in gives NaN out (forward, and backward from a NaN x or y), except that
// relu's backward is a select: dx = 0 where y <= 0 whatever dy holds. Infinities give the limits:
// f(-inf) is 0 for relu, gelu, gelu_tanh, silu, softplus, sigmoid (not the NaN of -inf * 0), -alpha
// for elu, -inf for leaky_relu with a > 0; f'(+-inf) is the limit as well (1 or 0 for the smooth
// ones). Large magnitudes saturate without overflow: softplus uses max(z, 0) + log1p(e^-|z|) below
// the threshold, gelu uses erfc (no 1 + erf cancellation), sigmoid-based forms never form inf/inf.
#pragma once

#include <cstdint>

#include "warpfuse/view_types.h"

namespace warpfuse {

enum class Activation {
  relu,
  leaky_relu,
  prelu,
  elu,
  selu,
  gelu,
  gelu_tanh,
  silu,
  softplus,
  sigmoid,
  tanh,
};

/// Every Activation, in declaration order (tests and benchmarks sweep it).
inline constexpr Activation kAllActivations[] = {
    Activation::relu,     Activation::leaky_relu, Activation::prelu,     Activation::elu,
    Activation::selu,     Activation::gelu,       Activation::gelu_tanh, Activation::silu,
    Activation::softplus, Activation::sigmoid,    Activation::tanh,
};

/// "relu", "leaky_relu", ..., "tanh"; "unknown" for a value outside the enumeration.
constexpr const char* to_string(Activation kind) {
  switch (kind) {
    case Activation::relu:
      return "relu";
    case Activation::leaky_relu:
      return "leaky_relu";
    case Activation::prelu:
      return "prelu";
    case Activation::elu:
      return "elu";
    case Activation::selu:
      return "selu";
    case Activation::gelu:
      return "gelu";
    case Activation::gelu_tanh:
      return "gelu_tanh";
    case Activation::silu:
      return "silu";
    case Activation::softplus:
      return "softplus";
    case Activation::sigmoid:
      return "sigmoid";
    case Activation::tanh:
      return "tanh";
  }
  return "unknown";
}

/// SELU's fixed constants (Klambauer et al., 2017), the values PyTorch uses.
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

/// The tensor an activation's backward reads besides dy: its input x (for the fused forms, the
/// pre-activation x + bias) or its output y.
enum class BackwardFrom { input, output };

constexpr BackwardFrom activation_backward_from(Activation kind) {
  switch (kind) {
    case Activation::relu:
    case Activation::leaky_relu:
    case Activation::sigmoid:
    case Activation::tanh:
      return BackwardFrom::output;
    default:
      return BackwardFrom::input;
  }
}

/// Which activation, and its scalar parameters; each kind reads only its own. PReLU's slope is a
/// tensor (one value per column) and is passed to the ops separately.
struct ActivationParams {
  Activation kind = Activation::relu;
  float negative_slope = 0.01f;  ///< leaky_relu: f(x) = negative_slope * x for x <= 0
  float alpha = 1.0f;            ///< elu: f(x) = alpha * (e^x - 1) for x <= 0
  float beta = 1.0f;             ///< softplus: f(x) = log(1 + e^(beta x)) / beta; must be > 0
  float threshold = 20.0f;       ///< softplus: f(x) = x where beta * x > threshold
};

namespace ref {

/// f(x) in double, with the conventions above. `slope` is prelu's slope for x's column.
double activation(double x, const ActivationParams& params, double slope = 0.0);

/// f'(x), evaluated from x for every kind (the subgradient conventions above at the kinks).
double activation_derivative(double x, const ActivationParams& params, double slope = 0.0);

/// dx = dy * f'(x), computed from `saved`: x or y = f(x) as activation_backward_from says. For
/// relu, a select: 0 where y <= 0 even when dy is NaN or infinite.
double activation_backward(double saved, double dy, const ActivationParams& params,
                           double slope = 0.0);

/// prelu's slope-gradient term of one element: dy * min(x, 0) (0 for x > 0; NaN for a NaN x).
double prelu_slope_term(double x, double dy);

/// y = f(x + bias[c]) over a rows x cols host matrix (any row strides). bias may be empty (plain
/// elementwise forward); slope (prelu only, cols values) may be empty for other kinds; pre, when
/// not empty, receives x + bias. T (float or double) is deduced from y; every intermediate is
/// double. A shape mismatch throws std::invalid_argument.
template <class T>
void activation_forward(nondeduced_t<MatrixView<const T>> x, nondeduced_t<VectorView<const T>> bias,
                        nondeduced_t<VectorView<const T>> slope, MatrixView<T> y, MatrixView<T> pre,
                        const ActivationParams& params);

/// dx = dy * f'(.) from saved (x or y per activation_backward_from); when not empty, dbias[c] =
/// sum over rows of dx[., c] and (prelu) dslope[c] = sum over rows of dy min(x, 0), accumulated in
/// double in row order. dbias and dslope get 0 when rows == 0.
template <class T>
void activation_backward(nondeduced_t<MatrixView<const T>> saved,
                         nondeduced_t<MatrixView<const T>> dy,
                         nondeduced_t<VectorView<const T>> slope, MatrixView<T> dx,
                         VectorView<T> dbias, VectorView<T> dslope, const ActivationParams& params);

}  // namespace ref
}  // namespace warpfuse
