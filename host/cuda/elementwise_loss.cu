// warpfuse host — elementwise losses (binary cross-entropy from logits and from probabilities,
// MSE, MAE, Huber): validation, the reduction, launches. The math and the kernels are
// in kernels/elementwise_loss.cuh, the API in include/warpfuse/elementwise_loss.h.
//
// One pass reads pred and target once and writes the loss (reduction none: per element;
// per_sample: per row) and, when asked, dpred. mean, sum and per_sample_sum write each row's sum
// into the workspace and finish with launch_loss_reduce (fixed order, two stages over many rows).
//
// The traversal is the row engine's stream strategy (host/cuda/rows.h, launch_stream_rows): a
// team of 1..32 lanes per row up to 1024 columns, a block per row beyond, any alignment.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "host/cuda/loss_internal.h"
#include "host/cuda/rows.h"
#include "kernels/elementwise_loss.cuh"
#include "warpfuse/elementwise_loss.h"
#include "warpfuse/error.h"
#include "warpfuse/loss.h"

namespace warpfuse {
namespace {

using detail::ElementwiseLossMode;

bool is_valid(Reduction reduction) {
  const int value = static_cast<int>(reduction);
  return value >= static_cast<int>(Reduction::none) &&
         value <= static_cast<int>(Reduction::per_sample_sum);
}

/// Reductions that sum over rows, through the workspace.
bool reduces_rows(Reduction reduction) {
  return reduction == Reduction::mean || reduction == Reduction::sum ||
         reduction == Reduction::per_sample_sum;
}

/// The checks and launches every elementwise loss shares. `pos_weight` is empty but for
/// binary_cross_entropy_with_logits (checked there); no output may overlap it.
template <class T, class Loss>
void run_elementwise_loss(const char* op, MatrixView<const T> pred, MatrixView<const T> target,
                          const ElementwiseLossOutputs<T>& outputs, Reduction reduction,
                          float grad_scale, const Workspace& workspace,
                          VectorView<const float> pos_weight, const Loss& loss_fn,
                          cudaStream_t stream) {
  const MatrixView<float> loss = outputs.loss;
  const MatrixView<T> dpred = outputs.dpred;
  detail::check_view(op, "pred", pred);
  detail::check_view(op, "target", target);
  detail::check_same_shape(op, "target", target, "pred", pred);
  if (!is_valid(reduction)) {
    throw InvalidArgument(op, "options.reduction",
                          "reduction = " + std::to_string(static_cast<int>(reduction)) +
                              " is not a warpfuse::Reduction");
  }
  if (!std::isfinite(grad_scale)) {
    throw InvalidArgument(op, "options.grad_scale",
                          "grad_scale = " + detail::format_number(grad_scale) + " must be finite");
  }

  // The loss's shape follows the reduction.
  detail::check_view(op, "outputs.loss", loss);
  const std::int64_t loss_rows =
      reduction == Reduction::none || reduction == Reduction::per_sample ? pred.rows : 1;
  const std::int64_t loss_cols = reduction == Reduction::none ? pred.cols : 1;
  if (loss.rows != loss_rows || loss.cols != loss_cols) {
    throw InvalidArgument(op, "outputs.loss",
                          "shape " + std::to_string(loss.rows) + " x " + std::to_string(loss.cols) +
                              " is not the " + std::to_string(loss_rows) + " x " +
                              std::to_string(loss_cols) + " that reduction " +
                              to_string(reduction) + " writes for pred's " +
                              std::to_string(pred.rows) + " x " + std::to_string(pred.cols));
  }

  const bool has_grad = dpred.data != nullptr || !dpred.empty();
  if (has_grad) {
    detail::check_view(op, "outputs.dpred", dpred);
    detail::check_same_shape(op, "outputs.dpred", dpred, "pred", pred);
    detail::check_alias(op, "outputs.dpred", dpred, "pred", pred);
    detail::check_alias(op, "outputs.dpred", dpred, "target", target);
    detail::check_disjoint(op, "outputs.dpred", detail::span_of(dpred), "pos_weight",
                           detail::span_of(pos_weight));
  }
  detail::check_disjoint(op, "outputs.loss", detail::span_of(loss), "pred", detail::span_of(pred));
  detail::check_disjoint(op, "outputs.loss", detail::span_of(loss), "target",
                         detail::span_of(target));
  detail::check_disjoint(op, "outputs.loss", detail::span_of(loss), "pos_weight",
                         detail::span_of(pos_weight));
  if (has_grad)
    detail::check_disjoint(op, "outputs.loss", detail::span_of(loss), "outputs.dpred",
                           detail::span_of(dpred));

  const std::int64_t rows = pred.rows;
  const std::int64_t cols = pred.cols;
  const bool through_workspace = reduces_rows(reduction);
  detail::LossScratch scratch{};
  if (through_workspace) {
    detail::check_disjoint(op, "outputs.loss", detail::span_of(loss), "workspace",
                           detail::span_of(workspace));
    if (has_grad)
      detail::check_disjoint(op, "outputs.dpred", detail::span_of(dpred), "workspace",
                             detail::span_of(workspace));
    scratch = detail::prepare_loss_workspace(op, "elementwise_loss_workspace_bytes", workspace,
                                             rows, stream);
  }

  // g: the weight of one element's loss in the reduced loss.
  const double elements = static_cast<double>(rows) * static_cast<double>(cols);
  double weight = 1.0;
  if (reduction == Reduction::mean) weight = elements > 0 ? 1.0 / elements : 0.0;
  if (reduction == Reduction::per_sample || reduction == Reduction::per_sample_sum) {
    weight = cols > 0 ? 1.0 / static_cast<double>(cols) : 0.0;
  }

  const ElementwiseLossMode mode = reduction == Reduction::none ? ElementwiseLossMode::elements
                                   : reduction == Reduction::per_sample
                                       ? ElementwiseLossMode::row_means
                                       : ElementwiseLossMode::row_partials;
  const bool row_kernel_needed = rows > 0 && (cols > 0 || mode != ElementwiseLossMode::elements);
  if (row_kernel_needed) {
    const detail::ElementwiseLossPolicy<T, Loss> policy{
        {pred.data, target.data, has_grad ? dpred.data : nullptr, loss.data, scratch.row_partials,
         rows, cols, pred.ld, target.ld, dpred.ld, loss.ld, mode,
         static_cast<float>(grad_scale * weight)},
        loss_fn};
    detail::launch_stream_rows(op, policy, stream);
  }
  if (through_workspace) {
    detail::launch_loss_reduce(scratch.row_partials, rows, static_cast<float>(weight), nullptr,
                               scratch.block_sums, loss.data, stream);
  }
}

}  // namespace

std::size_t elementwise_loss_workspace_bytes(std::int64_t rows) {
  return detail::loss_workspace_bytes(rows);
}

template <class T>
void binary_cross_entropy_with_logits(nondeduced_t<MatrixView<const T>> pred,
                                      nondeduced_t<MatrixView<const T>> target,
                                      const ElementwiseLossOutputs<T>& outputs,
                                      const Workspace& workspace,
                                      const ElementwiseLossOptions& options,
                                      VectorView<const float> pos_weight, cudaStream_t stream) {
  const char* op = "binary_cross_entropy_with_logits";
  detail::check_view(op, "pred", pred);
  detail::check_view(op, "pos_weight", pos_weight);
  if (!pos_weight.empty() && pos_weight.size != pred.cols) {
    throw InvalidArgument(op, "pos_weight",
                          "size = " + std::to_string(pos_weight.size) +
                              " is not pred's cols = " + std::to_string(pred.cols) +
                              " (one weight per column, or empty for none)");
  }
  run_elementwise_loss(
      op, pred, target, outputs, options.reduction, options.grad_scale, workspace, pos_weight,
      detail::BceWithLogitsLoss{pos_weight.empty() ? nullptr : pos_weight.data}, stream);
}

template <class T>
void binary_cross_entropy(nondeduced_t<MatrixView<const T>> pred,
                          nondeduced_t<MatrixView<const T>> target,
                          const ElementwiseLossOutputs<T>& outputs, const Workspace& workspace,
                          const BinaryCrossEntropyOptions& options, cudaStream_t stream) {
  const char* op = "binary_cross_entropy";
  if (!(options.eps > 0.0f && options.eps < 0.5f)) {
    throw InvalidArgument(op, "options.eps",
                          "eps = " + detail::format_number(options.eps) + " is not in (0, 0.5)");
  }
  run_elementwise_loss(op, pred, target, outputs, options.reduction, options.grad_scale, workspace,
                       VectorView<const float>{}, detail::BceLoss{options.eps}, stream);
}

template <class T>
void mse_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
              const ElementwiseLossOutputs<T>& outputs, const Workspace& workspace,
              const ElementwiseLossOptions& options, cudaStream_t stream) {
  run_elementwise_loss("mse_loss", pred, target, outputs, options.reduction, options.grad_scale,
                       workspace, VectorView<const float>{}, detail::MseLoss{}, stream);
}

