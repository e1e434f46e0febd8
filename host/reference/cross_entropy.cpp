// warpfuse::ref — reference cross-entropy (see include/warpfuse/ref/cross_entropy.h).
#include "warpfuse/ref/cross_entropy.h"

#include "views.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

namespace warpfuse::ref {
namespace {

double logsumexp(const double* z, std::int64_t n) {
  double max = -std::numeric_limits<double>::infinity();
  for (std::int64_t c = 0; c < n; ++c) max = std::fmax(max, z[c]);
  const double shift = std::isinf(max) && max < 0 ? 0.0 : max;
  double sum = 0.0;
  for (std::int64_t c = 0; c < n; ++c) sum += std::exp(z[c] - shift);
  return shift + std::log(sum);
}

/// -sum_c p_c log p_c = sum_c p_c (lse - z_c), skipping classes of probability 0.
double entropy_of(const double* z, std::int64_t n, double lse) {
  double h = 0.0;
  for (std::int64_t c = 0; c < n; ++c) {
    const double p = std::exp(z[c] - lse);
    if (p > 0.0) h += p * (lse - z[c]);
  }
  return h;
}

/// Shared by both target kinds: mass[c] = w_c q'_c is the target distribution (times weights).
void row_from_mass(const double* z, std::int64_t classes, const std::vector<double>& mass,
                   double z_loss, double lse, double* loss, double* grad) {
  double total_mass = 0.0;
  double value = 0.0;
  for (std::int64_t c = 0; c < classes; ++c) {
    total_mass += mass[c];
    if (mass[c] != 0.0) value += mass[c] * (lse - z[c]);  // -mass log p, skipping 0 * inf
  }
  *loss = value + z_loss * lse * lse;
  if (grad != nullptr) {
    const double factor = total_mass + 2.0 * z_loss * lse;
    for (std::int64_t c = 0; c < classes; ++c) grad[c] = std::exp(z[c] - lse) * factor - mass[c];
  }
}

double weight_of(const CrossEntropyParams& params, std::int64_t c) {
  return params.weight != nullptr ? params.weight[c] : 1.0;
}

/// The checks both target kinds share.
void check_outputs(MatrixView<const double> logits, VectorView<double> row_loss,
                   VectorView<double> lse, MatrixView<double> row_grad,
                   const CrossEntropyRowExtras& extras) {
  detail::require_size("cross_entropy", "row_loss", row_loss, logits.rows);
  if (lse.data != nullptr) detail::require_size("cross_entropy", "lse", lse, logits.rows);
  if (row_grad.data != nullptr) {
    detail::require_shape("cross_entropy", "row_grad", row_grad, logits.rows, logits.cols);
  }
  if (extras.z_loss_term.data != nullptr) {
    detail::require_size("cross_entropy", "extras.z_loss_term", extras.z_loss_term, logits.rows);
  }
  if (extras.correct.data != nullptr) {
    detail::require_size("cross_entropy", "extras.correct", extras.correct, logits.rows);
  }
  if (extras.entropy.data != nullptr) {
    detail::require_size("cross_entropy", "extras.entropy", extras.entropy, logits.rows);
  }
}

/// The row's z' (the logits under the softcap and scale) into `out`.
void transform_row(const double* z, std::int64_t classes, const CrossEntropyParams& params,
                   std::vector<double>& out) {
  for (std::int64_t c = 0; c < classes; ++c) out[c] = cross_entropy_logit(z[c], params);
}

/// row_grad (with respect to z') times dz'/dz.
void chain_slope(const double* z, std::int64_t classes, const CrossEntropyParams& params,
                 double* grad) {
  if (grad == nullptr || (params.logit_softcap == 0.0 && params.logit_scale == 1.0)) return;
  for (std::int64_t c = 0; c < classes; ++c) grad[c] *= cross_entropy_logit_slope(z[c], params);
}

void check_params(const CrossEntropyParams& params) {
  if (!(params.logit_softcap >= 0.0) || !(params.logit_scale > 0.0)) {
    throw std::invalid_argument(
        "warpfuse::ref::cross_entropy: logit_softcap must be >= 0 and logit_scale > 0");
  }
}

}  // namespace

double cross_entropy_logit(double z, const CrossEntropyParams& params) {
  if (params.logit_softcap > 0.0) {
    return params.logit_softcap * std::tanh(z * params.logit_scale / params.logit_softcap);
  }
  return z * params.logit_scale;
}

double cross_entropy_logit_slope(double z, const CrossEntropyParams& params) {
  if (params.logit_softcap > 0.0) {
    const double t = std::tanh(z * params.logit_scale / params.logit_softcap);
    return params.logit_scale * (1.0 - t * t);
  }
  return params.logit_scale;
}

void cross_entropy(MatrixView<const double> logits, VectorView<const std::int64_t> targets,
                   const CrossEntropyParams& params, VectorView<double> row_loss,
                   VectorView<double> lse, MatrixView<double> row_grad,
                   const CrossEntropyRowExtras& extras) {
  const std::int64_t rows = logits.rows, classes = logits.cols;
  detail::require_size("cross_entropy", "targets", targets, rows);
  check_outputs(logits, row_loss, lse, row_grad, extras);
  check_params(params);
  std::vector<double> mass(static_cast<std::size_t>(classes));
  std::vector<double> zt(static_cast<std::size_t>(classes));
  const double eps = params.label_smoothing;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::int64_t i = 0; i < rows; ++i) {
    const double* raw = logits.data + i * logits.ld;
    transform_row(raw, classes, params, zt);
    const double* z = zt.data();
    double* grad = row_grad.data != nullptr ? row_grad.data + i * row_grad.ld : nullptr;
    const double row_lse = logsumexp(z, classes);
    if (lse.data != nullptr) lse.data[i] = row_lse;
    if (extras.entropy.data != nullptr) extras.entropy.data[i] = entropy_of(z, classes, row_lse);
    const std::int64_t t = targets.data[i];
    const bool ignored = t == params.ignore_index;
    const bool bad = !ignored && (t < 0 || t >= classes);
    if (ignored || bad) {
      row_loss.data[i] = bad ? nan : 0.0;
      if (extras.z_loss_term.data != nullptr) extras.z_loss_term.data[i] = bad ? nan : 0.0;
      if (extras.correct.data != nullptr) extras.correct.data[i] = 0.0;
      if (grad != nullptr) {
        for (std::int64_t c = 0; c < classes; ++c) grad[c] = 0.0;
      }
      continue;
    }
    if (extras.z_loss_term.data != nullptr) {
      extras.z_loss_term.data[i] = params.z_loss * row_lse * row_lse;
    }
    if (extras.correct.data != nullptr) {
      std::int64_t argmax = 0;  // the first maximal z', as torch.argmax
      for (std::int64_t c = 1; c < classes; ++c) {
        if (z[c] > z[argmax]) argmax = c;
      }
      extras.correct.data[i] = argmax == t ? 1.0 : 0.0;
    }
    for (std::int64_t c = 0; c < classes; ++c) {
      const double one_hot = c == t ? 1.0 : 0.0;
      // The target's weight scales the one-hot part; each class's own weight the uniform part.
      mass[c] = (1.0 - eps) * one_hot * weight_of(params, t) +
                eps / static_cast<double>(classes) * weight_of(params, c);
    }
    row_from_mass(z, classes, mass, params.z_loss, row_lse, &row_loss.data[i], grad);
    chain_slope(raw, classes, params, grad);
  }
}

