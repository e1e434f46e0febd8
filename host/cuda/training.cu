// warpfuse host — the training loop's device-side bookkeeping (include/warpfuse/training.h,
// kernels/training.cuh): validation, launches and the explicit instantiations.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "kernels/training.cuh"
#include "warpfuse/error.h"
#include "warpfuse/training.h"

namespace warpfuse {

std::size_t metrics_workspace_bytes(std::int64_t rows) {
  const std::size_t bytes =
      static_cast<std::size_t>(detail::metrics_blocks(rows)) * 3 * sizeof(double);
  return std::max<std::size_t>(
      512, (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment);
}

template <class T, class L>
void accumulate_metrics(const MetricInputs<T, L>& inputs, const MetricOptions& options,
                        TrainingTotals* totals, const Workspace& workspace, cudaStream_t stream) {
  constexpr const char* kOp = "accumulate_metrics";
  detail::check_view(kOp, "inputs.outputs", inputs.outputs);
  const std::int64_t rows = inputs.outputs.rows;
  const std::int64_t cols = inputs.outputs.cols;
  if (totals == nullptr) throw InvalidArgument(kOp, "totals", "is null");
  const bool needs_targets = options.errors || options.accuracy == AccuracyKind::argmax_onehot ||
                             options.accuracy == AccuracyKind::threshold;
  if (options.accuracy != AccuracyKind::none && options.accuracy != AccuracyKind::argmax_index &&
      options.accuracy != AccuracyKind::argmax_onehot &&
      options.accuracy != AccuracyKind::threshold) {
    throw InvalidArgument(kOp, "options.accuracy", "is not an AccuracyKind");
  }
  if (!std::isfinite(options.threshold)) {
    throw InvalidArgument(kOp, "options.threshold",
                          "must be finite (is " + detail::format_number(options.threshold) + ")");
  }
  if (needs_targets) {
    detail::check_view(kOp, "inputs.targets", inputs.targets);
    if (inputs.targets.rows != rows || inputs.targets.cols != cols) {
      throw InvalidArgument(kOp, "inputs.targets",
                            "must be " + std::to_string(rows) + " x " + std::to_string(cols) +
                                " like the outputs (is " + std::to_string(inputs.targets.rows) +
                                " x " + std::to_string(inputs.targets.cols) + ")");
    }
  }
  if (options.accuracy == AccuracyKind::argmax_index) {
    detail::check_view(kOp, "inputs.labels", inputs.labels);
    if (inputs.labels.size != rows) {
      throw InvalidArgument(kOp, "inputs.labels",
                            "must hold " + std::to_string(rows) + " labels (holds " +
                                std::to_string(inputs.labels.size) + ")");
    }
  }
  detail::check_workspace(kOp, workspace, metrics_workspace_bytes(rows),
                          "metrics_workspace_bytes(rows)");
  const detail::ByteSpan totals_span{
      reinterpret_cast<std::uintptr_t>(totals),
      reinterpret_cast<std::uintptr_t>(totals) + sizeof(TrainingTotals)};
  detail::check_disjoint(kOp, "totals", totals_span, "workspace", detail::span_of(workspace));
  detail::check_disjoint(kOp, "totals", totals_span, "inputs.outputs",
                         detail::span_of(inputs.outputs));
  if (needs_targets) {
    detail::check_disjoint(kOp, "totals", totals_span, "inputs.targets",
                           detail::span_of(inputs.targets));
  }

  auto* const partials = static_cast<double*>(workspace.data);
  const std::int64_t blocks = detail::metrics_blocks(rows);
  detail::MetricsArgs<T, L> args{};
  args.outputs = inputs.outputs.data;
  args.out_ld = inputs.outputs.ld;
  args.targets = needs_targets ? inputs.targets.data : nullptr;
  args.target_ld = needs_targets ? inputs.targets.ld : 0;
  args.labels = options.accuracy == AccuracyKind::argmax_index ? inputs.labels.data : nullptr;
  args.rows = rows;
  args.cols = cols;
  args.accuracy = options.accuracy;
  args.threshold = options.threshold;
  args.errors = options.errors ? 1 : 0;
  detail::launch({dim3(static_cast<unsigned>(blocks)), dim3(detail::kMetricsThreads), 0, stream},
                 "metrics_partials_kernel", detail::metrics_partials_kernel<T, L>, args, partials);
  detail::MetricsFinishArgs finish{};
  finish.partials = partials;
  finish.blocks = blocks;
  finish.batch_loss = inputs.batch_loss;
  finish.rows = rows;
  finish.cols = cols;
  finish.accuracy = args.accuracy;
  finish.errors = args.errors;
  finish.advance = options.advance ? 1 : 0;
  detail::launch({dim3(1), dim3(detail::kMetricsThreads), 0, stream}, "metrics_finish_kernel",
                 detail::metrics_finish_kernel, finish, totals);
}

void reset_training_totals(TrainingTotals* totals, bool keep_global_step, cudaStream_t stream) {
  if (totals == nullptr) throw InvalidArgument("reset_training_totals", "totals", "is null");
  const std::size_t zeroed =
      keep_global_step ? offsetof(TrainingTotals, global_step) : sizeof(TrainingTotals);
  WARPFUSE_CUDA_CHECK(cudaMemsetAsync(totals, 0, zeroed, stream));
  WARPFUSE_CUDA_CHECK(cudaMemsetAsync(&totals->first_nonfinite_step, 0xFF,
                                      sizeof(totals->first_nonfinite_step), stream));
}

template <class T>
void gather_rows(nondeduced_t<MatrixView<const T>> src, VectorView<const std::int64_t> indices,
                 const std::int64_t* device_offset, MatrixView<T> dst, cudaStream_t stream) {
  constexpr const char* kOp = "gather_rows";
  detail::check_view(kOp, "src", src);
  detail::check_view(kOp, "dst", dst);
  detail::check_view(kOp, "indices", indices);
  if (dst.cols != src.cols) {
    throw InvalidArgument(
        kOp, "dst",
        "has " + std::to_string(dst.cols) + " columns, src " + std::to_string(src.cols));
  }
  detail::check_disjoint(kOp, "dst", detail::span_of(dst), "src", detail::span_of(src));
  detail::check_disjoint(kOp, "dst", detail::span_of(dst), "indices", detail::span_of(indices));
  if (device_offset != nullptr) {
    const auto at = reinterpret_cast<std::uintptr_t>(device_offset);
    detail::check_disjoint(kOp, "dst", detail::span_of(dst), "device_offset",
                           detail::ByteSpan{at, at + sizeof(std::int64_t)});
  }
  if (dst.empty()) return;
  // 16-byte words when every row of both starts 16-byte aligned and is whole words long.
  const auto row_bytes = static_cast<std::int64_t>(sizeof(T)) * src.cols;
  const bool words16 = row_bytes % 16 == 0 &&
                       reinterpret_cast<std::uintptr_t>(src.data) % 16 == 0 &&
                       reinterpret_cast<std::uintptr_t>(dst.data) % 16 == 0 &&
                       (src.ld * static_cast<std::int64_t>(sizeof(T))) % 16 == 0 &&
                       (dst.ld * static_cast<std::int64_t>(sizeof(T))) % 16 == 0;
  const auto run = [&](auto word) {
    using Word = decltype(word);
    constexpr auto kPer = static_cast<std::int64_t>(sizeof(Word) / sizeof(T));
    const std::int64_t words = src.cols / kPer;
    const auto kernel = detail::gather_rows_kernel<Word>;
    const std::int64_t work = dst.rows * words;
    const std::int64_t work_blocks = (work + detail::kGatherThreads - 1) / detail::kGatherThreads;
    detail::launch(detail::wave_config(kernel, std::max<std::int64_t>(work_blocks, 1),
                                       dim3(detail::kGatherThreads), 0, stream),
                   "gather_rows_kernel", kernel, reinterpret_cast<const Word*>(src.data), src.rows,
                   src.ld / kPer, indices.data, indices.size, device_offset,
                   reinterpret_cast<Word*>(dst.data), dst.rows, dst.ld / kPer, words);
  };
  if (words16) {
    run(uint4{});
  } else {
    run(T{});
  }
}

#define WARPFUSE_INSTANTIATE_METRICS(T, L)                                                \
  template void accumulate_metrics<T, L>(const MetricInputs<T, L>&, const MetricOptions&, \
                                         TrainingTotals*, const Workspace&, cudaStream_t);
WARPFUSE_INSTANTIATE_METRICS(float, std::int32_t)
WARPFUSE_INSTANTIATE_METRICS(float, std::int64_t)
WARPFUSE_INSTANTIATE_METRICS(__half, std::int32_t)
WARPFUSE_INSTANTIATE_METRICS(__half, std::int64_t)
WARPFUSE_INSTANTIATE_METRICS(__nv_bfloat16, std::int32_t)
WARPFUSE_INSTANTIATE_METRICS(__nv_bfloat16, std::int64_t)
#undef WARPFUSE_INSTANTIATE_METRICS

#define WARPFUSE_INSTANTIATE_GATHER(T)                                              \
  template void gather_rows<T>(MatrixView<const T>, VectorView<const std::int64_t>, \
                               const std::int64_t*, MatrixView<T>, cudaStream_t);
WARPFUSE_INSTANTIATE_GATHER(float)
WARPFUSE_INSTANTIATE_GATHER(__half)
WARPFUSE_INSTANTIATE_GATHER(__nv_bfloat16)
WARPFUSE_INSTANTIATE_GATHER(std::int32_t)
WARPFUSE_INSTANTIATE_GATHER(std::int64_t)
#undef WARPFUSE_INSTANTIATE_GATHER

}  // namespace warpfuse
