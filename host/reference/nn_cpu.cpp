// warpfuse::ref — float kernels of the trainer's CPU backend. See warpfuse/ref/nn_cpu.h.
#include "warpfuse/ref/nn_cpu.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cmath>
#include <vector>

#include "host/reference/thread_pool.h"
#include "warpfuse/ref/cross_entropy.h"
#include "warpfuse/ref/elementwise_loss.h"
#include "warpfuse/view_types.h"

namespace warpfuse::ref {
namespace {

constexpr float kClip = 1e-7f;  // Keras' backend epsilon, for losses on probabilities

}  // namespace

namespace {

/// GEMMs of at least this many multiply-adds are split over the pool's threads; smaller ones run on
/// the caller (a product of a few microseconds gains nothing from a hand-off).
constexpr double kThreadedGemmMultiplyAdds = 2.0 * 1024 * 1024;

/// OpenBLAS runs single-threaded: the products are split over the pool instead, so one set of
/// threads serves the GEMMs and the work between them (OpenBLAS's own workers spin after each call
/// and fought the pool's for the cores). The pool reads OpenBLAS's thread count first.
void single_threaded_blas() {
  static std::once_flag once;
  std::call_once(once, [] {
    static_cast<void>(detail::parallel_threads());
    openblas_set_num_threads(1);
  });
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc, nn::MatmulPrecision precision) {
  if (m == 0 || n == 0) return;
  if (precision == nn::MatmulPrecision::bf16) {
    sgemm_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  single_threaded_blas();
  const auto product = [&](std::int64_t rows, std::int64_t cols, const float* a_part,
                           const float* b_part, float* c_part) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols),
                static_cast<int>(k), alpha, a_part, static_cast<int>(lda), b_part,
                static_cast<int>(ldb), beta, c_part, static_cast<int>(ldc));
  };
  const double multiply_adds =
      static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int threads = multiply_adds >= kThreadedGemmMultiplyAdds ? detail::parallel_threads() : 1;
  if (threads <= 1) {
    product(m, n, a, b, c);
    return;
  }
  // Split C along its longer side into `threads` slabs, boundaries on multiples of 16 (whole
  // register blocks of the kernel); each slab is one single-threaded product.
  const bool split_columns = n >= m;
  const std::int64_t length = split_columns ? n : m;
  const auto boundary = [&](int part) {
    return std::min(length, (length * part / threads + 15) / 16 * 16);
  };
  detail::parallel_for(threads, [&](int part) {
    const std::int64_t first = part == 0 ? 0 : boundary(part);
    const std::int64_t last = part + 1 == threads ? length : boundary(part + 1);
    if (last <= first) return;
    if (split_columns) {
      product(m, last - first, a, trans_b ? b + first * ldb : b + first, c + first);
    } else {
      product(last - first, n, trans_a ? a + first : a + first * lda, b, c + first * ldc);
    }
  });
}

