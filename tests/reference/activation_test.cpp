// Tests of the CPU reference activations (include/warpfuse/ref/activation.h): every derivative
// against central finite differences away from the kinks, the subgradient conventions at the
// kinks, the backward from x or y against the derivative, special values, and the array forms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "warpfuse/ref/activation.h"

namespace {

using warpfuse::Activation;
using warpfuse::ActivationParams;
using warpfuse::BackwardFrom;
using warpfuse::MatrixView;
using warpfuse::VectorView;
namespace ref = warpfuse::ref;

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNan = std::numeric_limits<double>::quiet_NaN();

/// Each kind with non-default parameters where it has any (the defaults get their own test).
std::vector<ActivationParams> all_params() {
  std::vector<ActivationParams> result;
  for (Activation kind : warpfuse::kAllActivations) {
    ActivationParams params;
    params.kind = kind;
    if (kind == Activation::leaky_relu) params.negative_slope = 0.2f;
    if (kind == Activation::elu) params.alpha = 0.75f;
    if (kind == Activation::softplus) {
      params.beta = 2.0f;
      params.threshold = 5.0f;  // the linear branch starts at x = 2.5
    }
    result.push_back(params);
  }
  return result;
}

ActivationParams of(Activation kind) {
  ActivationParams params;
  params.kind = kind;
  return params;
}

/// Points of [-7, 7] that keep away from 0 (the kinks) and from softplus's threshold switch.
std::vector<double> smooth_points(const ActivationParams& params) {
  std::vector<double> points;
  for (double x = -7.0; x <= 7.0; x += 0.173) {
    if (std::fabs(x) < 1e-3) continue;
    if (params.kind == Activation::softplus &&
        std::fabs(params.beta * x - params.threshold) < 1e-2) {
      continue;
    }
    points.push_back(x);
  }
  return points;
}

TEST(RefActivation, DerivativesMatchFiniteDifferences) {
  for (const ActivationParams& params : all_params()) {
    SCOPED_TRACE(warpfuse::to_string(params.kind));
    for (const double slope : {0.25, -0.3}) {
      if (params.kind != Activation::prelu && slope < 0.0) continue;
      for (const double x : smooth_points(params)) {
        const double h = 1e-5;
        const double numeric =
            (ref::activation(x + h, params, slope) - ref::activation(x - h, params, slope)) /
            (2.0 * h);
        const double analytic = ref::activation_derivative(x, params, slope);
        EXPECT_NEAR(analytic, numeric, 1e-7 * (1.0 + std::fabs(analytic))) << "at x = " << x;
      }
    }
  }
}

TEST(RefActivation, BackwardFromTheSavedTensorIsDyTimesTheDerivative) {
  for (const ActivationParams& params : all_params()) {
    SCOPED_TRACE(warpfuse::to_string(params.kind));
    const bool from_output =
        warpfuse::activation_backward_from(params.kind) == BackwardFrom::output;
    for (const double x : smooth_points(params)) {
      const double slope = 0.25;
      const double saved = from_output ? ref::activation(x, params, slope) : x;
      const double dy = 1.7;
      const double expected = dy * ref::activation_derivative(x, params, slope);
      EXPECT_NEAR(ref::activation_backward(saved, dy, params, slope), expected,
                  1e-12 * (1.0 + std::fabs(expected)))
          << "at x = " << x;
    }
  }
}

TEST(RefActivation, BackwardReadsYForTheReluFamilyAndSquashingKinds) {
  for (Activation kind :
       {Activation::relu, Activation::leaky_relu, Activation::sigmoid, Activation::tanh}) {
    EXPECT_EQ(warpfuse::activation_backward_from(kind), BackwardFrom::output)
        << warpfuse::to_string(kind);
  }
  for (Activation kind : {Activation::prelu, Activation::elu, Activation::selu, Activation::gelu,
                          Activation::gelu_tanh, Activation::silu, Activation::softplus}) {
    EXPECT_EQ(warpfuse::activation_backward_from(kind), BackwardFrom::input)
        << warpfuse::to_string(kind);
  }
  EXPECT_STREQ(warpfuse::to_string(Activation::gelu_tanh), "gelu_tanh");
  EXPECT_STREQ(warpfuse::to_string(static_cast<Activation>(99)), "unknown");
}

TEST(RefActivation, SubgradientConventionsAtTheKinks) {
  // relu'(0) = 0, as PyTorch; from y = 0 (either sign of zero) the backward gives 0.
  EXPECT_EQ(ref::activation_derivative(0.0, of(Activation::relu)), 0.0);
  EXPECT_EQ(ref::activation_backward(0.0, 3.0, of(Activation::relu)), 0.0);
  EXPECT_EQ(ref::activation_backward(-0.0, 3.0, of(Activation::relu)), 0.0);
  // leaky_relu'(0) = negative_slope, prelu'(0) = slope: the x <= 0 branch.
  ActivationParams leaky = of(Activation::leaky_relu);
  leaky.negative_slope = 0.2f;
  EXPECT_EQ(ref::activation_derivative(0.0, leaky), static_cast<double>(0.2f));
  EXPECT_EQ(ref::activation_backward(0.0, 2.0, leaky), 2.0 * static_cast<double>(0.2f));
  EXPECT_EQ(ref::activation_derivative(0.0, of(Activation::prelu), -0.3), -0.3);
  EXPECT_EQ(ref::activation_backward(0.0, 2.0, of(Activation::prelu), -0.3), -0.6);
  // elu'(0) = alpha, selu'(0) = scale * alpha (the left derivatives, as PyTorch).
  ActivationParams elu = of(Activation::elu);
  elu.alpha = 0.75f;
  EXPECT_EQ(ref::activation_derivative(0.0, elu), 0.75);
  EXPECT_DOUBLE_EQ(ref::activation_derivative(0.0, of(Activation::selu)),
                   warpfuse::kSeluScale * warpfuse::kSeluAlpha);
  // softplus at beta x == threshold stays on the smooth branch: sigma(threshold).
  ActivationParams softplus = of(Activation::softplus);
  softplus.beta = 2.0f;
  softplus.threshold = 5.0f;
  EXPECT_DOUBLE_EQ(ref::activation_derivative(2.5, softplus), 1.0 / (1.0 + std::exp(-5.0)));
  EXPECT_EQ(ref::activation(3.0, softplus), 3.0);  // beyond the threshold: x itself
  // prelu's slope term: dy * min(x, 0).
  EXPECT_EQ(ref::prelu_slope_term(-2.0, 3.0), -6.0);
  EXPECT_EQ(ref::prelu_slope_term(0.0, 3.0), 0.0);
  EXPECT_EQ(ref::prelu_slope_term(2.0, 3.0), 0.0);
}

TEST(RefActivation, KnownValues) {
  // Values from the closed forms (PyTorch agrees to double precision).
  const struct {
    Activation kind;
    double x;
    double y;
  } cases[] = {
      {Activation::relu, -1.5, 0.0},
      {Activation::leaky_relu, -2.0, -2.0 * static_cast<double>(0.01f)},
      {Activation::elu, -1.0, -0.63212055882855767},
      {Activation::selu, 1.0, 1.0507009873554805},
      {Activation::selu, -1.0, -1.1113307378125628},
      {Activation::gelu, 1.0, 0.84134474606854293},
      {Activation::gelu, -1.0, -0.15865525393145707},
      {Activation::gelu_tanh, 1.0, 0.84119199060827680},
      {Activation::silu, 1.0, 0.73105857863000488},
      {Activation::softplus, 1.0, 1.3132616875182228},
      {Activation::softplus, 30.0, 30.0},
      {Activation::sigmoid, 1.0, 0.73105857863000488},
      {Activation::tanh, 1.0, 0.76159415595576489},
  };
  for (const auto& c : cases) {
    EXPECT_NEAR(ref::activation(c.x, of(c.kind)), c.y, 1e-14) << warpfuse::to_string(c.kind);
  }
  EXPECT_EQ(ActivationParams{}.negative_slope, 0.01f);
  EXPECT_EQ(ActivationParams{}.alpha, 1.0f);
  EXPECT_EQ(ActivationParams{}.beta, 1.0f);
  EXPECT_EQ(ActivationParams{}.threshold, 20.0f);
}

TEST(RefActivation, SpecialValuesGiveLimitsAndPropagateNan) {
  for (const ActivationParams& params : all_params()) {
    SCOPED_TRACE(warpfuse::to_string(params.kind));
    const double slope = 0.25;
    EXPECT_TRUE(std::isnan(ref::activation(kNan, params, slope)));
    EXPECT_TRUE(std::isnan(ref::activation_derivative(kNan, params, slope)));
    EXPECT_TRUE(std::isnan(ref::activation_backward(kNan, 1.0, params, slope)));
    EXPECT_FALSE(std::isnan(ref::activation(kInf, params, slope)));
    EXPECT_FALSE(std::isnan(ref::activation(-kInf, params, slope)));
    EXPECT_FALSE(std::isnan(ref::activation_derivative(kInf, params, slope)));
    EXPECT_FALSE(std::isnan(ref::activation_derivative(-kInf, params, slope)));
  }
  const auto f = [](Activation kind, double x) { return ref::activation(x, of(kind)); };
  const auto df = [](Activation kind, double x) { return ref::activation_derivative(x, of(kind)); };
  for (Activation kind : {Activation::relu, Activation::gelu, Activation::gelu_tanh,
                          Activation::silu, Activation::softplus, Activation::sigmoid}) {
    SCOPED_TRACE(warpfuse::to_string(kind));
    EXPECT_EQ(f(kind, -kInf), 0.0);
    EXPECT_EQ(df(kind, -kInf), 0.0);
    EXPECT_EQ(df(kind, kInf), kind == Activation::sigmoid ? 0.0 : 1.0);
  }
  EXPECT_EQ(f(Activation::elu, -kInf), -1.0);
  EXPECT_DOUBLE_EQ(f(Activation::selu, -kInf), -warpfuse::kSeluScale * warpfuse::kSeluAlpha);
  EXPECT_EQ(f(Activation::leaky_relu, -kInf), -kInf);
  EXPECT_EQ(f(Activation::tanh, -kInf), -1.0);
  // Large magnitudes saturate without overflow or cancellation.
  EXPECT_EQ(f(Activation::elu, -1e4), -1.0);
  EXPECT_EQ(f(Activation::softplus, 1e4), 1e4);
  EXPECT_GT(f(Activation::softplus, -700.0), 0.0);  // e^-700, not 0 from log(1 + tiny)
  EXPECT_NEAR(f(Activation::softplus, -700.0) / std::exp(-700.0), 1.0, 1e-12);
  EXPECT_EQ(f(Activation::gelu, 40.0), 40.0);
  EXPECT_LT(f(Activation::gelu, -10.0), 0.0);  // -10 Phi(-10), about -7.6e-23, not 0
  EXPECT_NEAR(f(Activation::gelu, -10.0) / -7.6198530241605260e-23, 1.0, 1e-12);
  EXPECT_EQ(f(Activation::gelu_tanh, 1e30), 1e30);
  EXPECT_EQ(df(Activation::gelu_tanh, 1e30), 1.0);
  EXPECT_EQ(f(Activation::silu, -1e4), -0.0);
  // relu's backward is a select: no NaN from a NaN or infinite dy where y <= 0.
  EXPECT_EQ(ref::activation_backward(0.0, kNan, of(Activation::relu)), 0.0);
  EXPECT_EQ(ref::activation_backward(0.0, kInf, of(Activation::relu)), 0.0);
  EXPECT_TRUE(std::isnan(ref::activation_backward(1.0, kNan, of(Activation::relu))));
}

TEST(RefActivation, ArrayFormsWithBiasStridesAndColumnSums) {
  const std::int64_t rows = 3, cols = 2, ld = 4;
  const std::vector<double> x = {-1.0, 2.0, 0, 0, 0.5, -3.0, 0, 0, 4.0, -0.5, 0, 0};
  const std::vector<double> bias = {0.5, -1.0};
  const std::vector<double> slope = {0.1, 0.2};
  ActivationParams prelu = of(Activation::prelu);
  std::vector<double> y(rows * ld, 7.0), pre(rows * cols, 7.0);
  ref::activation_forward(MatrixView<const double>(x.data(), rows, cols, ld),
                          VectorView<const double>(bias.data(), cols),
                          VectorView<const double>(slope.data(), cols),
                          MatrixView<double>(y.data(), rows, cols, ld),
                          MatrixView<double>(pre.data(), rows, cols), prelu);
  const std::vector<double> expected_pre = {-0.5, 1.0, 1.0, -4.0, 4.5, -1.5};
  EXPECT_EQ(pre, expected_pre);
  EXPECT_DOUBLE_EQ(y[0], -0.05);
  EXPECT_DOUBLE_EQ(y[1], 1.0);
  EXPECT_DOUBLE_EQ(y[ld + 1], -0.8);
  EXPECT_EQ(y[2], 7.0);  // the row padding is left alone

  const std::vector<double> dy = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0};
  std::vector<double> dx(rows * cols), dbias(cols), dslope(cols);
  ref::activation_backward(
      MatrixView<const double>(pre.data(), rows, cols),
      MatrixView<const double>(dy.data(), rows, cols), VectorView<const double>(slope.data(), cols),
      MatrixView<double>(dx.data(), rows, cols), VectorView<double>(dbias.data(), cols),
      VectorView<double>(dslope.data(), cols), prelu);
  const std::vector<double> expected_dx = {0.1, 2.0, 3.0, 0.8, 5.0, 1.2};
  for (std::size_t i = 0; i < dx.size(); ++i) EXPECT_DOUBLE_EQ(dx[i], expected_dx[i]) << i;
  EXPECT_DOUBLE_EQ(dbias[0], 0.1 + 3.0 + 5.0);
  EXPECT_DOUBLE_EQ(dbias[1], 2.0 + 0.8 + 1.2);
  EXPECT_DOUBLE_EQ(dslope[0], -0.5 * 1.0);
  EXPECT_DOUBLE_EQ(dslope[1], -4.0 * 4.0 + -1.5 * 6.0);

  // No rows: the sums are zero.
  dbias.assign(cols, 7.0);
  ref::activation_backward<double>(
      MatrixView<const double>(nullptr, 0, cols), MatrixView<const double>(nullptr, 0, cols), {},
      MatrixView<double>(nullptr, 0, cols), VectorView<double>(dbias.data(), cols), {},
      of(Activation::relu));
  EXPECT_EQ(dbias, std::vector<double>(cols, 0.0));
}

}  // namespace
