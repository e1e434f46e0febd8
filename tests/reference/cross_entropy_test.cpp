// The cross-entropy reference (include/warpfuse/ref/cross_entropy.h): known values, edge
// semantics, and gradients against central finite differences of each row's loss.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "warpfuse/ref/cross_entropy.h"

namespace {

using warpfuse::MatrixView;
using warpfuse::VectorView;
using warpfuse::ref::CrossEntropyParams;

std::vector<double> draws(std::size_t n, std::uint64_t seed, double low, double high) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(low, high);
  std::vector<double> values(n);
  for (auto& v : values) v = dist(rng);
  return values;
}

TEST(RefCrossEntropy, KnownValues) {
  const double logits[] = {1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0};
  const std::int64_t targets[] = {2};
  double loss = 0.0, lse = 0.0;
  warpfuse::ref::cross_entropy(MatrixView<const double>(logits, 1, 3),
                               VectorView<const std::int64_t>(targets, 1), {},
                               VectorView<double>(&loss, 1), VectorView<double>(&lse, 1));
  EXPECT_NEAR(loss, std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0, 1e-15);
  // Uniform logits: log C, with or without smoothing.
  const std::int64_t target_zero[] = {0};
  CrossEntropyParams smooth;
  smooth.label_smoothing = 0.3;
  warpfuse::ref::cross_entropy(MatrixView<const double>(logits + 3, 1, 4),
                               VectorView<const std::int64_t>(target_zero, 1), smooth,
                               VectorView<double>(&loss, 1), VectorView<double>(&lse, 1));
  EXPECT_NEAR(loss, std::log(4.0), 1e-15);
  EXPECT_NEAR(lse, std::log(4.0), 1e-15);
}

TEST(RefCrossEntropy, IgnoredBadAndMeanDenominator) {
  const auto logits = draws(4 * 3, 1, -1.0, 1.0);
  const std::int64_t targets[] = {0, -100, 3, 2};
  double weight[] = {2.0, 1.0, 0.5};
  CrossEntropyParams params;
  params.weight = weight;
  double loss[4];
  std::vector<double> grad(12, 99.0);
  warpfuse::ref::cross_entropy(
      MatrixView<const double>(logits.data(), 4, 3), VectorView<const std::int64_t>(targets, 4),
      params, VectorView<double>(loss, 4), {}, MatrixView<double>(grad.data(), 4, 3));
  EXPECT_EQ(loss[1], 0.0);
  EXPECT_TRUE(std::isnan(loss[2]));
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(grad[3 + c], 0.0);
    EXPECT_EQ(grad[6 + c], 0.0);
  }
  EXPECT_EQ(warpfuse::ref::cross_entropy_mean_denominator(
                VectorView<const std::int64_t>(targets, 4), 3, params),
            2.0 + 0.5);
}

/// Each row's reference gradient against central differences of that row's loss.
template <class Loss>
void check_gradient(Loss loss_of, const std::vector<double>& logits, std::int64_t rows,
                    std::int64_t classes, const std::vector<double>& grad) {
  const double h = 1e-6;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    auto plus = logits, minus = logits;
    plus[i] += h;
    minus[i] -= h;
    const std::int64_t row = static_cast<std::int64_t>(i) / classes;
    const double numeric = (loss_of(plus)[row] - loss_of(minus)[row]) / (2 * h);
    EXPECT_NEAR(grad[i], numeric, 1e-6) << "element " << i;
  }
  static_cast<void>(rows);
}

TEST(RefCrossEntropy, IndexGradientsMatchFiniteDifferences) {
  const std::int64_t rows = 3, classes = 6;
  const auto logits = draws(rows * classes, 2, -2.0, 2.0);
  const std::int64_t targets[] = {5, 0, 2};
  const auto weight = draws(classes, 3, 0.5, 2.0);
  CrossEntropyParams params;
  params.label_smoothing = 0.15;
  params.z_loss = 0.01;
  params.weight = weight.data();
  const auto loss_of = [&](const std::vector<double>& z) {
    std::vector<double> loss(rows);
    warpfuse::ref::cross_entropy(MatrixView<const double>(z.data(), rows, classes),
                                 VectorView<const std::int64_t>(targets, rows), params,
                                 VectorView<double>(loss.data(), rows));
    return loss;
  };
  std::vector<double> loss(rows), grad(logits.size());
  warpfuse::ref::cross_entropy(MatrixView<const double>(logits.data(), rows, classes),
                               VectorView<const std::int64_t>(targets, rows), params,
                               VectorView<double>(loss.data(), rows), {},
                               MatrixView<double>(grad.data(), rows, classes));
  check_gradient(loss_of, logits, rows, classes, grad);
}

