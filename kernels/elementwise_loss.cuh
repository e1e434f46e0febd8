// warpfuse kernels — elementwise losses between predictions and targets (binary cross-entropy from
// logits and from probabilities, MSE, MAE, Huber), each element's loss and gradient in one pass.
//
// Math per element, p = prediction, t = target, d = p - t; value L and derivative dL/dp:
//   BceWithLogitsLoss  w = pos_weight[col] (1 without), l = 1 + (w - 1) t, e = exp(-|p|):
//                      L = (1 - t) p + l (log1p(e) + max(-p, 0))   (= (1 - t) softplus(p)
//                                                                     + w t softplus(-p))
//                      dL/dp = (1 - t) - l sigmoid(-p),  sigmoid(-p) = (p >= 0 ? e : 1) / (1 + e)
//   BceLoss            p' = clamp(p, eps, 1 - eps), q' = 1 - p':  L = -(t log p' + (1 - t) log q')
//                      dL/dp = (1 - t) / q' - t / p' where eps <= p <= 1 - eps, 0 where clamped
//   MseLoss            L = d^2                        dL/dp = 2 d
//   MaeLoss            L = |d|                        dL/dp = sign(d), 0 at d = 0
//   HuberLoss          L = 0.5 d^2 (|d| <= delta), delta (|d| - 0.5 delta) otherwise
//                      dL/dp = clamp(d, -delta, delta)
// The exponentials never see a positive argument, so no finite logit overflows them. q' is 1 - p'
// computed exactly where p was clamped high (q' = eps, not 1 - fl(1 - eps)), and 1 - p is exact in
// fp32 for p >= 1/2. Clamps and signs are written with comparisons, not fminf/fmaxf, so a NaN
// passes through them (fmaxf(NaN, x) would return x).
//
// Outputs, by ElementwiseLossArgs::mode (the host maps warpfuse::Reduction onto it):
//   elements      loss[row, col] = L                        (reduction none)
//   row_means     loss[row * ld_loss] = sum_col L * fl(1 / cols)   (per_sample; 0 when cols is 0;
//                 one rounding more than a division, and no division subroutine in the kernel)
//   row_partials  row_partials[row] = sum_col L             (mean, sum, per_sample_sum)
// row_partials are finished by loss_reduce_kernel (kernels/loss.cuh) with the reduction's scale.
// In every mode, when dpred is not null, dpred = grad_factor * dL/dp (grad_factor: the upstream
// scale times the reduction's weight, computed on the host).
//
// Layout: row-major, element (row, col) of each matrix at ptr[row * ld + col], 64-bit offsets.
//
// Numerics: storage float, __half or __nv_bfloat16 (pred, target, dpred), fp32 arithmetic with the
// accurate functions (expf, logf, log1pf), fp32 losses. A row's sum is fixed in order: each member
// of the row's team adds its columns in a fixed order, then a xor butterfly over the team (warp)
// or block_all_reduce (block) combines them: bitwise reproducible, no atomics.
//
// Traversal: ElementwiseLossPolicy is a stream policy of the row engine
// (kernels/common/row_engine.cuh): one pass over pred and target with per-row scalar head, 128-bit
// body and scalar tail for every alignment, dpred and the per-element fp32 loss stored as they are
// computed (16-byte stores in the body). The host (host/cuda/rows.h, launch_stream_rows) gives a
// team of 1..32 lanes to rows of up to kRowWarpMaxCols columns and a block to longer rows.
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/common/row_engine.cuh"

namespace warpfuse::detail {

/// One element's loss and its derivative with respect to the prediction.
struct ElementwiseLossTerm {
  float value;
  float grad;
};

struct BceWithLogitsLoss {
  const float* pos_weight;  // cols weights, or null for all 1

  WF_DEVICE ElementwiseLossTerm operator()(float logit, float target, std::int64_t col) const {
    const float weight = pos_weight == nullptr ? 1.0f : pos_weight[col];
    const float log_weight = 1.0f + (weight - 1.0f) * target;
    const float e = exact_exp(-fabsf(logit));
    const float softplus_neg = log1pf(e) + (logit < 0.0f ? -logit : 0.0f);  // log(1 + e^-logit)
    const float sigmoid_neg = exact_div(logit >= 0.0f ? e : 1.0f, 1.0f + e);
    return ElementwiseLossTerm{(1.0f - target) * logit + log_weight * softplus_neg,
                               (1.0f - target) - log_weight * sigmoid_neg};
  }
};

struct BceLoss {
  float eps;

