// warpfuse — elementwise losses between a rows x cols matrix of predictions and one of targets:
// binary cross-entropy from logits and from probabilities, MSE, MAE (L1) and Huber, each with its
// gradient with respect to the predictions written in the same pass.
//
// Per element, with p the prediction, t the target and d = p - t, the loss L and dL/dp (the CPU
// reference, <warpfuse/ref/elementwise_loss.h>, implements the same formulas in double):
//   binary_cross_entropy_with_logits   w = pos_weight[col] (1 without), l = 1 + (w - 1) t
//       L = (1 - t) p + l (log1p(exp(-|p|)) + max(-p, 0))     dL/dp = (1 - t) - l sigmoid(-p)
//   binary_cross_entropy               p' = clamp(p, eps, 1 - eps)
//       L = -(t log p' + (1 - t) log(1 - p'))                 dL/dp = (1 - t)/(1 - p') - t/p'
//                                                                     (0 where p was clamped)
//   mse_loss     L = d^2                                      dL/dp = 2 d
//   mae_loss     L = |d|                                      dL/dp = sign(d), 0 at d = 0
//   huber_loss   L = 0.5 d^2 if |d| <= delta,                 dL/dp = clamp(d, -delta, delta)
//                    delta (|d| - 0.5 delta) otherwise
//
// binary_cross_entropy_with_logits is PyTorch's BCEWithLogitsLoss (pos_weight weighs the positive
// term: L = w t softplus(-p) + (1 - t) softplus(p)), in a form whose exponentials never overflow.
// binary_cross_entropy is Keras's binary_crossentropy (eps = 1e-7, its backend epsilon); the clamp
// passes no gradient where p was clamped, as tf.clip_by_value's (at p = eps or 1 - eps exactly it
// does). Huber's loss and gradient are continuous at |d| = delta; MAE's gradient at d = 0 is 0.
// Targets are data and are not checked: values outside [0, 1] follow the formulas.
//
// Reductions (warpfuse::Reduction, <warpfuse/loss.h>) and the shape of outputs.loss (fp32):
//   none            rows x cols, any row stride: L per element
//   per_sample      rows x 1 (row stride ld: loss[r * ld]): the mean of each row (Keras's "none")
//   mean            1 x 1: the mean over all rows * cols elements (Keras's default)
//   sum             1 x 1: the sum over all elements
//   per_sample_sum  1 x 1: the sum over rows of the row means (Keras's "sum")
// A mean over zero elements is 0, not NaN (Keras divides with divide_no_nan), so an empty input
// gives loss 0 under mean, sum and per_sample_sum, and per_sample gives 0 for rows with no columns.
//
// Gradient: when outputs.dpred is given it receives, in the same pass over the inputs,
//   dpred = grad_scale * g * dL/dp,  g = 1 / (rows * cols) for mean, 1 / cols for per_sample and
//   per_sample_sum, 1 for sum and none,
// the gradient of the reduced loss times grad_scale (the upstream gradient). For none and
// per_sample, whose loss is not a scalar, it is the gradient of the sum of the returned values
// times grad_scale. dpred may alias pred (or target) exactly: the same pointer and row stride.
//
// Numerics: pred, target and dpred share one storage type T (float, __half or __nv_bfloat16; a
// mismatch does not compile); every computation is fp32 and each output is rounded once (dpred to
// T, the loss stays fp32). NaN in pred or target gives NaN in that element's loss and gradient and
// in every reduced value it enters. Infinities follow the formulas in IEEE arithmetic: MSE, MAE
// and Huber give an infinite loss (NaN for inf - inf); an infinite probability is clamped like any
// other; an infinite logit gives NaN where the formula meets 0 * inf or inf - inf (+inf with
// t = 1, -inf with any t), as PyTorch's does, and +inf otherwise. Finite logits, however large
// (+-1e4), give finite losses and gradients. Reductions are deterministic: each row's sum
// (fp32, a fixed order within the row) goes to the workspace, then the rows are added in a fixed
// order (two stages over many rows, chunked by the row count alone); no atomics, so the same
// inputs give bitwise the same loss on every run. Any alignment and row stride keeps 16-byte
// accesses for the body of every row (a scalar head and tail per row).
//
// The workspace: mean, sum and per_sample_sum need loss_workspace_bytes(rows) bytes of the
// caller's device memory (they reset its status: elementwise losses report no bad targets); none
// and per_sample do not touch it and accept Workspace{}.
//
// Every call validates its arguments (warpfuse::InvalidArgument naming the op and the argument:
// null pointers, negative sizes, ld < cols, shape mismatches, a loss of the wrong shape for the
// reduction, the loss overlapping any other argument, dpred overlapping an input other than
// exactly, options out of range), allocates nothing, launches on `stream` and returns without
// synchronising; it is safe under CUDA Graph capture. The templates are explicitly instantiated
// for float, __half and __nv_bfloat16; the outputs decide T, and pred and target, nondeduced,
// may be views of T or of const T.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "warpfuse/loss.h"
#include "warpfuse/view.h"
#include "warpfuse/workspace.h"