TEST(RefCrossEntropy, ProbabilityGradientsMatchFiniteDifferences) {
  const std::int64_t rows = 2, classes = 5;
  const auto logits = draws(rows * classes, 4, -2.0, 2.0);
  auto probs = draws(rows * classes, 5, 0.0, 1.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    double total = 0.0;
    for (std::int64_t c = 0; c < classes; ++c) total += probs[r * classes + c];
    for (std::int64_t c = 0; c < classes; ++c) probs[r * classes + c] /= total;
  }
  CrossEntropyParams params;
  params.label_smoothing = 0.1;
  params.z_loss = 0.02;
  const auto loss_of = [&](const std::vector<double>& z) {
    std::vector<double> loss(rows);
    warpfuse::ref::cross_entropy(MatrixView<const double>(z.data(), rows, classes),
                                 MatrixView<const double>(probs.data(), rows, classes), params,
                                 VectorView<double>(loss.data(), rows));
    return loss;
  };
  std::vector<double> loss(rows), grad(logits.size());
  warpfuse::ref::cross_entropy(MatrixView<const double>(logits.data(), rows, classes),
                               MatrixView<const double>(probs.data(), rows, classes), params,
                               VectorView<double>(loss.data(), rows), {},
                               MatrixView<double>(grad.data(), rows, classes));
  check_gradient(loss_of, logits, rows, classes, grad);
}

/// Softcap and scale: the gradient (with respect to the raw logits) against finite differences,
/// and z' itself against its definition at a few points.
TEST(RefCrossEntropy, SoftcapGradientsMatchFiniteDifferences) {
  const std::int64_t rows = 3, classes = 7;
  const auto logits = draws(rows * classes, 6, -40.0, 40.0);  // past the cap: tanh saturates
  const std::int64_t targets[] = {6, 0, 3};
  CrossEntropyParams params;
  params.label_smoothing = 0.1;
  params.z_loss = 0.001;
  params.logit_softcap = 15.0;
  params.logit_scale = 0.7;
  EXPECT_NEAR(warpfuse::ref::cross_entropy_logit(30.0, params), 15.0 * std::tanh(1.4), 1e-14);
  EXPECT_NEAR(warpfuse::ref::cross_entropy_logit_slope(30.0, params),
              0.7 * (1.0 - std::tanh(1.4) * std::tanh(1.4)), 1e-15);
  CrossEntropyParams scale_only;
  scale_only.logit_scale = 0.25;
  EXPECT_EQ(warpfuse::ref::cross_entropy_logit(8.0, scale_only), 2.0);
  for (const CrossEntropyParams& p : {params, scale_only}) {
    const auto loss_of = [&](const std::vector<double>& z) {
      std::vector<double> loss(rows);
      warpfuse::ref::cross_entropy(MatrixView<const double>(z.data(), rows, classes),
                                   VectorView<const std::int64_t>(targets, rows), p,
                                   VectorView<double>(loss.data(), rows));
      return loss;
    };
    std::vector<double> loss(rows), grad(logits.size());
    warpfuse::ref::cross_entropy(MatrixView<const double>(logits.data(), rows, classes),
                                 VectorView<const std::int64_t>(targets, rows), p,
                                 VectorView<double>(loss.data(), rows), {},
                                 MatrixView<double>(grad.data(), rows, classes));
    check_gradient(loss_of, logits, rows, classes, grad);
  }
}

/// The extra per-row outputs: z-loss term, argmax == target with the first-maximum rule on ties,
/// entropy against its closed form (uniform: log C; one-hot-like: ~0).
TEST(RefCrossEntropy, ExtraRowOutputs) {
  // Row 0: tie at classes 1 and 3, target 1 (the first maximum): correct. Row 1: the same tie,
  // target 3: not correct. Row 2: uniform, target 0 (ties everywhere: 0 is first). Row 3: ignored.
  const double logits[] = {0.5, 2.0, -1.0, 2.0, 0.5, 2.0, -1.0, 2.0,
                           0.0, 0.0, 0.0,  0.0, 1.0, 2.0, 3.0,  4.0};
  const std::int64_t targets[] = {1, 3, 0, -100};
  CrossEntropyParams params;
  params.z_loss = 0.5;
  double loss[4], lse[4], z_term[4], correct[4], entropy[4];
  warpfuse::ref::CrossEntropyRowExtras extras{VectorView<double>(z_term, 4),
                                              VectorView<double>(correct, 4),
                                              VectorView<double>(entropy, 4)};
  warpfuse::ref::cross_entropy(MatrixView<const double>(logits, 4, 4),
                               VectorView<const std::int64_t>(targets, 4), params,
                               VectorView<double>(loss, 4), VectorView<double>(lse, 4), {}, extras);
  EXPECT_EQ(correct[0], 1.0);
  EXPECT_EQ(correct[1], 0.0);
  EXPECT_EQ(correct[2], 1.0);
  EXPECT_EQ(correct[3], 0.0);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(z_term[i], 0.5 * lse[i] * lse[i], 1e-14);
  EXPECT_EQ(z_term[3], 0.0);
  EXPECT_NEAR(entropy[2], std::log(4.0), 1e-14);
  double expected = 0.0;  // row 3 by the definition
  for (int c = 0; c < 4; ++c) {
    const double p = std::exp(logits[12 + c] - lse[3]);
    expected -= p * std::log(p);
  }
  EXPECT_NEAR(entropy[3], expected, 1e-14);
  // Probability targets refuse `correct`.
  EXPECT_THROW(warpfuse::ref::cross_entropy(MatrixView<const double>(logits, 4, 4),
                                            MatrixView<const double>(logits, 4, 4), params,
                                            VectorView<double>(loss, 4), {}, {}, extras),
               std::invalid_argument);
}

