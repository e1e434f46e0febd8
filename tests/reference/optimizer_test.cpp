// Tests of the optimizer's CPU reference (include/warpfuse/ref/optimizer.h) against values worked
// out here from Keras' update rules, in both instantiations (double: the oracle of the fused op;
// float: the trainer's CPU backend).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "warpfuse/optimizer_types.h"
#include "warpfuse/ref/optimizer.h"

namespace warpfuse::ref {
namespace {

template <class S>
class RefOptimizer : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(RefOptimizer, Scalars);

TYPED_TEST(RefOptimizer, AdamTwoStepsFollowKeras) {
  using S = TypeParam;
  const std::vector<S> g = {S(0.5), S(-2.0)};
  std::vector<S> p = {S(1.0), S(-1.0)};
  std::vector<S> state(4, S(0));
  OptimizerOptions adam;
  adam.learning_rate = 0.1f;
  for (std::int64_t t = 1; t <= 2; ++t) {
    adam.step = t;
    optimizer_step<S>({{p.data(), g.data(), state.data(), 2}}, adam);
  }
  // The options are floats: the expected values use them widened, as the reference does.
  const double lr = 0.1f, b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
  double ep[2] = {1.0, -1.0}, m[2] = {0, 0}, v[2] = {0, 0};
  for (int t = 1; t <= 2; ++t) {
    const double lr_t = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (int i = 0; i < 2; ++i) {
      m[i] += (g[i] - m[i]) * (1 - b1);
      v[i] += (g[i] * g[i] - v[i]) * (1 - b2);
      ep[i] -= lr_t * m[i] / (std::sqrt(v[i]) + eps);
    }
  }
  EXPECT_NEAR(p[0], ep[0], 1e-6);
  EXPECT_NEAR(p[1], ep[1], 1e-6);
  EXPECT_NEAR(state[0], m[0], 1e-7);  // m then v
  EXPECT_NEAR(state[3], v[1], 1e-7);
}

TYPED_TEST(RefOptimizer, SgdPlainMomentumAndNesterov) {
  using S = TypeParam;
  const std::vector<S> g = {S(0.5), S(-2.0)};
  OptimizerOptions sgd;
  sgd.rule = OptimizerRule::sgd;
  sgd.learning_rate = 0.1f;
  {
    std::vector<S> p = {S(1.0), S(-1.0)};
    optimizer_step<S>({{p.data(), g.data(), nullptr, 2}}, sgd);  // no state needed
    EXPECT_NEAR(p[0], 0.95, 1e-6);
    EXPECT_NEAR(p[1], -0.8, 1e-6);
  }
  sgd.momentum = 0.9f;
  sgd.nesterov = true;
  std::vector<S> p = {S(1.0), S(-1.0)};
  std::vector<S> velocity = {S(0.1), S(0)};
  optimizer_step<S>({{p.data(), g.data(), velocity.data(), 2}}, sgd);
  // v = 0.9 v - lr g; p += 0.9 v - lr g
  const double v0 = 0.9 * 0.1 - 0.05;
  EXPECT_NEAR(velocity[0], v0, 1e-6);
  EXPECT_NEAR(p[0], 1.0 + 0.9 * v0 - 0.05, 1e-6);
  EXPECT_NEAR(p[1], -1.0 + 0.9 * 0.2 + 0.2, 1e-6);
}

TYPED_TEST(RefOptimizer, DecoupledWeightDecayComesFirst) {
  using S = TypeParam;
  std::vector<S> p = {S(1.0)};
  std::vector<S> state(2, S(0));
  const std::vector<S> zero = {S(0)};
  OptimizerOptions adamw;
  adamw.rule = OptimizerRule::adamw;
  adamw.learning_rate = 0.1f;
  adamw.weight_decay = 0.5f;
  optimizer_step<S>({{p.data(), zero.data(), state.data(), 1}}, adamw);
  EXPECT_NEAR(p[0], 0.95, 1e-6);
}

TYPED_TEST(RefOptimizer, ScalingClippingAndSkipping) {
  using S = TypeParam;
  // Two tensors whose scaled gradients (grad_scale 0.5) have the global norm 0.5 * 5 = 2.5.
  const std::vector<S> g1 = {S(3.0)}, g2 = {S(0.0), S(4.0)};
  std::vector<S> p1 = {S(0)}, p2 = {S(0), S(0)};
  OptimizerOptions sgd;
  sgd.rule = OptimizerRule::sgd;
  sgd.learning_rate = 1.0f;
  sgd.grad_scale = 0.5f;
  sgd.max_grad_norm = 1.0f;
  const OptimizerResult result = optimizer_step<S>(
      {{p1.data(), g1.data(), nullptr, 1}, {p2.data(), g2.data(), nullptr, 2}}, sgd);
  EXPECT_NEAR(result.grad_norm, 2.5, 1e-12);
  EXPECT_FALSE(result.skipped);
  const double clip = 1.0 / (2.5 + 1e-6);  // the scaled gradient is clipped to norm ~1
  EXPECT_NEAR(p1[0], -1.5 * clip, 1e-6);
  EXPECT_NEAR(p2[1], -2.0 * clip, 1e-6);
  // A non-finite norm skips the step: nothing changes.
  std::vector<S> bad = {std::numeric_limits<S>::infinity()};
  sgd.skip_nonfinite = true;
  const OptimizerResult skipped = optimizer_step<S>({{p1.data(), bad.data(), nullptr, 1}}, sgd);
  EXPECT_TRUE(skipped.skipped);
  EXPECT_NEAR(p1[0], -1.5 * clip, 1e-6);
}

TYPED_TEST(RefOptimizer, BadTensorsThrow) {
  using S = TypeParam;
  std::vector<S> p(2), g(2);
  OptimizerOptions adam;
  EXPECT_THROW(optimizer_step<S>({{p.data(), g.data(), nullptr, 2}}, adam), std::invalid_argument);
  EXPECT_THROW(optimizer_step<S>({{nullptr, g.data(), nullptr, 2}}, adam), std::invalid_argument);
  EXPECT_THROW(optimizer_step<S>({{p.data(), g.data(), p.data(), -1}}, adam),
               std::invalid_argument);
}

}  // namespace
}  // namespace warpfuse::ref
