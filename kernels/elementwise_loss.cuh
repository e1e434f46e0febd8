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
//   row_means     loss[row * ld_loss] = sum_col L / cols    (per_sample; 0 when cols == 0)
//   row_partials  row_partials[row] = sum_col L             (mean, sum, per_sample_sum)
// row_partials are finished by loss_reduce_kernel (kernels/loss.cuh) with the reduction's scale.
// In every mode, when dpred is not null, dpred = grad_factor * dL/dp (grad_factor: the upstream
// scale times the reduction's weight, computed on the host).
//
// Layout: row-major, element (row, col) of each matrix at ptr[row * ld + col], 64-bit offsets.
//
// Numerics: storage float, __half or __nv_bfloat16 (pred, target, dpred), fp32 arithmetic with the
// accurate functions (expf, logf, log1pf), fp32 losses. A row's sum is fixed in order: each lane
// (thread) adds its columns in increasing order, then a xor butterfly over the row's lanes (warp)
// or block_all_reduce (block) combines them: bitwise reproducible, no atomics.
//
// Strategies (chosen in host/cuda/elementwise_loss.cu, choose_elementwise_loss_shape):
//   warp   elementwise_loss_warp_kernel: kLanes lanes per row (1..32), 32 / kLanes rows per warp,
//          each lane striding over its row's columns kPack at a time; no shared memory, no block
//          barrier. For rows up to kElementwiseLossWarpMaxCols.
//   block  elementwise_loss_block_kernel: one block per row, for longer rows, so a few long rows
//          still spread over many threads; block_all_reduce for the row sum.
// Rows are distributed grid-stride. 16-byte packs are used when every row of every matrix the
// kernel touches starts pack-aligned (the host checks pointers and strides); the fp32 loss of
// reduction none is then stored as 16-byte packs of 4 floats. A partial pack at the end of a row
// falls back to scalar accesses.
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/common/rows.cuh"

namespace warpfuse::detail {

/// The longest row the warp strategy takes; longer rows get a block each.
constexpr std::int64_t kElementwiseLossWarpMaxCols = 1024;

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

/// Stores kPack fp32 losses at row[col..], skipping positions at or past `cols`: 16-byte packs of
/// 4 floats when the whole pack is in the row (the caller guarantees 16-byte aligned rows when
/// kPack > 1; kPack is then a multiple of 4), scalar stores otherwise.
template <int kPack>
WF_DEVICE void elementwise_loss_store_values(float* row, std::int64_t col, std::int64_t cols,
                                             const float* values) {
  if (kPack > 1 && col + kPack <= cols) {
    constexpr int kFloats = kPack < 4 ? kPack : 4;
#pragma unroll
    for (int start = 0; start < kPack; start += kFloats) {
      Pack<float, kFloats> pack;
#pragma unroll
      for (int i = 0; i < kFloats; ++i) pack.elem[i] = values[start + i];
      store_pack<kFloats>(row + col + start, pack);
    }
  } else {
#pragma unroll
    for (int i = 0; i < kPack; ++i) {
      if (col + i < cols) row[col + i] = values[i];
    }
  }
}

/// Loss and gradient of the kPack elements of `row` from `col` on; returns the sum of their
/// losses (positions past the row contribute 0). In place is safe: each element is read and then
/// written by the same thread.
template <int kPack, class T, class Loss>
WF_DEVICE float elementwise_loss_pack(const ElementwiseLossArgs<T>& args, const Loss& loss,
                                      std::int64_t row, std::int64_t col) {
  float pred[kPack], target[kPack], value[kPack], grad[kPack];
  load_scaled<kPack>(args.pred + row * args.ld_pred, col, args.cols, 1.0f, 0.0f, pred);
  load_scaled<kPack>(args.target + row * args.ld_target, col, args.cols, 1.0f, 0.0f, target);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kPack; ++i) {
    // Positions past the row are skipped, not computed on padding: pos_weight has cols entries.
    const ElementwiseLossTerm term =
        col + i < args.cols ? loss(pred[i], target[i], col + i) : ElementwiseLossTerm{0.0f, 0.0f};
    value[i] = term.value;
    grad[i] = args.grad_factor * term.grad;
    sum += term.value;
  }
  if (args.dpred != nullptr) {
    store_converted<kPack>(args.dpred + row * args.ld_dpred, col, args.cols, grad);
  }
  if (args.mode == ElementwiseLossMode::elements) {
    elementwise_loss_store_values<kPack>(args.loss + row * args.ld_loss, col, args.cols, value);
  }
  return sum;
}

/// Writes a row's reduced loss: its mean (row_means) or its sum (row_partials).
template <class T>
WF_DEVICE void elementwise_loss_store_row(const ElementwiseLossArgs<T>& args, std::int64_t row,
                                          float sum) {
  if (args.mode == ElementwiseLossMode::row_means) {
    args.loss[row * args.ld_loss] =
        args.cols == 0 ? 0.0f : exact_div(sum, static_cast<float>(args.cols));
  } else {
    args.row_partials[row] = sum;
  }
}

/// Warp strategy. Grid: 1-D, grid-stride over groups of rows. Block:
/// kWarpRowBlockThreads (whole warps). Each group of kLanes lanes owns one row; lane j
/// handles columns (k * kLanes + j) * kPack + i. No shared memory. kPack > 1 only with pack-aligned
/// rows.
template <class T, class Loss, int kLanes, int kPack>
__global__ void __launch_bounds__(kWarpRowBlockThreads)
    elementwise_loss_warp_kernel(ElementwiseLossArgs<T> args, Loss loss) {
  constexpr int kRowsPerWarp = kWarpSize / kLanes;
  const int lane_in_row = static_cast<int>(lane_index()) % kLanes;
  const int group = static_cast<int>(lane_index()) / kLanes;
  std::int64_t first_row, row_stride;
  warp_rows<kRowsPerWarp>(&first_row, &row_stride);
  // Every lane of the warp runs the same iterations, so the butterfly always has all 32 lanes.
  for (std::int64_t warp_row = first_row; warp_row < args.rows; warp_row += row_stride) {
    const std::int64_t row = warp_row + group;
    const bool active = row < args.rows;
    float sum = 0.0f;
    if (active) {
      for (std::int64_t col = static_cast<std::int64_t>(lane_in_row) * kPack; col < args.cols;
           col += static_cast<std::int64_t>(kLanes) * kPack) {
        sum += elementwise_loss_pack<kPack>(args, loss, row, col);
      }
    }
    if (args.mode == ElementwiseLossMode::elements) continue;
    sum = warp_all_reduce_sum<kLanes>(sum);
    if (active && lane_in_row == 0) elementwise_loss_store_row(args, row, sum);
  }
}

/// Block strategy. Grid: 1-D, grid-stride over rows, one row per block at a time. Block: any whole
/// number of warps (up to 1024 threads); thread t handles columns (k * blockDim + t) * kPack + i.
/// No dynamic shared memory. kPack > 1 only with pack-aligned rows.
template <class T, class Loss, int kPack>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1)
    elementwise_loss_block_kernel(ElementwiseLossArgs<T> args, Loss loss) {
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  for (std::int64_t row = blockIdx.x; row < args.rows; row += gridDim.x) {
    float sum = 0.0f;
    for (std::int64_t col = thread * kPack; col < args.cols; col += threads * kPack) {
      sum += elementwise_loss_pack<kPack>(args, loss, row, col);
    }
    if (args.mode == ElementwiseLossMode::elements) continue;
    sum = block_all_reduce_sum(sum);
    if (thread == 0) elementwise_loss_store_row(args, row, sum);
  }
}

}  // namespace warpfuse::detail
