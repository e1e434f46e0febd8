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

#include "host/cuda/cross_entropy_internal.h"
#include "host/cuda/launch.h"
#include "host/cuda/loss_internal.h"
#include "host/cuda/rows.h"
#include "kernels/cross_entropy.cuh"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/error.h"

namespace warpfuse {
namespace detail {

void check_cross_entropy_options(const char* op, const CrossEntropyOptions& options) {
  if (!(options.label_smoothing >= 0.0f && options.label_smoothing < 1.0f)) {
    throw InvalidArgument(op, "options.label_smoothing",
                          "label_smoothing = " + detail::format_number(options.label_smoothing) +
                              " must be in [0, 1)");
  }
  if (!(options.z_loss >= 0.0f) || !std::isfinite(options.z_loss)) {
    throw InvalidArgument(
        op, "options.z_loss",
        "z_loss = " + detail::format_number(options.z_loss) + " must be finite and non-negative");
  }
  if (!std::isfinite(options.grad_scale)) {
    throw InvalidArgument(op, "options.grad_scale", "grad_scale must be finite");
  }
  if (!(options.logit_softcap >= 0.0f) || !std::isfinite(options.logit_softcap)) {
    throw InvalidArgument(op, "options.logit_softcap",
                          "logit_softcap = " + detail::format_number(options.logit_softcap) +
                              " must be finite and non-negative (0: no cap)");
  }
  if (!(options.logit_scale > 0.0f) || !std::isfinite(options.logit_scale)) {
    throw InvalidArgument(op, "options.logit_scale",
                          "logit_scale = " + detail::format_number(options.logit_scale) +
                              " must be finite and positive");
  }
  const int reduction = static_cast<int>(options.reduction);
  if (reduction < 0 || reduction > static_cast<int>(CrossEntropyReduction::sum)) {
    throw InvalidArgument(op, "options.reduction",
                          "reduction = " + std::to_string(reduction) +
                              " is not a CrossEntropyReduction (none, mean, sum)");
  }
  detail::check_row_strategy(op, options.strategy);
}

LogitTransform logit_transform_of(const CrossEntropyOptions& options) {
  const bool softcap = options.logit_softcap > 0.0f;
  return LogitTransform{softcap || options.logit_scale != 1.0f, options.logit_softcap,
                        options.logit_scale,
                        softcap ? options.logit_scale / options.logit_softcap : 0.0f,
                        softcap ? 1.0f / options.logit_softcap : 0.0f};
}

void launch_cross_entropy_reduce(CrossEntropyReduction reduction, bool probabilities,
                                 std::int64_t rows, const LossScratch& scratch, float* loss,
                                 cudaStream_t stream) {
  if (reduction == CrossEntropyReduction::sum) {
    launch_loss_reduce(scratch.row_partials, rows, 1.0f, nullptr, scratch.block_sums, loss, stream);
  } else if (reduction == CrossEntropyReduction::mean) {
    if (probabilities) {
      const float scale = rows > 0 ? 1.0f / static_cast<float>(rows) : 0.0f;
      launch_loss_reduce(scratch.row_partials, rows, scale, nullptr, scratch.block_sums, loss,
                         stream);
    } else {
      launch_loss_reduce(scratch.row_partials, rows, 1.0f, &scratch.header->denominator,
                         scratch.block_sums, loss, stream);
    }
  }
}

template <class T>
LossScratch check_cross_entropy_outputs(
    const char* op, MatrixView<const T> logits, const CrossEntropyOutputs<T>& outputs,
    const Workspace& workspace, const CrossEntropyOptions& options, VectorView<const float> weight,
    const char* targets_arg, ByteSpan targets_span, bool targets_is_index, cudaStream_t stream) {
  detail::check_view(op, "logits", logits);
  if (logits.rows > 0 && logits.cols == 0) {
    throw InvalidArgument(op, "logits", "cols = 0: there must be at least one class");
  }
  check_cross_entropy_options(op, options);
  detail::check_view(op, "weight", weight);
  if (weight.size != 0 && weight.size != logits.cols) {
    throw InvalidArgument(op, "weight",
                          "size = " + std::to_string(weight.size) + " but logits have " +
                              std::to_string(logits.cols) + " classes");
  }
  // The fp32 outputs: their sizes, and no byte shared with any other argument.
  const MatrixView<T>& dlogits = outputs.dlogits;
  const bool gradient = dlogits.data != nullptr || !dlogits.empty();
  if (gradient) {
    detail::check_view(op, "outputs.dlogits", dlogits);
    detail::check_same_shape(op, "outputs.dlogits", dlogits, "logits", logits);
    detail::check_alias(op, "outputs.dlogits", dlogits, "logits", logits);
  }
  detail::check_view(op, "outputs.loss", outputs.loss);
  const std::int64_t loss_size = options.reduction == CrossEntropyReduction::none ? logits.rows : 1;
  if (outputs.loss.size != loss_size) {
    throw InvalidArgument(op, "outputs.loss",
                          "size = " + std::to_string(outputs.loss.size) + " is not the " +
                              std::to_string(loss_size) + " that reduction " +
                              to_string(options.reduction) + " writes for " +
                              std::to_string(logits.rows) + " rows");
  }
  // The optional per-row outputs: rows values each when given.
  const VectorView<float> per_row[] = {outputs.logsumexp, outputs.z_loss_term, outputs.correct,
                                       outputs.entropy};
  const char* const per_row_names[] = {"outputs.logsumexp", "outputs.z_loss_term",
                                       "outputs.correct", "outputs.entropy"};
  for (int i = 0; i < 4; ++i) {
    if (per_row[i].data == nullptr && per_row[i].size == 0) continue;
    detail::check_view(op, per_row_names[i], per_row[i]);
    if (per_row[i].size != logits.rows) {
      throw InvalidArgument(op, per_row_names[i],
                            "size = " + std::to_string(per_row[i].size) + " but logits have " +
                                std::to_string(logits.rows) + " rows");
    }
  }
  if (!targets_is_index && !outputs.correct.empty()) {
    throw InvalidArgument(op, "outputs.correct",
                          "argmax == target needs class-index targets, not probabilities");
  }
  constexpr int kFp32Outputs = 5;
  const detail::ByteSpan fp32_outputs[kFp32Outputs] = {
      detail::span_of(outputs.loss), detail::span_of(per_row[0]), detail::span_of(per_row[1]),
      detail::span_of(per_row[2]), detail::span_of(per_row[3])};
  const char* const fp32_names[kFp32Outputs] = {"outputs.loss", per_row_names[0], per_row_names[1],
                                                per_row_names[2], per_row_names[3]};
  for (int i = 0; i < kFp32Outputs; ++i) {
    detail::check_disjoint(op, fp32_names[i], fp32_outputs[i], "logits", detail::span_of(logits));
    detail::check_disjoint(op, fp32_names[i], fp32_outputs[i], "weight", detail::span_of(weight));
    detail::check_disjoint(op, fp32_names[i], fp32_outputs[i], "workspace",
                           detail::span_of(workspace));
    detail::check_disjoint(op, fp32_names[i], fp32_outputs[i], targets_arg, targets_span);
    if (gradient) {
      detail::check_disjoint(op, fp32_names[i], fp32_outputs[i], "outputs.dlogits",
                             detail::span_of(dlogits));
    }
  }
  for (int i = 0; i < kFp32Outputs; ++i) {
    for (int j = i + 1; j < kFp32Outputs; ++j) {
      detail::check_disjoint(op, fp32_names[i], fp32_outputs[i], fp32_names[j], fp32_outputs[j]);
    }
  }
  if (gradient) {
    detail::check_disjoint(op, "outputs.dlogits", detail::span_of(dlogits), "workspace",
                           detail::span_of(workspace));
    detail::check_disjoint(op, "outputs.dlogits", detail::span_of(dlogits), "weight",
                           detail::span_of(weight));
    if (targets_is_index) {
      detail::check_disjoint(op, "outputs.dlogits", detail::span_of(dlogits), targets_arg,
                             targets_span);
    }
  }
  return detail::prepare_loss_workspace(op, "cross_entropy_workspace_bytes", workspace, logits.rows,
                                        stream);
}

template <class T, class Targets>
void launch_cross_entropy_rows(const char* op, MatrixView<const T> logits, Targets targets,
                               const CrossEntropyOutputs<T>& outputs,
                               const CrossEntropyOptions& options, VectorView<const float> weight,
                               float* row_loss, float grad_scale, bool scale_from_header,
                               LossHeader* header, std::int64_t first_row, cudaStream_t stream) {
  if (logits.rows == 0) return;
  const auto optional_data = [](VectorView<float> v) { return v.empty() ? nullptr : v.data; };
  const bool gradient = outputs.dlogits.data != nullptr;
  using Policy = CrossEntropyPolicy<T, Targets>;
  const RowPlan plan = row_plan<Policy>(op, options.strategy, logits.rows, logits.cols);
  const CrossEntropyArgs<T, Targets> args{
      logits.data, logits.rows, logits.cols, logits.ld, targets,
      weight.size > 0 ? weight.data : nullptr, options.label_smoothing, options.z_loss,
      // The division the kernels need, done once (as the device would: IEEE fp32).
      options.label_smoothing / static_cast<float>(logits.cols), grad_scale,
      logit_transform_of(options), scale_from_header, row_loss, optional_data(outputs.logsumexp),
      gradient ? outputs.dlogits.data : nullptr, outputs.dlogits.ld, header,
      optional_data(outputs.z_loss_term), optional_data(outputs.correct),
      optional_data(outputs.entropy), first_row};
  launch_rows(op, plan, Policy{args}, stream);
}

#define WARPFUSE_INSTANTIATE_CHECK_OUTPUTS(T)                                            \
  template LossScratch check_cross_entropy_outputs<T>(                                   \
      const char*, MatrixView<const T>, const CrossEntropyOutputs<T>&, const Workspace&, \
      const CrossEntropyOptions&, VectorView<const float>, const char*, ByteSpan, bool,  \
      cudaStream_t);
WARPFUSE_INSTANTIATE_CHECK_OUTPUTS(float)
WARPFUSE_INSTANTIATE_CHECK_OUTPUTS(__half)
WARPFUSE_INSTANTIATE_CHECK_OUTPUTS(__nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_CHECK_OUTPUTS

#define WARPFUSE_INSTANTIATE_ROWS(T, Targets)                                                \
  template void launch_cross_entropy_rows<T, Targets>(                                       \
      const char*, MatrixView<const T>, Targets, const CrossEntropyOutputs<T>&,              \
      const CrossEntropyOptions&, VectorView<const float>, float*, float, bool, LossHeader*, \
      std::int64_t, cudaStream_t);
#define WARPFUSE_INSTANTIATE_ROWS_ALL(T)                   \
  WARPFUSE_INSTANTIATE_ROWS(T, IndexTargets<std::int32_t>) \
  WARPFUSE_INSTANTIATE_ROWS(T, IndexTargets<std::int64_t>) \
  WARPFUSE_INSTANTIATE_ROWS(T, ProbabilityTargets<T>)
WARPFUSE_INSTANTIATE_ROWS_ALL(float)
WARPFUSE_INSTANTIATE_ROWS_ALL(__half)
WARPFUSE_INSTANTIATE_ROWS_ALL(__nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_ROWS_ALL
#undef WARPFUSE_INSTANTIATE_ROWS

}  // namespace detail
namespace {

/// Everything but the targets' own checks and the prepare kernel, shared by both target kinds.
template <class T, class Targets>
void run(const char* op, MatrixView<const T> logits, Targets targets,
         const CrossEntropyOutputs<T>& outputs, const CrossEntropyOptions& options,
         VectorView<const float> weight, const detail::LossScratch& scratch, cudaStream_t stream) {
  const std::int64_t rows = logits.rows;
  float* row_loss =
      options.reduction == CrossEntropyReduction::none ? outputs.loss.data : scratch.row_partials;
  const bool mean = options.reduction == CrossEntropyReduction::mean;
  // The divisions the kernels need, done once (as the device would: IEEE fp32).
  const float grad_scale = mean && Targets::kProbabilities && rows > 0
                               ? options.grad_scale / static_cast<float>(rows)
                               : options.grad_scale;
  detail::launch_cross_entropy_rows(op, logits, targets, outputs, options, weight, row_loss,
                                    grad_scale, mean && !Targets::kProbabilities, scratch.header, 0,
                                    stream);
  detail::launch_cross_entropy_reduce(options.reduction, Targets::kProbabilities, rows, scratch,
                                      outputs.loss.data, stream);
}

}  // namespace

RowStrategy cross_entropy_strategy_for(std::int64_t classes, DType dtype,
                                       CrossEntropyTargets targets, std::int64_t rows) {
  return detail::choose_row_strategy(classes, detail::dtype_bytes(dtype),
                                     targets == CrossEntropyTargets::index ? 1 : 2, rows);
}

std::int64_t cross_entropy_block_max_cols(DType dtype, CrossEntropyTargets targets) {
  return detail::block_max_cols(detail::dtype_bytes(dtype),
                                targets == CrossEntropyTargets::index ? 1 : 2);
}

namespace {

template <class T, class Index>
void cross_entropy_index(MatrixView<const T> logits, VectorView<const Index> targets,
                         const CrossEntropyOutputs<T>& outputs, const Workspace& workspace,
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
      detail::check_cross_entropy_outputs(op, logits, outputs, workspace, options, weight,
                                          "targets", detail::span_of(targets), true, stream);
  // The mean's denominator (and W), before the main kernel writes any gradient.
  detail::launch_cross_entropy_prepare(
      detail::IndexCountedWeight<Index>{targets.data, logits.cols,
                                        static_cast<long long>(options.ignore_index),
                                        weight.size > 0 ? weight.data : nullptr},
      logits.rows, logits.cols, weight.size > 0 ? weight.data : nullptr, options.grad_scale,
      scratch, stream);
  run(op, logits, detail::IndexTargets<Index>{targets.data, options.ignore_index}, outputs, options,
      weight, scratch, stream);
}

template <class Index>
void check_targets(const Workspace& workspace, VectorView<const Index> targets,
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

}  // namespace

const char* to_string(CrossEntropyReduction reduction) {
  switch (reduction) {
    case CrossEntropyReduction::none:
      return "none";
    case CrossEntropyReduction::mean:
      return "mean";
    case CrossEntropyReduction::sum:
      return "sum";
  }
  return "unknown";
}

std::size_t cross_entropy_workspace_bytes(std::int64_t rows) {
  return detail::loss_workspace_bytes(rows);
}

template <class T, class Index>
void cross_entropy(nondeduced_t<MatrixView<const T>> logits, VectorView<Index> targets,
                   const CrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                   const CrossEntropyOptions& options, VectorView<const float> weight,
                   cudaStream_t stream) {
  using I = std::remove_const_t<Index>;
  static_assert(std::is_same_v<I, std::int32_t> || std::is_same_v<I, std::int64_t>,
                "cross_entropy: class indices are std::int32_t or std::int64_t");
  cross_entropy_index<T, I>(logits, VectorView<const I>(targets), outputs, workspace, options,
                            weight, stream);
}

template <class T>
void cross_entropy(nondeduced_t<MatrixView<const T>> logits,
                   nondeduced_t<MatrixView<const T>> target_probabilities,
                   const CrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                   const CrossEntropyOptions& options, VectorView<const float> weight,
                   cudaStream_t stream) {
  const char* op = "cross_entropy";
  detail::check_view(op, "target_probabilities", target_probabilities);
  detail::check_same_shape(op, "target_probabilities", target_probabilities, "logits", logits);
  if (outputs.dlogits.data != nullptr) {
    detail::check_alias(op, "outputs.dlogits", outputs.dlogits, "target_probabilities",
                        target_probabilities);
  }
  const detail::LossScratch scratch = detail::check_cross_entropy_outputs(
      op, logits, outputs, workspace, options, weight, "target_probabilities",
      detail::span_of(target_probabilities), false, stream);
  run(op, logits, detail::ProbabilityTargets<T>{target_probabilities.data, target_probabilities.ld},
      outputs, options, weight, scratch, stream);
}

template <class Index>
void check_cross_entropy_targets(const Workspace& workspace, VectorView<Index> targets,
                                 std::int64_t num_classes, cudaStream_t stream) {
  using I = std::remove_const_t<Index>;
  check_targets<I>(workspace, VectorView<const I>(targets), num_classes, stream);
}

#define WARPFUSE_INSTANTIATE_CROSS_ENTROPY_INDEX(T, Index)                                     \
  template void cross_entropy<T, Index>(                                                       \
      MatrixView<const T>, VectorView<Index>, const CrossEntropyOutputs<T>&, const Workspace&, \
      const CrossEntropyOptions&, VectorView<const float>, cudaStream_t);
#define WARPFUSE_INSTANTIATE_CROSS_ENTROPY(T)                                                    \
  WARPFUSE_INSTANTIATE_CROSS_ENTROPY_INDEX(T, std::int32_t)                                      \
  WARPFUSE_INSTANTIATE_CROSS_ENTROPY_INDEX(T, const std::int32_t)                                \
  WARPFUSE_INSTANTIATE_CROSS_ENTROPY_INDEX(T, std::int64_t)                                      \
  WARPFUSE_INSTANTIATE_CROSS_ENTROPY_INDEX(T, const std::int64_t)                                \
  template void cross_entropy<T>(                                                                \
      MatrixView<const T>, MatrixView<const T>, const CrossEntropyOutputs<T>&, const Workspace&, \
      const CrossEntropyOptions&, VectorView<const float>, cudaStream_t);
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(float)
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(__half)
WARPFUSE_INSTANTIATE_CROSS_ENTROPY(__nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_CROSS_ENTROPY
#undef WARPFUSE_INSTANTIATE_CROSS_ENTROPY_INDEX

template void check_cross_entropy_targets<std::int32_t>(const Workspace&, VectorView<std::int32_t>,
                                                        std::int64_t, cudaStream_t);
template void check_cross_entropy_targets<const std::int32_t>(const Workspace&,
                                                              VectorView<const std::int32_t>,
                                                              std::int64_t, cudaStream_t);
template void check_cross_entropy_targets<std::int64_t>(const Workspace&, VectorView<std::int64_t>,
                                                        std::int64_t, cudaStream_t);
template void check_cross_entropy_targets<const std::int64_t>(const Workspace&,
                                                              VectorView<const std::int64_t>,
                                                              std::int64_t, cudaStream_t);

}  // namespace warpfuse
