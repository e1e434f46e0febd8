// warpfuse host — vocabulary-parallel cross-entropy: validation and launches (semantics in
// include/warpfuse/cross_entropy_shard.h; kernels in kernels/cross_entropy_shard.cuh).
//
// Finish's launch sequence on the caller's stream, into the caller's workspace (as cross_entropy):
//   1. reset the workspace status;
//   2. mean: the denominator from the combined statistics (cross_entropy_denominator_kernel over
//      many rows, then cross_entropy_prepare_kernel: the same fixed-order reductions as
//      cross_entropy, over the combined w_t);
//   3. cross_entropy_shard_rows_kernel: per-row loss, lse, z-loss term, entropy;
//   4. with dlogits: the row engine with ShardGradPolicy over the shard's logits;
//   5. mean or sum: loss_reduce_kernel over the per-row losses.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "host/cuda/cross_entropy_internal.h"
#include "host/cuda/launch.h"
#include "host/cuda/loss_internal.h"
#include "host/cuda/rows.h"
#include "kernels/cross_entropy_shard.cuh"
#include "warpfuse/cross_entropy_shard.h"
#include "warpfuse/error.h"

namespace warpfuse {
namespace {

using detail::LaunchConfig;

static_assert(kCrossEntropyShardStats == detail::kShardStats,
              "the public stats width must match the kernels' layout");

/// Threads per block of the one-thread-per-row kernels.
constexpr unsigned kRowThreads = 256;

unsigned row_kernel_blocks(std::int64_t rows) {
  const std::int64_t blocks = (rows + kRowThreads - 1) / kRowThreads;
  return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

/// The checks of the shard's place, its targets and weights, shared by stats and finish.
template <class T, class Index>
void check_shard(const char* op, MatrixView<const T> logits, VectorView<const Index> targets,
                 const CrossEntropyShard& shard, VectorView<const float> weight) {
  detail::check_view(op, "logits", logits);
  if (logits.rows > 0 && logits.cols == 0) {
    throw InvalidArgument(op, "logits", "cols = 0: a shard holds at least one class");
  }
  if (shard.vocab_size <= 0) {
    throw InvalidArgument(op, "shard.vocab_size",
                          "vocab_size = " + std::to_string(shard.vocab_size) + " must be positive");
  }
  if (shard.vocab_begin < 0 || shard.vocab_begin > shard.vocab_size ||
      logits.cols > shard.vocab_size - shard.vocab_begin) {
    throw InvalidArgument(op, "shard.vocab_begin",
                          "columns [" + std::to_string(shard.vocab_begin) + ", " +
                              std::to_string(shard.vocab_begin) + " + " +
                              std::to_string(logits.cols) + ") do not lie in a vocabulary of " +
                              std::to_string(shard.vocab_size));
  }
  detail::check_view(op, "targets", targets);
  if (targets.size != logits.rows) {
    throw InvalidArgument(op, "targets",
                          "size = " + std::to_string(targets.size) + " but logits have " +
                              std::to_string(logits.rows) + " rows");
  }
  detail::check_view(op, "weight", weight);
  if (weight.size != 0 && weight.size != logits.cols) {
    throw InvalidArgument(op, "weight",
                          "size = " + std::to_string(weight.size) + " but the shard has " +
                              std::to_string(logits.cols) + " classes");
  }
}

/// A rows x kCrossEntropyShardStats fp32 matrix.
template <class F>
void check_stats(const char* op, const char* arg, MatrixView<F> stats, std::int64_t rows) {
  detail::check_view(op, arg, stats);
  if (stats.rows != rows || stats.cols != kCrossEntropyShardStats) {
    throw InvalidArgument(op, arg,
                          "shape " + std::to_string(stats.rows) + " x " +
                              std::to_string(stats.cols) + " is not " + std::to_string(rows) +
                              " x " + std::to_string(kCrossEntropyShardStats));
  }
}

template <class T, class Index>
detail::ShardInput<T, Index> shard_input(MatrixView<const T> logits,
                                         VectorView<const Index> targets,
                                         const CrossEntropyShard& shard,
                                         const CrossEntropyOptions& options,
                                         VectorView<const float> weight) {
  return detail::ShardInput<T, Index>{
      logits.data,       logits.rows,
      logits.cols,       logits.ld,
      targets.data,      static_cast<long long>(options.ignore_index),
      shard.vocab_begin, weight.size > 0 ? weight.data : nullptr};
}

template <class T, class Index>
void shard_stats(MatrixView<const T> logits, VectorView<const Index> targets,
                 const CrossEntropyShard& shard, MatrixView<float> stats,
                 const CrossEntropyOptions& options, VectorView<const float> weight,
                 cudaStream_t stream) {
  const char* op = "cross_entropy_shard_stats";
  check_shard(op, logits, targets, shard, weight);
  detail::check_cross_entropy_options(op, options);
  check_stats(op, "stats", stats, logits.rows);
  const detail::ByteSpan out = detail::span_of(stats);
  detail::check_disjoint(op, "stats", out, "logits", detail::span_of(logits));
  detail::check_disjoint(op, "stats", out, "targets", detail::span_of(targets));
  detail::check_disjoint(op, "stats", out, "weight", detail::span_of(weight));
  if (logits.rows == 0) return;
  using Policy = detail::ShardStatsPolicy<T, Index>;
  const detail::RowPlan plan =
      detail::row_plan<Policy>(op, options.strategy, logits.rows, logits.cols);
  const detail::ShardStatsArgs<T, Index> args{
      shard_input(logits, targets, shard, options, weight), options.label_smoothing > 0.0f,
      detail::logit_transform_of(options), stats.data, stats.ld};
  detail::launch_rows(op, plan, Policy{args}, stream);
}

template <class T, class Index>
void shard_finish(MatrixView<const T> logits, VectorView<const Index> targets,
                  const CrossEntropyShard& shard, MatrixView<const float> combined,
                  const CrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                  const CrossEntropyOptions& options, VectorView<const float> weight,
                  cudaStream_t stream) {
  const char* op = "cross_entropy_shard_finish";
  check_shard(op, logits, targets, shard, weight);
  check_stats(op, "combined", combined, logits.rows);
  if (!outputs.correct.empty() || outputs.correct.data != nullptr) {
    throw InvalidArgument(op, "outputs.correct",
                          "argmax == target is not available from shard statistics (it needs "
                          "the row's argmax across shards)");
  }
  const detail::LossScratch scratch =
      detail::check_cross_entropy_outputs(op, logits, outputs, workspace, options, weight,
                                          "targets", detail::span_of(targets), true, stream);
  detail::check_disjoint(op, "combined", detail::span_of(combined), "workspace",
                         detail::span_of(workspace));
  if (!outputs.dlogits.empty()) {
    detail::check_disjoint(op, "outputs.dlogits", detail::span_of(outputs.dlogits), "combined",
                           detail::span_of(combined));
  }
  const std::int64_t rows = logits.rows;
  const bool mean = options.reduction == CrossEntropyReduction::mean;
  float* row_loss =
      options.reduction == CrossEntropyReduction::none ? outputs.loss.data : scratch.row_partials;
  const auto optional = [](VectorView<float> v) { return v.empty() ? nullptr : v.data; };
  const detail::ShardFinishArgs<T, Index> args{
      shard_input(logits, targets, shard, options, weight),
      shard.vocab_size,
      options.label_smoothing,
      options.label_smoothing / static_cast<float>(shard.vocab_size),
      options.z_loss,
      2.0f * options.z_loss,
      options.grad_scale,
      mean,
      detail::logit_transform_of(options),
      combined.data,
      combined.ld,
      row_loss,
      optional(outputs.logsumexp),
      optional(outputs.z_loss_term),
      optional(outputs.entropy),
      outputs.dlogits.empty() ? nullptr : outputs.dlogits.data,
      outputs.dlogits.ld,
      scratch.header};
  if (mean) {
    detail::launch_cross_entropy_prepare(detail::ShardCountedWeight<T, Index>{args}, rows, 0,
                                         nullptr, options.grad_scale, scratch, stream);
  }
  if (rows > 0) {
    detail::launch(LaunchConfig{dim3(row_kernel_blocks(rows)), dim3(kRowThreads), 0, stream},
                   "cross_entropy_shard_rows_kernel",
                   detail::cross_entropy_shard_rows_kernel<T, Index>, args);
    if (!outputs.dlogits.empty()) {
      using Policy = detail::ShardGradPolicy<T, Index>;
      const detail::RowPlan plan =
          detail::row_plan<Policy>(op, options.strategy, rows, logits.cols);
      detail::launch_rows(op, plan, Policy{args}, stream);
    }
  }
  detail::launch_cross_entropy_reduce(options.reduction, false, rows, scratch, outputs.loss.data,
                                      stream);
}

}  // namespace

template <class T, class Index>
void cross_entropy_shard_stats(MatrixView<const T> logits, VectorView<Index> targets,
                               const CrossEntropyShard& shard, MatrixView<float> stats,
                               const CrossEntropyOptions& options, VectorView<const float> weight,
                               cudaStream_t stream) {
  using I = std::remove_const_t<Index>;
  static_assert(std::is_same_v<I, std::int32_t> || std::is_same_v<I, std::int64_t>,
                "cross_entropy_shard_stats: class indices are std::int32_t or std::int64_t");
  shard_stats<T, I>(logits, VectorView<const I>(targets), shard, stats, options, weight, stream);
}

void cross_entropy_shard_combine(MatrixView<const float> gathered, std::int64_t shards,
                                 MatrixView<float> combined, cudaStream_t stream) {
  const char* op = "cross_entropy_shard_combine";
  if (shards <= 0) {
    throw InvalidArgument(op, "shards", "shards = " + std::to_string(shards) + " must be positive");
  }
  check_stats(op, "combined", combined, combined.rows);
  const std::int64_t rows = combined.rows;
  std::int64_t expected = 0;
  if (__builtin_mul_overflow(rows, shards, &expected)) {
    throw InvalidArgument(op, "shards", "rows x shards overflows");
  }
  check_stats(op, "gathered", gathered, expected);
  detail::check_disjoint(op, "combined", detail::span_of(combined), "gathered",
                         detail::span_of(gathered));
  if (rows == 0) return;
  detail::launch(LaunchConfig{dim3(row_kernel_blocks(rows)), dim3(kRowThreads), 0, stream},
                 "cross_entropy_shard_combine_kernel", detail::cross_entropy_shard_combine_kernel,
                 gathered.data, gathered.ld, rows, shards, combined.data, combined.ld);
}

template <class T, class Index>
void cross_entropy_shard_finish(nondeduced_t<MatrixView<const T>> logits, VectorView<Index> targets,
                                const CrossEntropyShard& shard, MatrixView<const float> combined,
                                const CrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                                const CrossEntropyOptions& options, VectorView<const float> weight,
                                cudaStream_t stream) {
  using I = std::remove_const_t<Index>;
  static_assert(std::is_same_v<I, std::int32_t> || std::is_same_v<I, std::int64_t>,
                "cross_entropy_shard_finish: class indices are std::int32_t or std::int64_t");
  shard_finish<T, I>(logits, VectorView<const I>(targets), shard, combined, outputs, workspace,
                     options, weight, stream);
}

#define WARPFUSE_INSTANTIATE_SHARD_INDEX(T, Index)                                               \
  template void cross_entropy_shard_stats<T, Index>(                                             \
      MatrixView<const T>, VectorView<Index>, const CrossEntropyShard&, MatrixView<float>,       \
      const CrossEntropyOptions&, VectorView<const float>, cudaStream_t);                        \
  template void cross_entropy_shard_finish<T, Index>(                                            \
      MatrixView<const T>, VectorView<Index>, const CrossEntropyShard&, MatrixView<const float>, \
      const CrossEntropyOutputs<T>&, const Workspace&, const CrossEntropyOptions&,               \
      VectorView<const float>, cudaStream_t);
#define WARPFUSE_INSTANTIATE_SHARD(T)                     \
  WARPFUSE_INSTANTIATE_SHARD_INDEX(T, std::int32_t)       \
  WARPFUSE_INSTANTIATE_SHARD_INDEX(T, const std::int32_t) \
  WARPFUSE_INSTANTIATE_SHARD_INDEX(T, std::int64_t)       \
  WARPFUSE_INSTANTIATE_SHARD_INDEX(T, const std::int64_t)
WARPFUSE_INSTANTIATE_SHARD(float)
WARPFUSE_INSTANTIATE_SHARD(__half)
WARPFUSE_INSTANTIATE_SHARD(__nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_SHARD
#undef WARPFUSE_INSTANTIATE_SHARD_INDEX

}  // namespace warpfuse
