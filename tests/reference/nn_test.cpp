// warpfuse::ref nn_cpu — the float kernels of the trainer's CPU backend: every activation's and
// loss's gradient against central differences of its forward, the GEMM wrapper against loops,
// and the optimizer rules against Keras' update written out by hand.
#include <gtest/gtest.h>

#include <cuda_bf16.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
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

// Products above the split threshold (2 M multiply-adds) run as slabs of C on the pool's threads:
// each slab must see the right rows or columns of A, B and C for every transpose, split along
// columns (n >= m) and along rows (m > n), with slab edges off multiples of 16.
TEST(NnCpu, SplitSgemmMatchesLoopsForEveryTransposeAndSide) {
  struct Shape {
    int m, n, k;
  };
  for (const Shape s : {Shape{70, 181, 170}, Shape{181, 70, 170}}) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        const int lda = (ta ? s.m : s.k) + 1, ldb = (tb ? s.k : s.n) + 2, ldc = s.n + 3;
        const auto a = random_values(static_cast<std::size_t>(ta ? s.k : s.m) * lda, 31);
        const auto b = random_values(static_cast<std::size_t>(tb ? s.n : s.k) * ldb, 32);
        auto c = random_values(static_cast<std::size_t>(s.m) * ldc, 33);
        const auto before = c;
        sgemm(ta, tb, s.m, s.n, s.k, 1.5f, a.data(), lda, b.data(), ldb, -0.5f, c.data(), ldc);
        for (int i = 0; i < s.m; ++i) {
          for (int j = 0; j < ldc; ++j) {
            if (j >= s.n) {
              ASSERT_EQ(c[i * ldc + j], before[i * ldc + j]) << "stride slack written";
              continue;
            }
            double sum = 0.0;
            for (int p = 0; p < s.k; ++p) {
              sum += static_cast<double>(ta ? a[p * lda + i] : a[i * lda + p]) *
                     (tb ? b[j * ldb + p] : b[p * ldb + j]);
            }
            ASSERT_NEAR(c[i * ldc + j], 1.5 * sum - 0.5 * before[i * ldc + j], 2e-3)
                << s.m << "x" << s.n << "x" << s.k << " trans " << ta << tb << " at " << i << ","
                << j;
          }
        }
      }
    }
  }
}

// bf16 GEMMs: both paths (AMX tiles where the CPU has them, the rounded-copies + CBLAS path)
// against double sums of the bf16-rounded operands, for every transpose, strides wider than the
// rows, shapes off every block size (tiles are 16 x 32, blocks 32 x 32), alpha and beta.
float bf16_round(float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}

void check_sgemm_bf16(bool use_amx, int m, int n, int k, float alpha, float beta) {
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      const int a_rows = ta ? k : m, a_cols = ta ? m : k, lda = a_cols + 3;
      const int b_rows = tb ? n : k, b_cols = tb ? k : n, ldb = b_cols + 5;
      const int ldc = n + 2;
      const auto a = random_values(static_cast<std::size_t>(a_rows) * lda, 11 + m + k);
      const auto b = random_values(static_cast<std::size_t>(b_rows) * ldb, 13 + n + k);
      auto c = random_values(static_cast<std::size_t>(m) * ldc, 17);
      const auto c_before = c;
      // beta 0 must not read C: poison it.
      if (beta == 0.0f) std::fill(c.begin(), c.end(), std::nanf(""));
      sgemm_bf16(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc,
                 use_amx);
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          double sum = 0.0, magnitude = 0.0;
          for (int p = 0; p < k; ++p) {
            const double av = bf16_round(ta ? a[p * lda + i] : a[i * lda + p]);
            const double bv = bf16_round(tb ? b[j * ldb + p] : b[p * ldb + j]);
            sum += av * bv;
            magnitude += std::fabs(av * bv);
          }
          const double want = alpha * sum + (beta == 0.0f ? 0.0 : beta * c_before[i * ldc + j]);
          // fp32 sums of exact products: k roundings of at most 2^-24 of the running magnitude.
          const double tolerance = (k + 2) * 0x1p-24 * (std::fabs(alpha) * magnitude + 4.0) + 1e-30;
          ASSERT_NEAR(c[i * ldc + j], want, tolerance)
              << "amx " << use_amx << " trans " << ta << tb << " " << m << "x" << n << "x" << k
              << " at " << i << "," << j;
        }
        // Columns past n (the stride's slack) are untouched.
        for (int j = n; j < ldc; ++j) {
          if (beta != 0.0f) {
            ASSERT_EQ(c[i * ldc + j], c_before[i * ldc + j]);
          }
        }
      }
    }
  }
}

