// The elementwise-loss reference (include/warpfuse/ref/elementwise_loss.h) against definitions:
// every gradient equals central finite differences of its loss away from kinks and clamps, the
// stable logit form equals the naive one where that is finite, Keras's published
// binary_crossentropy example holds, and the reductions follow warpfuse::Reduction. Also checks
// that the public header compiles without nvcc and rejects mixed storage types at compile time.
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "warpfuse/elementwise_loss.h"
#include "warpfuse/ref/elementwise_loss.h"

namespace {

namespace ref = warpfuse::ref;
using warpfuse::MatrixView;
using warpfuse::VectorView;

// --- compile-time contract of the public API -----------------------------------------------------

/// The storage type of a view of T or const T.
template <class View>
struct StorageOf;
template <class T>
struct StorageOf<MatrixView<T>> {
  using type = std::remove_const_t<T>;
};

template <class Pred, class Target, class = void>
struct MseAccepts : std::false_type {};
template <class Pred, class Target>
struct MseAccepts<Pred, Target,
                  std::void_t<decltype(warpfuse::mse_loss(
                      std::declval<Pred>(), std::declval<Target>(),
                      warpfuse::ElementwiseLossOutputs<typename StorageOf<Pred>::type>{},
                      warpfuse::Workspace{}))>> : std::true_type {};

static_assert(MseAccepts<MatrixView<const float>, MatrixView<const float>>::value);
static_assert(MseAccepts<MatrixView<float>, MatrixView<float>>::value);
static_assert(MseAccepts<MatrixView<const __half>, MatrixView<__half>>::value);
static_assert(!MseAccepts<MatrixView<const float>, MatrixView<const __half>>::value,
              "predictions and targets of different storage types must not compile");
static_assert(!MseAccepts<MatrixView<__half>, MatrixView<const float>>::value);

// --- helpers -------------------------------------------------------------------------------------
std::vector<double> random_vector(std::size_t n, std::uint64_t seed, double low, double high) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<double> values(n);
  for (auto& v : values) v = dist(rng);
  return values;
}

/// Fills loss and grad for rows x cols dense matrices.
using LossFn =
    std::function<void(const std::vector<double>& pred, const std::vector<double>& target,
                       std::int64_t rows, std::int64_t cols, double* loss, double* grad)>;

/// Central differences of each element's loss against the reference's derivative.
void check_finite_differences(const LossFn& fn, const std::vector<double>& pred,
                              const std::vector<double>& target, std::int64_t rows,
                              std::int64_t cols) {
  const double h = 1e-6;
  std::vector<double> loss(pred.size()), grad(pred.size());
  fn(pred, target, rows, cols, loss.data(), grad.data());
  for (std::size_t i = 0; i < pred.size(); ++i) {
    std::vector<double> up = pred, down = pred;
    up[i] += h;
    down[i] -= h;
    std::vector<double> loss_up(pred.size()), loss_down(pred.size());
    fn(up, target, rows, cols, loss_up.data(), nullptr);
    fn(down, target, rows, cols, loss_down.data(), nullptr);
    const double numeric = (loss_up[i] - loss_down[i]) / (2.0 * h);
    EXPECT_NEAR(grad[i], numeric, 1e-6 * (1.0 + std::fabs(numeric)))
        << "element " << i << ": pred " << pred[i] << ", target " << target[i];
  }
}

