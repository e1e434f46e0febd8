// The softmax reference (include/warpfuse/ref/softmax.h) against the definition: rows sum to 1,
// log_softmax is the log of softmax, and each backward equals central finite differences of
// L(x) = sum(dy * forward(scale * x)).
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "warpfuse/ref/softmax.h"

namespace {

std::vector<double> random_row(std::int64_t n, std::uint64_t seed, double low, double high) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<double> values(static_cast<std::size_t>(n));
  for (auto& v : values) v = dist(rng);
  return values;
}

TEST(RefSoftmax, RowsSumToOneAndLogMatches) {
  const std::int64_t rows = 4, cols = 37;
  const auto x = random_row(rows * cols, 1, -30.0, 30.0);
  std::vector<double> y(x.size()), log_y(x.size());
  warpfuse::ref::softmax(warpfuse::MatrixView<const double>(x.data(), rows, cols, cols),
                         warpfuse::MatrixView<double>(y.data(), rows, cols, cols), 0.7);
  warpfuse::ref::log_softmax(warpfuse::MatrixView<const double>(x.data(), rows, cols, cols),
                             warpfuse::MatrixView<double>(log_y.data(), rows, cols, cols), 0.7);
  for (std::int64_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) {
      sum += y[r * cols + c];
      EXPECT_NEAR(std::log(y[r * cols + c]), log_y[r * cols + c], 1e-9);
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
  }
}

TEST(RefSoftmax, StridesAreHonoured) {
  const double x[] = {1.0, 2.0, 99.0, 3.0, 4.0, 99.0};
  double y[6] = {-7, -7, -7, -7, -7, -7};
  warpfuse::ref::softmax(warpfuse::MatrixView<const double>(x, 2, 2, 3),
                         warpfuse::MatrixView<double>(y, 2, 2, 3), 1.0);
  EXPECT_NEAR(y[0], 1.0 / (1.0 + std::exp(1.0)), 1e-15);
  EXPECT_EQ(y[2], -7.0);
  EXPECT_NEAR(y[4], std::exp(1.0) / (1.0 + std::exp(1.0)), 1e-15);
}

TEST(RefSoftmax, SpecialValues) {
  const double inf = std::numeric_limits<double>::infinity();
  const double x[] = {-inf, -inf, -inf, 1.0, -inf, 1.0, 1.0, std::nan(""), 0.0};
  double y[9], log_y[9];
  warpfuse::ref::softmax(warpfuse::MatrixView<const double>(x, 3, 3, 3),
                         warpfuse::MatrixView<double>(y, 3, 3, 3), 1.0);
  warpfuse::ref::log_softmax(warpfuse::MatrixView<const double>(x, 3, 3, 3),
                             warpfuse::MatrixView<double>(log_y, 3, 3, 3), 1.0);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(y[c], 0.0);
    EXPECT_EQ(log_y[c], -inf);
    EXPECT_TRUE(std::isnan(y[6 + c]));
  }
  EXPECT_EQ(y[4], 0.0);
  EXPECT_EQ(log_y[4], -inf);
  EXPECT_NEAR(y[3], 0.5, 1e-15);
}

template <class Forward, class Backward>
void check_finite_differences(Forward forward, Backward backward, std::uint64_t seed) {
  const std::int64_t rows = 3, cols = 9;
  const double scale = 1.3, h = 1e-6;
  const auto x = random_row(rows * cols, seed, -2.0, 2.0);
  const auto dy = random_row(rows * cols, seed + 1, -1.0, 1.0);
  std::vector<double> y(x.size()), dx(x.size());
  using warpfuse::MatrixView;
  forward(MatrixView<const double>(x.data(), rows, cols), MatrixView<double>(y.data(), rows, cols),
          scale);
  backward(MatrixView<const double>(y.data(), rows, cols),
           MatrixView<const double>(dy.data(), rows, cols),
           MatrixView<double>(dx.data(), rows, cols), scale);
  const auto loss = [&](const std::vector<double>& input) {
    std::vector<double> out(input.size());
    forward(MatrixView<const double>(input.data(), rows, cols),
            MatrixView<double>(out.data(), rows, cols), scale);
    double total = 0.0;
    for (std::size_t i = 0; i < out.size(); ++i) total += dy[i] * out[i];
    return total;
  };
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto plus = x, minus = x;
    plus[i] += h;
    minus[i] -= h;
    const double numeric = (loss(plus) - loss(minus)) / (2 * h);
    EXPECT_NEAR(dx[i], numeric, 1e-7) << "element " << i;
  }
}

TEST(RefSoftmax, BackwardMatchesFiniteDifferences) {
  check_finite_differences(warpfuse::ref::softmax<double>, warpfuse::ref::softmax_backward<double>,
                           10);
  check_finite_differences(warpfuse::ref::log_softmax<double>,
                           warpfuse::ref::log_softmax_backward<double>, 20);
}

TEST(RefSoftmax, ShapeMismatchesAreInvalidArguments) {
  double x[6] = {}, y[6] = {};
  using warpfuse::MatrixView;
  EXPECT_THROW(
      warpfuse::ref::softmax(MatrixView<const double>(x, 2, 3), MatrixView<double>(y, 3, 2)),
      std::invalid_argument);
  EXPECT_THROW(warpfuse::ref::softmax_backward(MatrixView<const double>(x, 2, 3),
                                               MatrixView<const double>(y, 2, 2),
                                               MatrixView<double>(y, 2, 3)),
               std::invalid_argument);
}

}  // namespace
