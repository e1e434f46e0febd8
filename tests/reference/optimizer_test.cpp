// Tests of the optimizer's CPU reference (include/warpfuse/ref/optimizer.h) against values worked
// out here from Keras' update rules, in both instantiations (double: the oracle of the fused op;
// float: the trainer's CPU backend).
#include <gtest/gtest.h>

#include <algorithm>
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

// optimizer_step_fp32 (the CPU trainer's step): the reference's formula in float arithmetic, within
// a few float ulps of the fp64 reference for every rule, over several steps (state carried), and
// the same validation.
TEST(RefOptimizerFp32, FollowsTheFp64ReferenceForEveryRule) {
  std::vector<OptimizerOptions> rules(5);
  rules[0].rule = OptimizerRule::sgd;
  rules[1].rule = OptimizerRule::sgd;
  rules[1].momentum = 0.9f;
  rules[1].nesterov = true;
  rules[2].rule = OptimizerRule::adam;
  rules[3].rule = OptimizerRule::adamw;
  rules[3].weight_decay = 0.01f;
  rules[4].rule = OptimizerRule::adam;
  rules[4].max_grad_norm = 0.5f;
  rules[4].grad_scale = 0.25f;
  const std::int64_t n = 70001;  // split over the pool, odd length
  for (const OptimizerOptions& base : rules) {
    std::vector<float> p32(n), p64(n), s32(2 * n, 0.0f), s64(2 * n, 0.0f), g(n);
    for (std::int64_t i = 0; i < n; ++i) {
      p32[i] = p64[i] = std::sin(0.37f * static_cast<float>(i));
      g[i] = 0.01f * std::cos(0.11f * static_cast<float>(i)) + 1e-4f * static_cast<float>(i % 7);
    }
    for (int step = 1; step <= 4; ++step) {
      OptimizerOptions o = base;
      o.step = step;
      o.learning_rate = 0.01f;
      const OptimizerResult r32 = optimizer_step_fp32({{p32.data(), g.data(), s32.data(), n}}, o);
      const OptimizerResult r64 = optimizer_step<float>({{p64.data(), g.data(), s64.data(), n}}, o);
      EXPECT_EQ(r32.grad_norm, r64.grad_norm);
    }
    int bad = 0;
    double moved = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      moved = std::max(moved, static_cast<double>(std::fabs(p64[i] - std::sin(0.37f * i))));
      // Each step's change (<= lr 0.01) carries a few float ulps of error; p itself is ~1.
      const float tolerance = 4e-7f * (1.0f + std::fabs(p64[i]));
      if (std::fabs(p32[i] - p64[i]) > tolerance && ++bad <= 3) {
        ADD_FAILURE() << "rule " << static_cast<int>(base.rule) << " element " << i << ": fp32 "
                      << p32[i] << ", fp64 " << p64[i];
      }
    }
    EXPECT_GT(moved, 1e-4) << "the steps did not move the parameters";
  }
  EXPECT_THROW(optimizer_step_fp32({{nullptr, nullptr, nullptr, 3}}, OptimizerOptions{}),
               std::invalid_argument);
}

}  // namespace
}  // namespace warpfuse::ref