template <class T>
void mae_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
              const ElementwiseLossOutputs<T>& outputs, const Workspace& workspace,
              const ElementwiseLossOptions& options, cudaStream_t stream) {
  run_elementwise_loss("mae_loss", pred, target, outputs, options.reduction, options.grad_scale,
                       workspace, VectorView<const float>{}, detail::MaeLoss{}, stream);
}

template <class T>
void huber_loss(nondeduced_t<MatrixView<const T>> pred, nondeduced_t<MatrixView<const T>> target,
                const ElementwiseLossOutputs<T>& outputs, const Workspace& workspace,
                const HuberLossOptions& options, cudaStream_t stream) {
  const char* op = "huber_loss";
  if (!(std::isfinite(options.delta) && options.delta > 0.0f)) {
    throw InvalidArgument(
        op, "options.delta",
        "delta = " + detail::format_number(options.delta) + " must be finite and positive");
  }
  run_elementwise_loss(op, pred, target, outputs, options.reduction, options.grad_scale, workspace,
                       VectorView<const float>{}, detail::HuberLoss{options.delta}, stream);
}

#define WARPFUSE_INSTANTIATE_ELEMENTWISE_LOSS(T)                                               \
  template void binary_cross_entropy_with_logits<T>(                                           \
      MatrixView<const T>, MatrixView<const T>, const ElementwiseLossOutputs<T>&,              \
      const Workspace&, const ElementwiseLossOptions&, VectorView<const float>, cudaStream_t); \
  template void binary_cross_entropy<T>(MatrixView<const T>, MatrixView<const T>,              \
                                        const ElementwiseLossOutputs<T>&, const Workspace&,    \
                                        const BinaryCrossEntropyOptions&, cudaStream_t);       \
  template void mse_loss<T>(MatrixView<const T>, MatrixView<const T>,                          \
                            const ElementwiseLossOutputs<T>&, const Workspace&,                \
                            const ElementwiseLossOptions&, cudaStream_t);                      \
  template void mae_loss<T>(MatrixView<const T>, MatrixView<const T>,                          \
                            const ElementwiseLossOutputs<T>&, const Workspace&,                \
                            const ElementwiseLossOptions&, cudaStream_t);                      \
  template void huber_loss<T>(MatrixView<const T>, MatrixView<const T>,                        \
                              const ElementwiseLossOutputs<T>&, const Workspace&,              \
                              const HuberLossOptions&, cudaStream_t);
WARPFUSE_INSTANTIATE_ELEMENTWISE_LOSS(float)
WARPFUSE_INSTANTIATE_ELEMENTWISE_LOSS(__half)
WARPFUSE_INSTANTIATE_ELEMENTWISE_LOSS(__nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_ELEMENTWISE_LOSS

}  // namespace warpfuse
