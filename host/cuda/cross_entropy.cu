// warpfuse host — cross-entropy: validation, strategy choice, launches (math and semantics in
// include/warpfuse/cross_entropy.h; kernels in kernels/cross_entropy.cuh).
//
// Launch sequence on the caller's stream, all into the caller's workspace:
//   1. reset the workspace status (two memsets);
//   2. index targets: cross_entropy_prepare_kernel (one block) sums the class weights and the
//      mean's denominator, which the main kernel needs before it writes any gradient;
//   3. the row engine with CrossEntropyPolicy (warp, block or online; host/cuda/rows.h): per-row
//      loss, lse, and the gradient in the same pass;
//   4. mean or sum: loss_reduce_kernel sums the per-row losses in a fixed order.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "host/cuda/launch.h"
#include "host/cuda/loss_internal.h"
#include "host/cuda/rows.h"
#include "kernels/cross_entropy.cuh"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/error.h"

namespace warpfuse {
namespace {

using detail::LaunchConfig;

void check_options(const char* op, const CrossEntropyOptions& options) {
  if (!(options.label_smoothing >= 0.0f && options.label_smoothing < 1.0f)) {
    throw InvalidArgument(
        op, "options.label_smoothing",
        "label_smoothing = " + std::to_string(options.label_smoothing) + " must be in [0, 1)");
  }
  if (!(options.z_loss >= 0.0f) || !std::isfinite(options.z_loss)) {
    throw InvalidArgument(
        op, "options.z_loss",
        "z_loss = " + std::to_string(options.z_loss) + " must be finite and non-negative");
  }
  if (!std::isfinite(options.grad_scale)) {
    throw InvalidArgument(op, "options.grad_scale", "grad_scale must be finite");
  }
  if (options.reduction != Reduction::none && options.reduction != Reduction::mean &&
      options.reduction != Reduction::sum) {
    throw InvalidArgument(op, "options.reduction",
                          std::string("reduction = ") + to_string(options.reduction) +
                              " is not one of none, mean, sum");
  }
  detail::check_row_strategy(op, options.strategy);
}

/// Everything but the targets' own checks and the prepare kernel, shared by both target kinds.
template <class T, class Targets>
void run(const char* op, MatrixView<const T> logits, Targets targets,
         const CrossEntropyOutputs<T>& outputs, const LossWorkspace& workspace,
         const CrossEntropyOptions& options, VectorView<const float> weight,
         const detail::LossScratch& scratch, cudaStream_t stream) {
  const std::int64_t rows = logits.rows;
  const bool gradient = outputs.dlogits.data != nullptr;
  float* row_loss = options.reduction == Reduction::none ? outputs.loss : scratch.row_partials;
  if (rows > 0) {
    // The divisions the kernels need, done once (as the device would: IEEE fp32).
    const float uniform_mass = options.label_smoothing / static_cast<float>(logits.cols);
    const bool mean = options.reduction == Reduction::mean;
    const bool scale_from_header = mean && !Targets::kProbabilities;
    const float grad_scale = mean && Targets::kProbabilities
                                 ? options.grad_scale / static_cast<float>(rows)
                                 : options.grad_scale;
    using Policy = detail::CrossEntropyPolicy<T, Targets>;
    const detail::RowPlan plan = detail::row_plan<Policy>(op, options.strategy, logits.cols);
    const detail::CrossEntropyArgs<T, Targets> args{logits.data,
                                                    rows,
                                                    logits.cols,
                                                    logits.ld,
                                                    targets,
                                                    weight.size > 0 ? weight.data : nullptr,
                                                    options.label_smoothing,
                                                    options.z_loss,
                                                    uniform_mass,
                                                    grad_scale,
                                                    scale_from_header,
                                                    row_loss,
                                                    outputs.logsumexp,
                                                    gradient ? outputs.dlogits.data : nullptr,
                                                    outputs.dlogits.ld,
                                                    scratch.header};
    detail::launch_rows(op, plan, Policy{args}, stream);
  }
  if (options.reduction == Reduction::sum) {
    detail::launch_loss_reduce(scratch.row_partials, rows, 1.0f, nullptr, scratch.block_sums,
                               outputs.loss, stream);
  } else if (options.reduction == Reduction::mean) {
    if constexpr (Targets::kProbabilities) {
      const float scale = rows > 0 ? 1.0f / static_cast<float>(rows) : 0.0f;
      detail::launch_loss_reduce(scratch.row_partials, rows, scale, nullptr, scratch.block_sums,
                                 outputs.loss, stream);
    } else {
      detail::launch_loss_reduce(scratch.row_partials, rows, 1.0f, &scratch.header->denominator,
                                 scratch.block_sums, outputs.loss, stream);
    }
  }
  static_cast<void>(workspace);
}

/// Checks shared by both target kinds; returns the prepared workspace.
template <class T>
detail::LossScratch check_common(const char* op, MatrixView<const T> logits,
                                 const CrossEntropyOutputs<T>& outputs,
                                 const LossWorkspace& workspace, const CrossEntropyOptions& options,
                                 VectorView<const float> weight, cudaStream_t stream) {
  detail::check_view(op, "logits", logits);
  if (logits.rows > 0 && logits.cols == 0) {
    throw InvalidArgument(op, "logits", "cols = 0: there must be at least one class");
  }
  check_options(op, options);
  detail::check_view(op, "weight", weight);
  if (weight.size != 0 && weight.size != logits.cols) {
    throw InvalidArgument(op, "weight",
                          "size = " + std::to_string(weight.size) + " but logits have " +
                              std::to_string(logits.cols) + " classes");
  }
  const bool loss_needed = options.reduction != Reduction::none || logits.rows > 0;
  if (outputs.loss == nullptr && loss_needed) {
    throw InvalidArgument(op, "outputs.loss", "is null");
  }
  if (outputs.dlogits.data != nullptr || !outputs.dlogits.empty()) {
    detail::check_view(op, "outputs.dlogits", outputs.dlogits);
    detail::check_same_shape(op, "outputs.dlogits", outputs.dlogits, "logits", logits);
    detail::check_alias(op, "outputs.dlogits", outputs.dlogits, "logits", logits);
  }
  return detail::prepare_loss_workspace(op, workspace, logits.rows, stream);
}

}  // namespace

RowStrategy cross_entropy_strategy_for(std::int64_t classes, DType dtype,
                                       CrossEntropyTargets targets) {
  return detail::choose_row_strategy(classes, detail::dtype_bytes(dtype),
                                     targets == CrossEntropyTargets::index ? 1 : 2);
}

std::int64_t cross_entropy_block_max_cols(DType dtype, CrossEntropyTargets targets) {
  return detail::block_max_cols(detail::dtype_bytes(dtype),
                                targets == CrossEntropyTargets::index ? 1 : 2);
}

template <class T, class Index>
void cross_entropy(MatrixView<const T> logits, VectorView<const Index> targets,
                   const CrossEntropyOutputs<T>& outputs, const LossWorkspace& workspace,
                   const CrossEntropyOptions& options, VectorView<const float> weight,
                   cudaStream_t stream) {
  const char* op = "cross_entropy";
  detail::check_view(op, "targets", targets);
  if (targets.size != logits.rows) {
    throw InvalidArgument(op, "targets",
                          "size = " + std::to_string(targets.size) + " but logits have " +
                              std::to_string(logits.rows) + " rows");
  }
  const detail::LossScratch scratch =
      check_common(op, logits, outputs, workspace, options, weight, stream);
  // The mean's denominator: over many rows, a first stage spread over reduce_blocks(rows) blocks
  // (the same fixed chunking as the loss reduction), then the one-block prepare kernel.
  const float* class_weight = weight.size > 0 ? weight.data : nullptr;
  const auto ignore_index = static_cast<long long>(options.ignore_index);
  const std::int64_t blocks = detail::reduce_blocks(logits.rows);
  if (blocks > 1) {
    detail::launch(LaunchConfig{dim3(static_cast<unsigned>(blocks)),
                                dim3(detail::kLossReduceThreads), 0, stream},
                   "cross_entropy_denominator_kernel",
                   detail::cross_entropy_denominator_kernel<Index>, targets.data, logits.rows,
                   logits.cols, ignore_index, class_weight, scratch.block_sums);
  }
  detail::launch(LaunchConfig{dim3(1), dim3(detail::kLossReduceThreads), 0, stream},
                 "cross_entropy_prepare_kernel", detail::cross_entropy_prepare_kernel<Index>,
                 targets.data, logits.rows, logits.cols, ignore_index, class_weight,
                 options.grad_scale, blocks > 1 ? scratch.block_sums : nullptr, scratch.header);
  run(op, logits, detail::IndexTargets<Index>{targets.data, options.ignore_index}, outputs,
      workspace, options, weight, scratch, stream);
}

template <class T>
void cross_entropy(MatrixView<const T> logits, MatrixView<const T> target_probabilities,
                   const CrossEntropyOutputs<T>& outputs, const LossWorkspace& workspace,
                   const CrossEntropyOptions& options, VectorView<const float> weight,
                   cudaStream_t stream) {
  const char* op = "cross_entropy";
  detail::check_view(op, "target_probabilities", target_probabilities);
  detail::check_same_shape(op, "target_probabilities", target_probabilities, "logits", logits);
  if (outputs.dlogits.data != nullptr) {
    detail::check_alias(op, "outputs.dlogits", outputs.dlogits, "target_probabilities",
                        target_probabilities);
  }
  const detail::LossScratch scratch =
      check_common(op, logits, outputs, workspace, options, weight, stream);
  run(op, logits, detail::ProbabilityTargets<T>{target_probabilities.data, target_probabilities.ld},
      outputs, workspace, options, weight, scratch, stream);
}

template <class Index>
void check_cross_entropy_targets(const LossWorkspace& workspace, VectorView<const Index> targets,
                                 std::int64_t num_classes, cudaStream_t stream) {
  const LossStatus status = read_loss_status(workspace, stream);
  if (status.bad_rows == 0) return;
  Index target{};
  if (status.first_bad_row >= 0 && status.first_bad_row < targets.size) {
    WARPFUSE_CUDA_CHECK(cudaMemcpy(&target, targets.data + status.first_bad_row, sizeof(Index),
                                   cudaMemcpyDeviceToHost));
  }
  throw InvalidArgument(
      "cross_entropy", "targets",
      std::to_string(status.bad_rows) + " row(s) have a class index outside [0, " +
          std::to_string(num_classes) + ") that is not ignore_index; the first is row " +
          std::to_string(status.first_bad_row) + " with target " +
          std::to_string(static_cast<long long>(target)));
}

#define WARPFUSE_INSTANTIATE_CROSS_ENTROPY(T, Index)                               \
  template void cross_entropy<T, Index>(                                           \
      MatrixView<const T>, VectorView<const Index>, const CrossEntropyOutputs<T>&, \
      const LossWorkspace&, const CrossEntropyOptions&, VectorView<const float>, cudaStream_t);
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(float, std::int32_t)
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(float, std::int64_t)
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(__half, std::int32_t)
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(__half, std::int64_t)
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(__nv_bfloat16, std::int32_t)
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(__nv_bfloat16, std::int64_t)
#undef WARPFUSE_INSTANTIATE_CROSS_ENTROPY

template void cross_entropy<float>(MatrixView<const float>, MatrixView<const float>,
                                   const CrossEntropyOutputs<float>&, const LossWorkspace&,
                                   const CrossEntropyOptions&, VectorView<const float>,
                                   cudaStream_t);
template void cross_entropy<__half>(MatrixView<const __half>, MatrixView<const __half>,
                                    const CrossEntropyOutputs<__half>&, const LossWorkspace&,
                                    const CrossEntropyOptions&, VectorView<const float>,
                                    cudaStream_t);
template void cross_entropy<__nv_bfloat16>(MatrixView<const __nv_bfloat16>,
                                           MatrixView<const __nv_bfloat16>,
                                           const CrossEntropyOutputs<__nv_bfloat16>&,
                                           const LossWorkspace&, const CrossEntropyOptions&,
                                           VectorView<const float>, cudaStream_t);
template void check_cross_entropy_targets<std::int32_t>(const LossWorkspace&,
                                                        VectorView<const std::int32_t>,
                                                        std::int64_t, cudaStream_t);
template void check_cross_entropy_targets<std::int64_t>(const LossWorkspace&,
                                                        VectorView<const std::int64_t>,
                                                        std::int64_t, cudaStream_t);

}  // namespace warpfuse