  WF_DEVICE ElementwiseLossTerm operator()(float prob, float target, std::int64_t) const {
    const float upper = 1.0f - eps;
    const bool low = prob < eps;
    const bool high = prob > upper;
    const float p = low ? eps : (high ? upper : prob);
    const float q = high ? eps : (low ? upper : 1.0f - prob);
    const float value = -(target * exact_log(p) + (1.0f - target) * exact_log(q));
    const float grad = low || high ? 0.0f : exact_div(1.0f - target, q) - exact_div(target, p);
    return ElementwiseLossTerm{value, grad};
  }
};

struct MseLoss {
  WF_DEVICE ElementwiseLossTerm operator()(float pred, float target, std::int64_t) const {
    const float d = pred - target;
    return ElementwiseLossTerm{d * d, 2.0f * d};
  }
};

struct MaeLoss {
  WF_DEVICE ElementwiseLossTerm operator()(float pred, float target, std::int64_t) const {
    const float d = pred - target;
    // sign(d), with d itself where d is 0 or NaN: 0 at d = 0, NaN stays NaN.
    return ElementwiseLossTerm{fabsf(d), d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : d)};
  }
};

struct HuberLoss {
  float delta;

  WF_DEVICE ElementwiseLossTerm operator()(float pred, float target, std::int64_t) const {
    const float d = pred - target;
    const float magnitude = fabsf(d);
    const float value =
        magnitude <= delta ? 0.5f * d * d : delta * (magnitude - 0.5f * delta);  // NaN: 2nd form
    return ElementwiseLossTerm{value, d > delta ? delta : (d < -delta ? -delta : d)};
  }
};

enum class ElementwiseLossMode { elements, row_means, row_partials };

template <class T>
struct ElementwiseLossArgs {
  const T* pred;
  const T* target;
  T* dpred;             // null: no gradient
  float* loss;          // elements, row_means
  float* row_partials;  // row_partials
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld_pred;
  std::int64_t ld_target;
  std::int64_t ld_dpred;
  std::int64_t ld_loss;
  ElementwiseLossMode mode;
  float grad_factor;
};

/// The row-engine stream policy of an elementwise loss: inputs pred and target, the output dpred
/// (or none), the fp32 loss per element (reduction none) as the values, the row's sum otherwise.
template <class T_, class Loss>
struct ElementwiseLossPolicy : ElementwiseLossArgs<T_> {
  using T = T_;
  static constexpr bool kStream = true;
  static constexpr int kInputs = 2;
  Loss loss_fn;

  WF_DEVICE const T* input(int j, std::int64_t row) const {
    return j == 0 ? this->pred + row * this->ld_pred : this->target + row * this->ld_target;
  }
  WF_DEVICE T* output(std::int64_t row) const {
    return this->dpred == nullptr ? nullptr : this->dpred + row * this->ld_dpred;
  }
  WF_DEVICE float* values(std::int64_t row) const {
    return this->mode == ElementwiseLossMode::elements ? this->loss + row * this->ld_loss : nullptr;
  }
  WF_DEVICE float element(std::int64_t col, const float* in, float* grad) const {
    const ElementwiseLossTerm term = loss_fn(in[0], in[1], col);
    *grad = this->grad_factor * term.grad;
    return term.value;
  }
  WF_DEVICE bool reduces() const { return this->mode != ElementwiseLossMode::elements; }
  /// A row's reduced loss: its mean (row_means) or its sum (row_partials).
  WF_DEVICE void finish_row(std::int64_t row, float sum) const {
    if (this->mode == ElementwiseLossMode::row_means) {
      this->loss[row * this->ld_loss] =
          this->cols == 0 ? 0.0f : sum * (1.0f / static_cast<float>(this->cols));
    } else {
      this->row_partials[row] = sum;
    }
  }
};

}  // namespace warpfuse::detail