LossFn logits_fn(const std::vector<double>* pos_weight) {
  return [pos_weight](const std::vector<double>& p, const std::vector<double>& t, std::int64_t rows,
                      std::int64_t cols, double* loss, double* grad) {
    ref::binary_cross_entropy_with_logits(
        MatrixView<const double>(p.data(), rows, cols, cols),
        MatrixView<const double>(t.data(), rows, cols, cols),
        VectorView<const double>(pos_weight ? pos_weight->data() : nullptr, cols),
        MatrixView<double>(loss, rows, cols, cols), MatrixView<double>(grad, rows, cols, cols));
  };
}
LossFn bce_fn(double eps) {
  return [eps](const std::vector<double>& p, const std::vector<double>& t, std::int64_t rows,
               std::int64_t cols, double* loss, double* grad) {
    ref::binary_cross_entropy(MatrixView<const double>(p.data(), rows, cols, cols),
                              MatrixView<const double>(t.data(), rows, cols, cols), eps,
                              MatrixView<double>(loss, rows, cols, cols),
                              MatrixView<double>(grad, rows, cols, cols));
  };
}
LossFn mse_fn() {
  return [](const std::vector<double>& p, const std::vector<double>& t, std::int64_t rows,
            std::int64_t cols, double* loss, double* grad) {
    ref::mse_loss(MatrixView<const double>(p.data(), rows, cols, cols),
                  MatrixView<const double>(t.data(), rows, cols, cols),
                  MatrixView<double>(loss, rows, cols, cols),
                  MatrixView<double>(grad, rows, cols, cols));
  };
}
LossFn mae_fn() {
  return [](const std::vector<double>& p, const std::vector<double>& t, std::int64_t rows,
            std::int64_t cols, double* loss, double* grad) {
    ref::mae_loss(MatrixView<const double>(p.data(), rows, cols, cols),
                  MatrixView<const double>(t.data(), rows, cols, cols),
                  MatrixView<double>(loss, rows, cols, cols),
                  MatrixView<double>(grad, rows, cols, cols));
  };
}
LossFn huber_fn(double delta) {
  return [delta](const std::vector<double>& p, const std::vector<double>& t, std::int64_t rows,
                 std::int64_t cols, double* loss, double* grad) {
    ref::huber_loss(MatrixView<const double>(p.data(), rows, cols, cols),
                    MatrixView<const double>(t.data(), rows, cols, cols), delta,
                    MatrixView<double>(loss, rows, cols, cols),
                    MatrixView<double>(grad, rows, cols, cols));
  };
}

// --- gradients -----------------------------------------------------------------------------------
constexpr std::int64_t kRows = 3, kCols = 7;

TEST(RefElementwiseLoss, BceWithLogitsGradientIsTheDerivative) {
  const auto pred = random_vector(kRows * kCols, 1, -6.0, 6.0);
  const auto target = random_vector(kRows * kCols, 2, 0.0, 1.0);
  const auto weight = random_vector(kCols, 3, 0.2, 5.0);
  check_finite_differences(logits_fn(nullptr), pred, target, kRows, kCols);
  check_finite_differences(logits_fn(&weight), pred, target, kRows, kCols);
}

TEST(RefElementwiseLoss, BceGradientIsTheDerivativeAwayFromTheClamp) {
  const auto pred = random_vector(kRows * kCols, 4, 0.02, 0.98);
  const auto target = random_vector(kRows * kCols, 5, 0.0, 1.0);
  check_finite_differences(bce_fn(1e-7), pred, target, kRows, kCols);
  check_finite_differences(bce_fn(0.01), pred, target, kRows, kCols);
}

TEST(RefElementwiseLoss, RegressionGradientsAreTheDerivativeAwayFromKinks) {
  auto pred = random_vector(kRows * kCols, 6, -3.0, 3.0);
  const auto target = random_vector(kRows * kCols, 7, -3.0, 3.0);
  const double delta = 0.8;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const double d = pred[i] - target[i];
    // Keep d away from 0 (MAE's kink) and from +-delta (Huber's second derivative jumps there).
    if (std::fabs(d) < 1e-3) pred[i] += 0.01;
    if (std::fabs(std::fabs(d) - delta) < 1e-3) pred[i] += 0.01;
  }
  check_finite_differences(mse_fn(), pred, target, kRows, kCols);
  check_finite_differences(mae_fn(), pred, target, kRows, kCols);
  check_finite_differences(huber_fn(delta), pred, target, kRows, kCols);
  check_finite_differences(huber_fn(10.0), pred, target, kRows, kCols);  // all quadratic
}

// --- values --------------------------------------------------------------------------------------
TEST(RefElementwiseLoss, BceWithLogitsMatchesTheNaiveFormula) {
  // Where the naive -w t log(sigmoid(z)) - (1 - t) log(1 - sigmoid(z)) is accurate, the stable
  // form agrees with it.
  const auto pred = random_vector(kRows * kCols, 8, -10.0, 10.0);
  const auto target = random_vector(kRows * kCols, 9, 0.0, 1.0);
  const auto weight = random_vector(kCols, 10, 0.2, 5.0);
  std::vector<double> loss(pred.size());
  logits_fn (&weight)(pred, target, kRows, kCols, loss.data(), nullptr);
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const double s = 1.0 / (1.0 + std::exp(-pred[i]));
    const double w = weight[i % kCols];
    const double naive = -w * target[i] * std::log(s) - (1.0 - target[i]) * std::log(1.0 - s);
    EXPECT_NEAR(loss[i], naive, 1e-9 * (1.0 + naive)) << i;
  }
}