TEST(NnCpu, SgemmBf16MatchesRoundedDoubleSumsOnBothPaths) {
  struct Shape {
    int m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1},    {5, 7, 3},     {16, 16, 32},  {32, 32, 64},
                          {33, 47, 65}, {64, 10, 128}, {70, 129, 31}, {10, 64, 257}};
  for (const bool use_amx : {true, false}) {
    for (const Shape& s : shapes) {
      check_sgemm_bf16(use_amx, s.m, s.n, s.k, 1.0f, 0.0f);
    }
    check_sgemm_bf16(use_amx, 33, 47, 65, -0.5f, 0.75f);
  }
}

TEST(NnCpu, SgemmBf16RoundsItsInputsAndKeepsNan) {
  for (const bool use_amx : {true, false}) {
    // 1 + 2^-9 is not a bf16 (8 fraction bits): it rounds to 1 (nearest even), 1 + 3 * 2^-9 up.
    const float a[2] = {1.0f + 0x1p-9f, 1.0f + 3 * 0x1p-9f};
    const float b[2] = {3.0f, 3.0f};
    float c[2] = {0.0f, 0.0f};
    sgemm_bf16(false, false, 2, 1, 1, 1.0f, a, 1, b, 1, 0.0f, c, 1, use_amx);
    EXPECT_EQ(c[0], 3.0f) << use_amx;
    EXPECT_EQ(c[1], 3.0f * (1.0f + 0x1p-7f)) << use_amx;
    // A NaN in row 0 of A makes row 0 of C NaN and leaves row 1 finite.
    std::vector<float> x = random_values(2 * 40, 5), w = random_values(40 * 3, 6);
    x[7] = std::nanf("");
    std::vector<float> out(2 * 3, 0.0f);
    sgemm_bf16(false, false, 2, 3, 40, 1.0f, x.data(), 40, w.data(), 3, 0.0f, out.data(), 3,
               use_amx);
    for (int j = 0; j < 3; ++j) {
      EXPECT_TRUE(std::isnan(out[j])) << use_amx;
      EXPECT_TRUE(std::isfinite(out[3 + j])) << use_amx;
    }
  }
}

TEST(NnCpu, AmxIsUsedWhereTheCpuReportsIt) {
  // The detection must find AMX on a CPU whose flags list it (unless turned off): otherwise the
  // bf16 path silently runs the slow portable code.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  bool listed = false;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {
      listed = line.find(" amx_bf16") != std::string::npos &&
               line.find(" amx_tile") != std::string::npos &&
               line.find(" avx512_bf16") != std::string::npos;
      break;
    }
  }
  const char* env = std::getenv("WARPFUSE_CPU_AMX");
  if (env != nullptr && std::string(env) == "0") listed = false;
  EXPECT_EQ(cpu_has_amx_bf16(), listed);
}

TEST(NnCpu, SgemmWithBf16PrecisionIsSgemmBf16) {
  const auto a = random_values(9 * 40, 21), b = random_values(40 * 11, 22);
  std::vector<float> c1(9 * 11), c2(9 * 11);
  sgemm(false, false, 9, 11, 40, 1.0f, a.data(), 40, b.data(), 11, 0.0f, c1.data(), 11,
        nn::MatmulPrecision::bf16);
  sgemm_bf16(false, false, 9, 11, 40, 1.0f, a.data(), 40, b.data(), 11, 0.0f, c2.data(), 11);
  EXPECT_EQ(c1, c2);
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
