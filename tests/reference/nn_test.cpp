// warpfuse::ref nn_cpu — the float kernels of the trainer's CPU backend: every activation's and
// loss's gradient against central differences of its forward, the GEMM wrapper against loops,
// and the optimizer rules against Keras' update written out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "warpfuse/ref/nn_cpu.h"

namespace warpfuse::ref {
namespace {

using nn::ActivationKind;

std::vector<float> random_values(std::size_t n, std::uint32_t seed, float lo = -2.0f,
                                 float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(NnCpu, SgemmMatchesLoopsForEveryTranspose) {
  const int m = 5, n = 7, k = 3;
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      const auto a = random_values(m * k, 1);
      const auto b = random_values(k * n, 2);
      std::vector<float> c(m * n, 1.0f);
      sgemm(ta, tb, m, n, k, 2.0f, a.data(), ta ? m : k, b.data(), tb ? k : n, 0.5f, c.data(), n);
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          double sum = 0.0;
          for (int p = 0; p < k; ++p) {
            const float av = ta ? a[p * m + i] : a[i * k + p];
            const float bv = tb ? b[j * k + p] : b[p * n + j];
            sum += static_cast<double>(av) * bv;
          }
          EXPECT_NEAR(c[i * n + j], 2.0 * sum + 0.5, 1e-4) << ta << tb << " at " << i << "," << j;
        }
      }
    }
  }
}

TEST(NnCpu, LossGradientsMatchFiniteDifferences) {
  const int rows = 4, cols = 3;
  struct Case {
    nn::Loss loss;
    bool logits;
  };
  const Case cases[] = {
      {nn::Loss(nn::LossKind::mean_squared_error), false},
      {nn::Loss(nn::LossKind::mean_absolute_error), false},
      {nn::Loss(nn::LossKind::huber, false, 0.5f), false},
      {nn::Loss(nn::LossKind::binary_crossentropy), true},
      {nn::Loss(nn::LossKind::binary_crossentropy), false},
      {nn::Loss(nn::LossKind::categorical_crossentropy), true},
      {nn::Loss(nn::LossKind::categorical_crossentropy), false},
      {nn::Loss(nn::LossKind::sparse_categorical_crossentropy), true},
  };
  for (const Case& c : cases) {
    const bool probabilities = c.loss.is_crossentropy() && !c.logits;
    auto input =
        probabilities ? random_values(rows * cols, 6, 0.1f, 0.9f) : random_values(rows * cols, 6);
    for (float& v : input) {
      if (std::fabs(v) < 0.05f) v = 0.4f;
    }
    std::vector<float> y;
    if (c.loss.kind == nn::LossKind::sparse_categorical_crossentropy) {
      y = {0.0f, 2.0f, 1.0f, 2.0f};
    } else if (c.loss.is_crossentropy()) {
      y = random_values(rows * cols, 7, 0.0f, 1.0f);
    } else {
      y = random_values(rows * cols, 7);
    }
    std::vector<float> grad(rows * cols);
    const double total = nn_loss(c.loss, c.logits, input.data(), y.data(), rows, cols, grad.data());
    EXPECT_TRUE(std::isfinite(total));
    const float h = 1e-3f;
    for (int i = 0; i < rows * cols; ++i) {
      auto plus = input, minus = input;
      plus[i] += h;
      minus[i] -= h;
      const double numeric =
          (nn_loss(c.loss, c.logits, plus.data(), y.data(), rows, cols, nullptr) -
           nn_loss(c.loss, c.logits, minus.data(), y.data(), rows, cols, nullptr)) /
          (2 * h) / rows;
      EXPECT_NEAR(grad[i], numeric, 2e-3 + 2e-3 * std::fabs(numeric))
          << "loss " << static_cast<int>(c.loss.kind) << (c.logits ? " logits" : "") << " element "
          << i;
    }
  }
}

TEST(NnCpu, CrossEntropyOnLogitsIsStableForHugeLogits) {
  const std::vector<float> logits = {1000.0f, -1000.0f, 0.0f};
  const std::vector<float> label = {1.0f};
  std::vector<float> grad(3);
  const nn::Loss sparse(nn::LossKind::sparse_categorical_crossentropy);
  const double loss = nn_loss(sparse, true, logits.data(), label.data(), 1, 3, grad.data());
  EXPECT_NEAR(loss, 2000.0, 1e-3);
  EXPECT_NEAR(grad[0], 1.0f, 1e-6);
  EXPECT_NEAR(grad[1], -1.0f, 1e-6);
}

}  // namespace
}  // namespace warpfuse::ref
