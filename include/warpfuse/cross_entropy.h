// warpfuse — cross-entropy from logits, fused with softmax and with its gradient.
//
// Per row i of the rows x C logits z (row stride ld), p = softmax(z_i), lse_i = log sum_c
// exp(z_ic):
//   class-index targets t_i (int32 or int64), label smoothing e, class weights w (default 1),
//   W = sum_c w_c, z-loss coefficient zl:
//     loss_i = (1 - e) w_t (lse_i - z_it) + (e / C) (W lse_i - sum_c w_c z_ic) + zl lse_i^2
//   probability targets q_i (rows x C, one-hot or soft; smoothing gives q' = (1 - e) q + e / C):
//     loss_i = sum_c w_c q'_c (lse_i - z_ic) + zl lse_i^2
// Gradient, written in the same pass over the logits when `dlogits` is given:
//     dz_ic = g_i d loss_i / d z_ic = g_i (p_c (sum_k w_k q'_k + 2 zl lse_i) - w_c q'_c)
// (for index targets q' is the smoothed one-hot), with g_i = grad_scale x the reduction's factor.
//
// Reductions (CrossEntropyReduction): none (rows losses), sum, or mean. The mean follows
// PyTorch: for index targets it divides by the sum of w_t over the counted rows (the row count
// without weights); for probability targets by rows. Rows whose target is ignore_index contribute
// no loss and a zero gradient row, and are not counted; when every row is ignored the mean loss is
// 0 and the gradient 0 (not NaN).
//
// Bad targets (an index outside [0, C) that is not ignore_index) never abort the kernel: that
// row's loss is NaN (so a mean or sum is NaN), its gradient row is zero, it is not counted in the
// mean's denominator, and it is counted in the workspace's status. read_loss_status tells how many
// and which came first; check_cross_entropy_targets turns them into an InvalidArgument naming the
// first bad row and its target.
//
// Logit softcapping and scale (Gemma 2's final-logit softcap; a temperature): with cap > 0 every
// logit is first mapped to z' = cap tanh(s z / cap), with cap = 0 to z' = s z (s = logit_scale,
// default 1), and everything above (loss, lse, softmax, z-loss) is of z'; the gradient is with
// respect to the raw z: dz = dz' s (1 - (z' / cap)^2) (or dz' s), in the same pass.
//
// Extra per-row outputs (rows fp32 values each, all optional, from the same pass):
//   z_loss_term  zl lse_i^2, the z-loss part of row i's loss (0 for ignored rows, NaN for bad ones)
//   correct      index targets: 1 when the target is the row's argmax (the first maximal z', as
//                torch.argmax picks), else 0; 0 for ignored and bad rows (token accuracy: sum over
//                the counted rows)
//   entropy      -sum_c p_c log p_c of the row's softmax (of z'), every row
//
// Edge values: -inf at the target gives +inf loss; -inf elsewhere is fine (probability 0; with
// label smoothing the smoothed term is +inf, as the math says); a row of all -inf gives NaN. Large
// magnitudes (+-1e4) are handled by subtracting the row maximum.
//
// Strategies (RowStrategy, the row engine's): warp (C <= 1024, the row in registers), block (the
// row cached in shared memory; probability targets are cached beside the logits, so the limit is
// half), cluster (compute capability >= 9.0: the row cached across a thread-block cluster's shared
// memory, the rows past the block limit and few long rows), online (two passes over global
// memory, any C); see cross_entropy_strategy_for. With warp, block or cluster the logits are read
// once; dlogits may alias logits (in place, no logits-sized
// temporary). Any alignment and row stride keep 128-bit accesses for every row's body (e.g.
// C = ld = 50257). Asynchronous on `stream`; scratch comes from the caller's workspace.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "warpfuse/dtype.h"
#include "warpfuse/loss.h"
#include "warpfuse/row_strategy.h"
#include "warpfuse/softmax.h"
#include "warpfuse/view.h"
#include "warpfuse/workspace.h"