namespace warpfuse {

/// Options of binary_cross_entropy_with_logits, mse_loss and mae_loss; the first two members of
/// every elementwise loss's options.
struct ElementwiseLossOptions {
  Reduction reduction = Reduction::mean;
  float grad_scale = 1.0f;  ///< multiplies dpred (the upstream gradient); must be finite
};

struct BinaryCrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  float grad_scale = 1.0f;
  float eps = 1e-7f;  ///< probabilities are clamped to [eps, 1 - eps]; 0 < eps < 0.5
};

struct HuberLossOptions {
  Reduction reduction = Reduction::mean;
  float grad_scale = 1.0f;
  float delta = 1.0f;  ///< where the quadratic turns linear; finite and positive
};

/// Bytes of workspace an elementwise loss over `rows` rows needs (at least 512).
std::size_t elementwise_loss_workspace_bytes(std::int64_t rows);

/// Where an elementwise loss writes. Only `loss` is required.
template <class T>
struct ElementwiseLossOutputs {
  MatrixView<float> loss{};  ///< device fp32; its shape follows the reduction (see above)
  MatrixView<T> dpred{};     ///< the gradient (pred's shape), optional; may alias pred or target
};

/// pred holds logits; pos_weight: one weight per column (cols floats, device), or empty for 1.
template <class T>
void binary_cross_entropy_with_logits(nondeduced_t<MatrixView<const T>> pred,
                                      nondeduced_t<MatrixView<const T>> target,
                                      const ElementwiseLossOutputs<T>& outputs,
                                      const Workspace& workspace,
                                      const ElementwiseLossOptions& options = {},
                                      VectorView<const float> pos_weight = {},
                                      cudaStream_t stream = nullptr);

/// pred holds probabilities (Keras's binary_crossentropy).
template <class T>
void binary_cross_entropy(nondeduced_t<MatrixView<const T>> pred,
                          nondeduced_t<MatrixView<const T>> target,
                          const ElementwiseLossOutputs<T>& outputs, const Workspace& workspace,
                          const BinaryCrossEntropyOptions& options = {},
                          cudaStream_t stream = nullptr);

template <class T>
void mse_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
              const ElementwiseLossOutputs<T>& outputs, const Workspace& workspace,
              const ElementwiseLossOptions& options = {}, cudaStream_t stream = nullptr);

template <class T>
void mae_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
              const ElementwiseLossOutputs<T>& outputs, const Workspace& workspace,
              const ElementwiseLossOptions& options = {}, cudaStream_t stream = nullptr);

template <class T>
void huber_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
                const ElementwiseLossOutputs<T>& outputs, const Workspace& workspace,
                const HuberLossOptions& options = {}, cudaStream_t stream = nullptr);

}  // namespace warpfuse