TEST(RefElementwiseLoss, BceWithLogitsIsFiniteForHugeLogits) {
  const std::vector<double> pred = {1e4, 1e4, -1e4, -1e4, 1e30, -1e30};
  const std::vector<double> target = {0.0, 1.0, 0.0, 1.0, 0.5, 0.5};
  std::vector<double> loss(6), grad(6);
  logits_fn(nullptr)(pred, target, 1, 6, loss.data(), grad.data());
  EXPECT_DOUBLE_EQ(loss[0], 1e4);  // confidently wrong: the logit itself
  EXPECT_DOUBLE_EQ(loss[1], 0.0);  // confidently right
  EXPECT_DOUBLE_EQ(loss[2], 0.0);
  EXPECT_DOUBLE_EQ(loss[3], 1e4);
  EXPECT_DOUBLE_EQ(grad[0], 1.0);
  EXPECT_DOUBLE_EQ(grad[1], 0.0);
  EXPECT_DOUBLE_EQ(grad[2], 0.0);
  EXPECT_DOUBLE_EQ(grad[3], -1.0);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(std::isfinite(loss[i])) << i;
    EXPECT_TRUE(std::isfinite(grad[i])) << i;
  }
}

TEST(RefElementwiseLoss, BceClampsAndPassesNoGradientWhereClamped) {
  const double eps = 1e-7;
  const std::vector<double> pred = {0.0, 1.0, -0.5, 1.5, eps, 1.0 - eps, 0.5};
  const std::vector<double> target = {1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0};
  std::vector<double> loss(7), grad(7);
  bce_fn(eps)(pred, target, 1, 7, loss.data(), grad.data());
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(loss[i], -std::log(eps), 1e-9) << i;
    EXPECT_EQ(grad[i], 0.0) << i;
  }
  // At the clamp bounds themselves the gradient passes (tf.clip_by_value's convention).
  EXPECT_NEAR(grad[4], -1.0 / eps, 1e-3);
  EXPECT_NEAR(grad[5], 1.0 / eps, 1e-1);
  EXPECT_NEAR(loss[6], std::log(2.0), 1e-15);
  EXPECT_DOUBLE_EQ(grad[6], -2.0);
}

TEST(RefElementwiseLoss, RegressionLossesAtTheirKinks) {
  const std::vector<double> pred = {0.5, 1.0, -1.0, 3.0, -3.0};
  const std::vector<double> target = {0.5, 0.0, 0.0, 0.0, 0.0};
  std::vector<double> loss(5), grad(5);
  mae_fn()(pred, target, 1, 5, loss.data(), grad.data());
  EXPECT_EQ(loss[0], 0.0);
  EXPECT_EQ(grad[0], 0.0);  // sign(0) = 0
  EXPECT_EQ(grad[3], 1.0);
  EXPECT_EQ(grad[4], -1.0);
  huber_fn(1.0)(pred, target, 1, 5, loss.data(), grad.data());
  EXPECT_EQ(loss[1], 0.5);  // |d| = delta: both branches agree
  EXPECT_EQ(grad[1], 1.0);
  EXPECT_EQ(grad[2], -1.0);
  EXPECT_EQ(loss[3], 2.5);  // delta (|d| - delta / 2)
  EXPECT_EQ(grad[3], 1.0);
  EXPECT_EQ(grad[4], -1.0);
  mse_fn()(pred, target, 1, 5, loss.data(), grad.data());
  EXPECT_EQ(loss[3], 9.0);
  EXPECT_EQ(grad[4], -6.0);
}

TEST(RefElementwiseLoss, NanAndInfinitiesPropagate) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> pred = {nan, 0.5, inf};
  const std::vector<double> target = {0.5, nan, 0.0};
  std::vector<double> loss(3), grad(3);
  for (const LossFn& fn : {logits_fn(nullptr), bce_fn(1e-7), mse_fn(), mae_fn(), huber_fn(1.0)}) {
    fn(pred, target, 1, 3, loss.data(), grad.data());
    EXPECT_TRUE(std::isnan(loss[0]));
    EXPECT_TRUE(std::isnan(grad[0]));
    EXPECT_TRUE(std::isnan(loss[1]));
    EXPECT_TRUE(std::isnan(grad[1]));
  }
  mse_fn()(pred, target, 1, 3, loss.data(), grad.data());
  EXPECT_EQ(loss[2], inf);
  EXPECT_EQ(grad[2], inf);
  huber_fn(1.0)(pred, target, 1, 3, loss.data(), grad.data());
  EXPECT_EQ(loss[2], inf);
  EXPECT_EQ(grad[2], 1.0);
  bce_fn(1e-7)(pred, target, 1, 3, loss.data(), grad.data());
  EXPECT_NEAR(loss[2], -std::log(1e-7), 1e-9);  // clamped, as Keras's
  EXPECT_EQ(grad[2], 0.0);
}

