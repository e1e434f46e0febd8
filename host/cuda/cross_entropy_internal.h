// warpfuse host — the pieces cross_entropy (host/cuda/cross_entropy.cu) and the vocabulary-parallel
// shards (host/cuda/cross_entropy_shard.cu) share: option and output checks, the logit transform,
// the mean's denominator and the loss reduction.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "host/cuda/launch.h"
#include "host/cuda/loss_internal.h"
#include "kernels/cross_entropy.cuh"
#include "warpfuse/cross_entropy.h"

namespace warpfuse::detail {

/// Throws InvalidArgument naming `op` and the option unless every option is in range.
void check_cross_entropy_options(const char* op, const CrossEntropyOptions& options);

/// The kernels' form of options.logit_softcap and logit_scale (divisions done here, once).
LogitTransform logit_transform_of(const CrossEntropyOptions& options);

/// Checks the logits, options, weights and every output (sizes, no byte shared with any other
/// argument) and returns the prepared workspace. `targets_arg` and `targets_span`: the targets'
/// name and bytes (the index vector, or the probability matrix, which dlogits may alias exactly:
/// checked by the caller).
template <class T>
LossScratch check_cross_entropy_outputs(
    const char* op, MatrixView<const T> logits, const CrossEntropyOutputs<T>& outputs,
    const Workspace& workspace, const CrossEntropyOptions& options, VectorView<const float> weight,
    const char* targets_arg, ByteSpan targets_span, bool targets_is_index, cudaStream_t stream);

/// The row engine's cross-entropy over `logits` (rows that start at row `first_row` of the batch
/// the status and the caller's denominator count): each row's loss into row_loss, the extras and
/// the gradient into `outputs` (views of the same rows; outputs.loss is not used), with
/// g = grad_scale or, when scale_from_header, the prepare kernel's header->gradient_scale.
/// Nothing for 0 rows. Instantiated for IndexTargets<int32 / int64> and ProbabilityTargets<T>.
template <class T, class Targets>
void launch_cross_entropy_rows(const char* op, MatrixView<const T> logits, Targets targets,
                               const CrossEntropyOutputs<T>& outputs,
                               const CrossEntropyOptions& options, VectorView<const float> weight,
                               float* row_loss, float grad_scale, bool scale_from_header,
                               LossHeader* header, std::int64_t first_row, cudaStream_t stream);

/// The mean's denominator and gradient scale into scratch.header (and W = the sum of `weight`
/// over `cols` classes, or cols without weights): over many rows a first stage of
/// reduce_blocks(rows) blocks (the loss reduction's fixed chunking), then one block. Counted:
/// the row's counted weight (IndexCountedWeight, ShardCountedWeight).
template <class Counted>
void launch_cross_entropy_prepare(const Counted& counted, std::int64_t rows, std::int64_t cols,
                                  const float* weight, float grad_scale, const LossScratch& scratch,
                                  cudaStream_t stream) {
  const std::int64_t blocks = reduce_blocks(rows);
  if (blocks > 1) {
    launch(LaunchConfig{dim3(static_cast<unsigned>(blocks)), dim3(kLossReduceThreads), 0, stream},
           "cross_entropy_denominator_kernel", cross_entropy_denominator_kernel<Counted>, counted,
           rows, scratch.block_sums);
  }
  launch(LaunchConfig{dim3(1), dim3(kLossReduceThreads), 0, stream}, "cross_entropy_prepare_kernel",
         cross_entropy_prepare_kernel<Counted>, counted, rows, cols, weight, grad_scale,
         blocks > 1 ? scratch.block_sums : nullptr, scratch.header);
}

/// outputs.loss from the per-row losses in scratch.row_partials: the sum, or the mean (over the
/// header's denominator; over rows for probability targets). Nothing for reduction none.
void launch_cross_entropy_reduce(CrossEntropyReduction reduction, bool probabilities,
                                 std::int64_t rows, const LossScratch& scratch, float* loss,
                                 cudaStream_t stream);

}  // namespace warpfuse::detail