void cross_entropy(MatrixView<const double> logits, MatrixView<const double> target_probabilities,
                   const CrossEntropyParams& params, VectorView<double> row_loss,
                   VectorView<double> lse, MatrixView<double> row_grad,
                   const CrossEntropyRowExtras& extras) {
  const std::int64_t rows = logits.rows, classes = logits.cols;
  detail::require_shape("cross_entropy", "target_probabilities", target_probabilities, rows,
                        classes);
  check_outputs(logits, row_loss, lse, row_grad, extras);
  check_params(params);
  if (extras.correct.data != nullptr) {
    throw std::invalid_argument(
        "warpfuse::ref::cross_entropy: extras.correct needs class-index targets");
  }
  std::vector<double> mass(static_cast<std::size_t>(classes));
  std::vector<double> zt(static_cast<std::size_t>(classes));
  const double eps = params.label_smoothing;
  for (std::int64_t i = 0; i < rows; ++i) {
    const double* raw = logits.data + i * logits.ld;
    transform_row(raw, classes, params, zt);
    const double* z = zt.data();
    double* grad = row_grad.data != nullptr ? row_grad.data + i * row_grad.ld : nullptr;
    const double row_lse = logsumexp(z, classes);
    if (lse.data != nullptr) lse.data[i] = row_lse;
    if (extras.entropy.data != nullptr) extras.entropy.data[i] = entropy_of(z, classes, row_lse);
    if (extras.z_loss_term.data != nullptr) {
      extras.z_loss_term.data[i] = params.z_loss * row_lse * row_lse;
    }
    for (std::int64_t c = 0; c < classes; ++c) {
      const double q = target_probabilities.data[i * target_probabilities.ld + c];
      mass[c] = weight_of(params, c) * ((1.0 - eps) * q + eps / static_cast<double>(classes));
    }
    row_from_mass(z, classes, mass, params.z_loss, row_lse, &row_loss.data[i], grad);
    chain_slope(raw, classes, params, grad);
  }
}

