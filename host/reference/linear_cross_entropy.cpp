// warpfuse::ref — linear + cross-entropy in double (see warpfuse/ref/linear_cross_entropy.h).
#include "warpfuse/ref/linear_cross_entropy.h"

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace warpfuse::ref {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("ref::linear_cross_entropy: " + what);
}

}  // namespace

void linear_cross_entropy(MatrixView<const double> hidden, MatrixView<const double> weight,
                          VectorView<const double> bias, VectorView<const std::int64_t> targets,
                          const CrossEntropyParams& params, double grad_scale,
                          VectorView<double> row_loss, const LinearCrossEntropyGrads& grads,
                          VectorView<double> lse, const CrossEntropyRowExtras& extras,
                          double (*storage_round)(double)) {
  const std::int64_t rows = hidden.rows, d = hidden.cols, vocab = weight.rows;
  require(weight.cols == d,
          "weight has " + std::to_string(weight.cols) + " columns, hidden " + std::to_string(d));
  require(bias.empty() || bias.size == vocab, "bias size");
  require(grads.dhidden.empty() || (grads.dhidden.rows == rows && grads.dhidden.cols == d),
          "dhidden shape");
  require(grads.dweight.empty() || (grads.dweight.rows == vocab && grads.dweight.cols == d),
          "dweight shape");
  require(grads.dbias.empty() || grads.dbias.size == vocab, "dbias size");
  const auto round = [&](double v) { return storage_round != nullptr ? storage_round(v) : v; };
  // The reference GEMM: logits = hidden weight^T + bias.
  std::vector<double> logits(static_cast<std::size_t>(rows * vocab));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t v = 0; v < vocab; ++v) {
      double sum = bias.empty() ? 0.0 : bias.data[v];
      for (std::int64_t k = 0; k < d; ++k)
        sum += hidden.data[r * hidden.ld + k] * weight.data[v * weight.ld + k];
      logits[r * vocab + v] = round(sum);
    }
  }
  std::vector<double> dz(static_cast<std::size_t>(rows * vocab));
  cross_entropy(MatrixView<const double>(logits.data(), rows, vocab), targets, params, row_loss,
                lse, MatrixView<double>(dz.data(), rows, vocab), extras);
  for (double& g : dz) g = round(grad_scale * g);
  if (!grads.dhidden.empty()) {
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t k = 0; k < d; ++k) {
        double sum = 0.0;
        for (std::int64_t v = 0; v < vocab; ++v)
          sum += dz[r * vocab + v] * weight.data[v * weight.ld + k];
        grads.dhidden.data[r * grads.dhidden.ld + k] = sum;
      }
    }
  }
  if (!grads.dweight.empty()) {
    for (std::int64_t v = 0; v < vocab; ++v) {
      for (std::int64_t k = 0; k < d; ++k) grads.dweight.data[v * grads.dweight.ld + k] = 0.0;
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t v = 0; v < vocab; ++v) {
        const double g = dz[r * vocab + v];
        if (g == 0.0) continue;
        double* out = grads.dweight.data + v * grads.dweight.ld;
        for (std::int64_t k = 0; k < d; ++k) out[k] += g * hidden.data[r * hidden.ld + k];
      }
    }
  }
  if (!grads.dbias.empty()) {
    for (std::int64_t v = 0; v < vocab; ++v) {
      double sum = 0.0;
      for (std::int64_t r = 0; r < rows; ++r) sum += dz[r * vocab + v];
      grads.dbias.data[v] = sum;
    }
  }
}

}  // namespace warpfuse::ref