void set_blas_threads(int threads) {
  detail::set_parallel_threads(threads < 1 ? 1 : threads);
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

namespace {

/// Scratch of the loss that grows and is kept, so a training step allocates nothing.
template <class T>
T* scratch(std::vector<T>& buffer, std::int64_t n) {
  if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
  return buffer.data();
}

}  // namespace

double nn_loss(const nn::Loss& loss, bool logits, const float* input, const float* y,
               std::int64_t rows, std::int64_t cols, float* grad) {
  using nn::LossKind;
  thread_local std::vector<float> element_loss;
  thread_local std::vector<double> wide_logits, wide_targets, row_loss, row_grad;
  thread_local std::vector<std::int64_t> labels;
  const MatrixView<const float> pred(input, rows, cols, cols);
  const bool crossentropy = loss.kind == LossKind::categorical_crossentropy ||
                            loss.kind == LossKind::sparse_categorical_crossentropy;
  if (!crossentropy) {
    // The elementwise losses of warpfuse::ref (the ops' oracle), per element; Keras' per-sample
    // loss is the mean over the columns, and the gradient is that of the batch mean.
    const MatrixView<const float> target(y, rows, cols, cols);
    const MatrixView<float> values(scratch(element_loss, rows * cols), rows, cols, cols);
    const MatrixView<float> slopes =
        grad != nullptr ? MatrixView<float>(grad, rows, cols, cols) : MatrixView<float>();
    switch (loss.kind) {
      case LossKind::mean_squared_error:
        mse_loss<float>(pred, target, values, slopes);
        break;
      case LossKind::mean_absolute_error:
        mae_loss<float>(pred, target, values, slopes);
        break;
      case LossKind::huber:
        huber_loss<float>(pred, target, loss.delta, values, slopes);
        break;
      default:  // binary_crossentropy
        if (logits) {
          binary_cross_entropy_with_logits<float>(pred, target, VectorView<const float>(), values,
                                                  slopes);
        } else {
          binary_cross_entropy<float>(pred, target, kClip, values, slopes);
        }
    }
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
      double row_sum = 0.0;
      for (std::int64_t c = 0; c < cols; ++c) row_sum += values.data[r * cols + c];
      total += row_sum / static_cast<double>(cols);
    }
    if (grad != nullptr) {
      const float mean_weight = 1.0f / static_cast<float>(rows * cols);
      for (std::int64_t i = 0; i < rows * cols; ++i) grad[i] *= mean_weight;
    }
    return total;
  }
  const bool sparse = loss.kind == LossKind::sparse_categorical_crossentropy;
  if (logits) {
    // warpfuse::ref::cross_entropy (the fused op's oracle) on the logits widened to double.
    double* x = scratch(wide_logits, rows * cols);
    for (std::int64_t i = 0; i < rows * cols; ++i) x[i] = input[i];
    const MatrixView<const double> logit_view(x, rows, cols, cols);
    const VectorView<double> per_row(scratch(row_loss, rows), rows);
    const MatrixView<double> per_row_grad =
        grad != nullptr ? MatrixView<double>(scratch(row_grad, rows * cols), rows, cols, cols)
                        : MatrixView<double>();
    if (sparse) {
      std::int64_t* t = scratch(labels, rows);
      for (std::int64_t r = 0; r < rows; ++r) t[r] = static_cast<std::int64_t>(y[r]);
      cross_entropy(logit_view, VectorView<const std::int64_t>(t, rows), CrossEntropyParams{},
                    per_row, {}, per_row_grad);
    } else {
      double* t = scratch(wide_targets, rows * cols);
      for (std::int64_t i = 0; i < rows * cols; ++i) t[i] = y[i];
      cross_entropy(logit_view, MatrixView<const double>(t, rows, cols, cols), CrossEntropyParams{},
                    per_row, {}, per_row_grad);
    }
    double total = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) total += per_row.data[r];
    if (grad != nullptr) {
      const double inv_rows = 1.0 / static_cast<double>(rows);
      for (std::int64_t i = 0; i < rows * cols; ++i) {
        grad[i] = static_cast<float>(per_row_grad.data[i] * inv_rows);
      }
    }
    return total;
  }
  // Crossentropy on probabilities (an output that is neither softmax nor logits): Keras clips
  // them to [eps, 1 - eps]. No op computes this form (the CUDA backend refuses it), so it lives
  // here alone.
  double total = 0.0;
  const float inv_rows = 1.0f / static_cast<float>(rows);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* in = input + r * cols;
    float* g = grad != nullptr ? grad + r * cols : nullptr;
    const std::int64_t label = sparse ? static_cast<std::int64_t>(y[r]) : -1;
    double row = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float t = sparse ? (c == label ? 1.0f : 0.0f) : y[r * cols + c];
      const float p = std::min(std::max(in[c], kClip), 1.0f - kClip);
      if (t != 0.0f) row -= t * std::log(p);
      if (g != nullptr) {
        const bool clipped = in[c] < kClip || in[c] > 1.0f - kClip;
        g[c] = clipped ? 0.0f : -t / p * inv_rows;
      }
    }
    total += row;
  }
  return total;
}

}  // namespace warpfuse::ref