void cross_entropy_shard_stats(MatrixView<const double> logits,
                               VectorView<const std::int64_t> targets, std::int64_t vocab_begin,
                               const CrossEntropyParams& params, MatrixView<double> stats) {
  const std::int64_t rows = logits.rows, cols = logits.cols;
  detail::require_size("cross_entropy_shard_stats", "targets", targets, rows);
  detail::require_shape("cross_entropy_shard_stats", "stats", stats, rows, 8);
  check_params(params);
  std::vector<double> zt(static_cast<std::size_t>(cols));
  for (std::int64_t i = 0; i < rows; ++i) {
    transform_row(logits.data + i * logits.ld, cols, params, zt);
    double max = -std::numeric_limits<double>::infinity();
    for (double v : zt) max = std::fmax(max, v);
    const double shift = std::isinf(max) && max < 0 ? 0.0 : max;
    double sum = 0.0;
    for (double v : zt) sum += std::exp(v - shift);
    const double log_sum = std::log(sum);
    const std::int64_t t = targets.data[i];
    const std::int64_t local = t - vocab_begin;
    const bool in_shard = t != params.ignore_index && local >= 0 && local < cols;
    double linear = 0.0, weight_sum = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double w = weight_of(params, c);
      if (params.label_smoothing > 0.0 && w != 0.0) linear += w * zt[c];
      weight_sum += w;
    }
    double* out = stats.data + i * stats.ld;
    out[0] = shift;
    out[1] = log_sum;
    out[2] = sum > 0.0 ? entropy_of(zt.data(), cols, shift + log_sum) : std::nan("");
    out[3] = in_shard ? zt[local] : 0.0;
    out[4] = in_shard ? weight_of(params, local) : 0.0;
    out[5] = in_shard ? 1.0 : 0.0;
    out[6] = linear;
    out[7] = weight_sum;
  }
}

void cross_entropy_shard_combine(MatrixView<const double> gathered, std::int64_t shards,
                                 MatrixView<double> combined) {
  const std::int64_t rows = combined.rows;
  detail::require_shape("cross_entropy_shard_combine", "combined", combined, rows, 8);
  detail::require_shape("cross_entropy_shard_combine", "gathered", gathered, shards * rows, 8);
  const double inf = std::numeric_limits<double>::infinity();
  for (std::int64_t i = 0; i < rows; ++i) {
    const auto part = [&](std::int64_t s) { return gathered.data + (s * rows + i) * gathered.ld; };
    double lse = -inf;  // log sum_s exp(max_s + log_sum_s), over the non-empty shards
    for (std::int64_t s = 0; s < shards; ++s) {
      const double l = part(s)[0] + part(s)[1];
      if (l == -inf) continue;
      lse = lse == -inf ? l : std::fmax(lse, l) + std::log1p(std::exp(-std::fabs(lse - l)));
    }
    double entropy = 0.0;
    double* out = combined.data + i * combined.ld;
    for (int k = 3; k < 8; ++k) out[k] = 0.0;
    double max = -inf;
    for (std::int64_t s = 0; s < shards; ++s) {
      const double* p = part(s);
      for (int k = 3; k < 8; ++k) out[k] += p[k];
      const double l = p[0] + p[1];
      if (l == -inf) continue;
      max = std::fmax(max, p[0]);
      entropy += std::exp(l - lse) * (p[2] + (lse - l));  // the mixture's entropy
    }
    const double shift = max == -inf ? 0.0 : max;
    out[0] = shift;
    out[1] = lse - shift;
    out[2] = lse == -inf ? std::nan("") : entropy;
  }
}