namespace warpfuse {

/// How the per-row losses become outputs.loss: none (one per row), mean, sum.
enum class CrossEntropyReduction { none, mean, sum };

/// "none", "mean" or "sum".
const char* to_string(CrossEntropyReduction reduction);

struct CrossEntropyOptions {
  std::int64_t ignore_index = -100;  ///< rows with this target are skipped (index targets only)
  float label_smoothing = 0.0f;      ///< e in [0, 1)
  float z_loss = 0.0f;               ///< coefficient of lse^2, >= 0
  CrossEntropyReduction reduction = CrossEntropyReduction::mean;
  float grad_scale = 1.0f;     ///< upstream gradient of the op's output
  float logit_softcap = 0.0f;  ///< cap >= 0: z' = cap tanh(logit_scale z / cap); 0 = no cap
  float logit_scale = 1.0f;    ///< s > 0, applied before the cap (z' = s z without one)
  RowStrategy strategy = RowStrategy::automatic;
};

/// Which targets a strategy query is about: class indices, or a probability matrix (a second
/// cached row array in the block strategy).
enum class CrossEntropyTargets { index, probabilities };

/// The strategy `automatic` picks for `rows` rows (0: as many as fill the GPU) of `classes`
/// logits of `dtype` on the current device (see softmax_strategy_for).
RowStrategy cross_entropy_strategy_for(std::int64_t classes, DType dtype,
                                       CrossEntropyTargets targets = CrossEntropyTargets::index,
                                       std::int64_t rows = 0);

/// The longest row the block strategy holds on the current device.
std::int64_t cross_entropy_block_max_cols(DType dtype,
                                          CrossEntropyTargets targets = CrossEntropyTargets::index);

/// Bytes of workspace cross_entropy needs for `rows` rows (at least 512; see
/// <warpfuse/workspace.h>).
std::size_t cross_entropy_workspace_bytes(std::int64_t rows);

/// Where cross_entropy writes (device fp32 views and the gradient). Only `loss` is required.
template <class T>
struct CrossEntropyOutputs {
  VectorView<float> loss{};         ///< rows values (reduction none) or 1 (mean, sum)
  MatrixView<T> dlogits{};          ///< the gradient (rows x C), optional; may alias the logits
  VectorView<float> logsumexp{};    ///< rows values (of z'), optional
  VectorView<float> z_loss_term{};  ///< rows values, optional: zl lse^2
  VectorView<float> correct{};      ///< rows values, optional, index targets: argmax == target
  VectorView<float> entropy{};      ///< rows values, optional: the softmax's entropy
};

/// Cross-entropy with class-index targets (Index: std::int32_t or std::int64_t, const or not).
/// `weight`: optional per-class weights (C floats, device).
template <class T, class Index>
void cross_entropy(nondeduced_t<MatrixView<const T>> logits, VectorView<Index> targets,
                   const CrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                   const CrossEntropyOptions& options = {}, VectorView<const float> weight = {},
                   cudaStream_t stream = nullptr);

/// Cross-entropy with probability targets (rows x C, same dtype as the logits): Keras's
/// categorical_crossentropy(from_logits=True). options.ignore_index is not used.
template <class T>
void cross_entropy(nondeduced_t<MatrixView<const T>> logits,
                   nondeduced_t<MatrixView<const T>> target_probabilities,
                   const CrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                   const CrossEntropyOptions& options = {}, VectorView<const float> weight = {},
                   cudaStream_t stream = nullptr);

/// Waits for `stream`; throws InvalidArgument (op 'cross_entropy', argument 'targets') naming the
/// number of bad rows, the first one and its target when the last cross_entropy that used
/// `workspace` found class indices outside [0, num_classes). Returns normally otherwise.
template <class Index>
void check_cross_entropy_targets(const Workspace& workspace, VectorView<Index> targets,
                                 std::int64_t num_classes, cudaStream_t stream = nullptr);

}  // namespace warpfuse
