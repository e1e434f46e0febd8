// warpfuse — vocabulary-parallel (tensor-parallel) cross-entropy: each process holds the logits of
// a slice [v0, v1) of the vocabulary, and the loss and gradient come out as if from the whole row.
//
// Three calls per step, around one exchange the caller makes:
//   1. cross_entropy_shard_stats   on every shard: per row, kCrossEntropyShardStats floats of
//                                  partials (the slice's max and log-sum of exp, its softmax's
//                                  entropy, the target's logit and weight when the target falls in
//                                  the slice, the sums smoothing needs), one pass over the slice;
//   2. the exchange                the caller gathers every shard's partials (an all-gather of
//                                  rows x 8 floats: NCCL, MPI, or copies on one device), then
//      cross_entropy_shard_combine turns the gathered partials (shard-major) into the whole row's
//                                  statistics: the same bits on every process (fixed shard order);
//   3. cross_entropy_shard_finish  on every shard: the loss (reductions as cross_entropy), lse,
//                                  z-loss term and entropy from the combined statistics, and the
//                                  slice's dlogits in one pass (may alias the slice's logits).
// The library does not depend on NCCL. With NCCL, between steps 1 and 3:
//
//   ncclAllGather(stats, gathered, rows * warpfuse::kCrossEntropyShardStats, ncclFloat, comm, s);
//   warpfuse::cross_entropy_shard_combine(gathered_view, world_size, combined_view, s);
//
// Math: exactly cross_entropy's (<warpfuse/cross_entropy.h>) over the whole vocabulary, softcap and
// scale included, with class-index targets (global indices in [0, vocab_size)); every option must
// be the same in the stats and the finish call and on every shard. With one shard the loss, lse and
// mean are bitwise those of cross_entropy (except smoothing with class weights, whose weight sum is
// added in another order); with several they agree to fp32 rounding. `correct` (argmax == target)
// is not available from shards (it needs the row's argmax across shards): InvalidArgument.
//
// A target that no shard holds (outside [0, vocab_size), not ignore_index) gives a NaN loss and a
// zero gradient row, and is counted in the workspace status as cross_entropy does.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "warpfuse/cross_entropy.h"
#include "warpfuse/view.h"
#include "warpfuse/workspace.h"

namespace warpfuse {

/// Floats of partial statistics per row (the stats matrices' columns).
constexpr std::int64_t kCrossEntropyShardStats = 8;

/// Where a shard sits in the vocabulary: columns [vocab_begin, vocab_begin + its logits' cols) of
/// vocab_size classes.
struct CrossEntropyShard {
  std::int64_t vocab_begin = 0;
  std::int64_t vocab_size = 0;
};

/// Writes the shard's partial statistics: `stats` is rows x kCrossEntropyShardStats fp32 (device,
/// any row stride >= kCrossEntropyShardStats). `weight`: the shard's class weights (its cols
/// floats), optional. Options used: ignore_index, label_smoothing, logit_softcap, logit_scale,
/// strategy. Index: std::int32_t or std::int64_t (const or not), global class indices.
template <class T, class Index>
void cross_entropy_shard_stats(MatrixView<const T> logits, VectorView<Index> targets,
                               const CrossEntropyShard& shard, MatrixView<float> stats,
                               const CrossEntropyOptions& options = {},
                               VectorView<const float> weight = {}, cudaStream_t stream = nullptr);

/// The same, for a view of non-const logits.
template <class T, class Index, class = std::enable_if_t<!std::is_const_v<T>>>
void cross_entropy_shard_stats(MatrixView<T> logits, VectorView<Index> targets,
                               const CrossEntropyShard& shard, MatrixView<float> stats,
                               const CrossEntropyOptions& options = {},
                               VectorView<const float> weight = {}, cudaStream_t stream = nullptr) {
  cross_entropy_shard_stats<T, Index>(MatrixView<const T>(logits), targets, shard, stats, options,
                                      weight, stream);
}

/// Combines gathered partials: `gathered` is (shards x rows) x kCrossEntropyShardStats, shard s's
/// rows at rows [s rows, (s + 1) rows) in vocabulary order; `combined` is rows x
/// kCrossEntropyShardStats. Deterministic, no workspace.
void cross_entropy_shard_combine(MatrixView<const float> gathered, std::int64_t shards,
                                 MatrixView<float> combined, cudaStream_t stream = nullptr);

/// The loss, the optional per-row outputs (logsumexp, z_loss_term, entropy) and the shard's
/// dlogits (rows x its cols; may alias `logits`) from the combined statistics. `weight`: the
/// shard's class weights, as in the stats call. The workspace: cross_entropy_workspace_bytes(rows).
template <class T, class Index>
void cross_entropy_shard_finish(nondeduced_t<MatrixView<const T>> logits, VectorView<Index> targets,
                                const CrossEntropyShard& shard, MatrixView<const float> combined,
                                const CrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                                const CrossEntropyOptions& options = {},
                                VectorView<const float> weight = {}, cudaStream_t stream = nullptr);

}  // namespace warpfuse