void cross_entropy_shard_finish(MatrixView<const double> logits,
                                VectorView<const std::int64_t> targets, std::int64_t vocab_begin,
                                std::int64_t vocab_size, MatrixView<const double> combined,
                                const CrossEntropyParams& params, VectorView<double> row_loss,
                                VectorView<double> lse, MatrixView<double> row_grad,
                                const CrossEntropyRowExtras& extras) {
  const std::int64_t rows = logits.rows, cols = logits.cols;
  detail::require_size("cross_entropy_shard_finish", "targets", targets, rows);
  detail::require_shape("cross_entropy_shard_finish", "combined", combined, rows, 8);
  check_outputs(logits, row_loss, lse, row_grad, extras);
  check_params(params);
  if (extras.correct.data != nullptr) {
    throw std::invalid_argument(
        "warpfuse::ref::cross_entropy_shard_finish: extras.correct is not available from shards");
  }
  const double eps = params.label_smoothing;
  const double uniform = eps / static_cast<double>(vocab_size);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::int64_t i = 0; i < rows; ++i) {
    const double* c = combined.data + i * combined.ld;
    const double row_lse = c[0] + c[1];
    if (lse.data != nullptr) lse.data[i] = row_lse;
    if (extras.entropy.data != nullptr) extras.entropy.data[i] = c[2];
    const std::int64_t t = targets.data[i];
    const bool ignored = t == params.ignore_index;
    const bool bad = !ignored && (t < 0 || t >= vocab_size || c[5] != 1.0);
    double* grad = row_grad.data != nullptr ? row_grad.data + i * row_grad.ld : nullptr;
    if (ignored || bad) {
      row_loss.data[i] = bad ? nan : 0.0;
      if (extras.z_loss_term.data != nullptr) extras.z_loss_term.data[i] = bad ? nan : 0.0;
      if (grad != nullptr) {
        for (std::int64_t k = 0; k < cols; ++k) grad[k] = 0.0;
      }
      continue;
    }
    const double w_t = c[4], z_t = c[3], linear = c[6], weight_sum = c[7];
    row_loss.data[i] = (1.0 - eps) * w_t * (row_lse - z_t) +
                       uniform * (weight_sum * row_lse - linear) +
                       params.z_loss * row_lse * row_lse;
    if (extras.z_loss_term.data != nullptr) {
      extras.z_loss_term.data[i] = params.z_loss * row_lse * row_lse;
    }
    if (grad != nullptr) {
      const double factor =
          (1.0 - eps) * w_t + uniform * weight_sum + 2.0 * params.z_loss * row_lse;
      const double* raw = logits.data + i * logits.ld;
      for (std::int64_t k = 0; k < cols; ++k) {
        const double z = cross_entropy_logit(raw[k], params);
        const double mass =
            weight_of(params, k) * ((k + vocab_begin == t ? 1.0 - eps : 0.0) + uniform);
        grad[k] =
            (std::exp(z - row_lse) * factor - mass) * cross_entropy_logit_slope(raw[k], params);
      }
    }
  }
}

double cross_entropy_mean_denominator(VectorView<const std::int64_t> targets, std::int64_t classes,
                                      const CrossEntropyParams& params) {
  double denominator = 0.0;
  for (std::int64_t i = 0; i < targets.size; ++i) {
    const std::int64_t t = targets.data[i];
    if (t != params.ignore_index && t >= 0 && t < classes) denominator += weight_of(params, t);
  }
  return denominator;
}

}  // namespace warpfuse::ref