/// The reference's vocabulary-parallel pieces: 1, 2, 3 and 5 uneven shards reproduce the whole
/// row's loss, lse, z-loss term, entropy and gradient to double rounding.
TEST(RefCrossEntropy, ShardsMatchTheWholeRow) {
  const std::int64_t rows = 5, vocab = 11;
  const auto logits = draws(rows * vocab, 8, -3.0, 3.0);
  const auto weight = draws(vocab, 9, 0.5, 2.0);
  const std::int64_t targets[] = {0, 10, -100, 4, 7};
  CrossEntropyParams params;
  params.label_smoothing = 0.2;
  params.z_loss = 0.01;
  params.weight = weight.data();
  params.logit_softcap = 2.0;
  params.logit_scale = 1.5;
  const VectorView<const std::int64_t> target_view(targets, rows);
  std::vector<double> loss(rows), lse(rows), z_term(rows), entropy(rows), grad(rows * vocab);
  warpfuse::ref::cross_entropy(
      MatrixView<const double>(logits.data(), rows, vocab), target_view, params,
      VectorView<double>(loss.data(), rows), VectorView<double>(lse.data(), rows),
      MatrixView<double>(grad.data(), rows, vocab),
      {VectorView<double>(z_term.data(), rows), {}, VectorView<double>(entropy.data(), rows)});
  for (const std::vector<std::int64_t>& points : std::vector<std::vector<std::int64_t>>{
           {0, 11}, {0, 4, 11}, {0, 1, 9, 11}, {0, 2, 3, 7, 8, 11}}) {
    const auto shards = static_cast<std::int64_t>(points.size()) - 1;
    std::vector<double> gathered(shards * rows * 8);
    for (std::int64_t s = 0; s < shards; ++s) {
      CrossEntropyParams shard = params;
      shard.weight = weight.data() + points[s];
      warpfuse::ref::cross_entropy_shard_stats(
          MatrixView<const double>(logits.data() + points[s], rows, points[s + 1] - points[s],
                                   vocab),
          target_view, points[s], shard,
          MatrixView<double>(gathered.data() + s * rows * 8, rows, 8));
    }
    std::vector<double> combined(rows * 8);
    warpfuse::ref::cross_entropy_shard_combine(
        MatrixView<const double>(gathered.data(), shards * rows, 8), shards,
        MatrixView<double>(combined.data(), rows, 8));
    for (std::int64_t s = 0; s < shards; ++s) {
      CrossEntropyParams shard = params;
      shard.weight = weight.data() + points[s];
      const std::int64_t cols = points[s + 1] - points[s];
      std::vector<double> s_loss(rows), s_lse(rows), s_z(rows), s_entropy(rows),
          s_grad(rows * cols);
      warpfuse::ref::cross_entropy_shard_finish(
          MatrixView<const double>(logits.data() + points[s], rows, cols, vocab), target_view,
          points[s], vocab, MatrixView<const double>(combined.data(), rows, 8), shard,
          VectorView<double>(s_loss.data(), rows), VectorView<double>(s_lse.data(), rows),
          MatrixView<double>(s_grad.data(), rows, cols),
          {VectorView<double>(s_z.data(), rows), {}, VectorView<double>(s_entropy.data(), rows)});
      for (std::int64_t r = 0; r < rows; ++r) {
        EXPECT_NEAR(s_loss[r], loss[r], 1e-12) << "row " << r << " of " << shards << " shards";
        EXPECT_NEAR(s_lse[r], lse[r], 1e-12);
        EXPECT_NEAR(s_z[r], z_term[r], 1e-12);
        EXPECT_NEAR(s_entropy[r], entropy[r], 1e-12);
        for (std::int64_t k = 0; k < cols; ++k) {
          EXPECT_NEAR(s_grad[r * cols + k], grad[r * vocab + points[s] + k], 1e-12);
        }
      }
    }
  }
}

TEST(RefCrossEntropy, InfinityAtTheTarget) {
  const double inf = std::numeric_limits<double>::infinity();
  const double logits[] = {-inf, 0.0, 1.0, 2.0, -inf, 1.0};
  const std::int64_t targets[] = {0, 0};
  double loss[2];
  warpfuse::ref::cross_entropy(MatrixView<const double>(logits, 2, 3),
                               VectorView<const std::int64_t>(targets, 2), {},
                               VectorView<double>(loss, 2));
  EXPECT_EQ(loss[0], inf);
  EXPECT_NEAR(loss[1], std::log(std::exp(2.0) + std::exp(1.0)) - 2.0, 1e-15);
}

}  // namespace