TEST(RefElementwiseLoss, StridesAreHonoured) {
  const float pred[] = {1.0f, 2.0f, 99.0f, 3.0f, 5.0f, 99.0f};
  const float target[] = {0.0f, 0.0f, 0.0f, 1.0f};
  float loss[6] = {-7, -7, -7, -7, -7, -7};
  float grad[6] = {-7, -7, -7, -7, -7, -7};
  ref::mse_loss(MatrixView<const float>(pred, 2, 2, 3), MatrixView<const float>(target, 2, 2, 2),
                MatrixView<float>(loss, 2, 2, 3), MatrixView<float>(grad, 2, 2, 3));
  EXPECT_EQ(loss[0], 1.0f);
  EXPECT_EQ(loss[1], 4.0f);
  EXPECT_EQ(loss[2], -7.0f);
  EXPECT_EQ(loss[3], 9.0f);
  EXPECT_EQ(loss[4], 16.0f);
  EXPECT_EQ(grad[4], 8.0f);
  EXPECT_EQ(grad[5], -7.0f);
}

// --- reductions and Keras ------------------------------------------------------------------------
TEST(RefElementwiseLoss, ReductionsFollowTheirDefinitions) {
  const std::vector<double> loss = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0};  // 2 x 3
  const ref::LossReductions r = ref::reduce_losses(MatrixView<const double>(loss.data(), 2, 3, 3));
  EXPECT_DOUBLE_EQ(r.sum, 21.0);
  EXPECT_DOUBLE_EQ(r.mean, 3.5);
  ASSERT_EQ(r.per_sample.size(), 2u);
  EXPECT_DOUBLE_EQ(r.per_sample[0], 2.0);
  EXPECT_DOUBLE_EQ(r.per_sample[1], 5.0);
  EXPECT_DOUBLE_EQ(r.per_sample_sum, 7.0);
  EXPECT_DOUBLE_EQ(r.mean_weight, 1.0 / 6.0);
  EXPECT_DOUBLE_EQ(r.per_sample_weight, 1.0 / 3.0);
  // A mean over nothing is 0.
  const ref::LossReductions empty_rows =
      ref::reduce_losses(MatrixView<const double>(nullptr, 0, 3));
  EXPECT_EQ(empty_rows.mean, 0.0);
  EXPECT_EQ(empty_rows.sum, 0.0);
  EXPECT_TRUE(empty_rows.per_sample.empty());
  const ref::LossReductions empty_cols =
      ref::reduce_losses(MatrixView<const double>(nullptr, 2, 0));
  EXPECT_EQ(empty_cols.mean, 0.0);
  EXPECT_EQ(empty_cols.per_sample_sum, 0.0);
  EXPECT_EQ(empty_cols.per_sample, (std::vector<double>{0.0, 0.0}));
}

TEST(RefElementwiseLoss, KerasBinaryCrossEntropyExample) {
  // keras.losses.binary_crossentropy documentation: y_true [[0, 1], [0, 0]],
  // y_pred [[0.6, 0.4], [0.4, 0.6]].
  const std::vector<double> y_true = {0.0, 1.0, 0.0, 0.0};
  const std::vector<double> y_pred = {0.6, 0.4, 0.4, 0.6};
  std::vector<double> loss(4);
  bce_fn(1e-7)(y_pred, y_true, 2, 2, loss.data(), nullptr);
  const ref::LossReductions r = ref::reduce_losses(MatrixView<const double>(loss.data(), 2, 2, 2));
  const auto three_decimals = [](double v) { return std::round(v * 1000.0) / 1000.0; };
  EXPECT_DOUBLE_EQ(three_decimals(r.mean), 0.815);
  EXPECT_DOUBLE_EQ(three_decimals(r.per_sample_sum), 1.630);
  EXPECT_DOUBLE_EQ(three_decimals(r.per_sample[0]), 0.916);
  EXPECT_DOUBLE_EQ(three_decimals(r.per_sample[1]), 0.714);
}

}  // namespace
