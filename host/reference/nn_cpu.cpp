// warpfuse::ref — float kernels of the trainer's CPU backend. See warpfuse/ref/nn_cpu.h.
#include "warpfuse/ref/nn_cpu.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace warpfuse::ref {
namespace {

constexpr float kClip = 1e-7f;  // Keras' backend epsilon, for losses on probabilities

float sigmoid(float x) {
  // Never forms inf / inf: e^-|x| is at most 1.
  const float e = std::exp(-std::fabs(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

// log(1 + e^x) without overflow.
float softplus(float x) {
  return std::max(x, 0.0f) + std::log1p(std::exp(-std::fabs(x)));
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
}

void set_blas_threads(int threads) {
  openblas_set_num_threads(threads < 1 ? 1 : threads);
}

void nn_add_bias(float* z, std::int64_t rows, std::int64_t cols, const float* bias) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = z + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) row[c] += bias[c];
  }
}

void nn_column_sums(const float* x, std::int64_t rows, std::int64_t cols, float* sums) {
  std::fill(sums, sums + cols, 0.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) sums[c] += row[c];
  }
}

double nn_loss(const nn::Loss& loss, bool logits, const float* input, const float* y,
               std::int64_t rows, std::int64_t cols, float* grad) {
  using nn::LossKind;
  double total = 0.0;
  const float inv_rows = 1.0f / static_cast<float>(rows);
  const float inv_elems = inv_rows / static_cast<float>(cols);
  switch (loss.kind) {
    case LossKind::mean_squared_error:
    case LossKind::mean_absolute_error:
    case LossKind::huber:
      for (std::int64_t r = 0; r < rows; ++r) {
        double row_sum = 0.0;
        for (std::int64_t c = 0; c < cols; ++c) {
          const std::int64_t i = r * cols + c;
          const float e = input[i] - y[i];
          float value = 0.0f;
          float slope = 0.0f;
          if (loss.kind == LossKind::mean_squared_error) {
            value = e * e;
            slope = 2.0f * e;
          } else if (loss.kind == LossKind::mean_absolute_error) {
            value = std::fabs(e);
            slope = e > 0.0f ? 1.0f : (e < 0.0f ? -1.0f : 0.0f);
          } else if (std::fabs(e) <= loss.delta) {
            value = 0.5f * e * e;
            slope = e;
          } else {
            value = loss.delta * (std::fabs(e) - 0.5f * loss.delta);
            slope = e > 0.0f ? loss.delta : -loss.delta;
          }
          row_sum += value;
          if (grad != nullptr) grad[i] = slope * inv_elems;
        }
        total += row_sum / static_cast<double>(cols);
      }
      return total;
    case LossKind::binary_crossentropy:
      for (std::int64_t r = 0; r < rows; ++r) {
        double row_sum = 0.0;
        for (std::int64_t c = 0; c < cols; ++c) {
          const std::int64_t i = r * cols + c;
          const float t = y[i];
          if (logits) {
            const float x = input[i];
            // -(t log s(x) + (1 - t) log(1 - s(x))) = softplus(x) - t x
            row_sum += softplus(x) - t * x;
            if (grad != nullptr) grad[i] = (sigmoid(x) - t) * inv_elems;
          } else {
            const float p = std::min(std::max(input[i], kClip), 1.0f - kClip);
            row_sum += -(t * std::log(p) + (1.0f - t) * std::log(1.0f - p));
            if (grad != nullptr) {
              const bool clipped = input[i] < kClip || input[i] > 1.0f - kClip;
              grad[i] = clipped ? 0.0f : (p - t) / (p * (1.0f - p)) * inv_elems;
            }
          }
        }
        total += row_sum / static_cast<double>(cols);
      }
      return total;
    case LossKind::categorical_crossentropy:
    case LossKind::sparse_categorical_crossentropy: {
      const bool sparse = loss.kind == LossKind::sparse_categorical_crossentropy;
      for (std::int64_t r = 0; r < rows; ++r) {
        const float* in = input + r * cols;
        float* g = grad != nullptr ? grad + r * cols : nullptr;
        const std::int64_t label = sparse ? static_cast<std::int64_t>(y[r]) : -1;
        auto target = [&](std::int64_t c) {
          return sparse ? (c == label ? 1.0f : 0.0f) : y[r * cols + c];
        };
        if (logits) {
          const float max = *std::max_element(in, in + cols);
          double sum = 0.0;
          for (std::int64_t c = 0; c < cols; ++c) sum += std::exp(static_cast<double>(in[c] - max));
          const float log_sum = static_cast<float>(std::log(sum));
          float target_sum = 0.0f;
          double row_loss = 0.0;
          for (std::int64_t c = 0; c < cols; ++c) {
            const float t = target(c);
            target_sum += t;
            if (t != 0.0f) row_loss -= t * (in[c] - max - log_sum);
          }
          total += row_loss;
          if (g != nullptr) {
            // d/dx of -sum t log softmax(x) = softmax(x) sum(t) - t.
            for (std::int64_t c = 0; c < cols; ++c) {
              const float p = std::exp(in[c] - max - log_sum);
              g[c] = (p * target_sum - target(c)) * inv_rows;
            }
          }
        } else {
          double row_loss = 0.0;
          for (std::int64_t c = 0; c < cols; ++c) {
            const float t = target(c);
            const float p = std::min(std::max(in[c], kClip), 1.0f - kClip);
            if (t != 0.0f) row_loss -= t * std::log(p);
            if (g != nullptr) {
              const bool clipped = in[c] < kClip || in[c] > 1.0f - kClip;
              g[c] = clipped ? 0.0f : -t / p * inv_rows;
            }
          }
          total += row_loss;
        }
      }
      return total;
    }
  }
  return total;
}

}  // namespace warpfuse::ref
