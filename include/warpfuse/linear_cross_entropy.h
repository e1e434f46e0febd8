// warpfuse — chunked linear + cross-entropy: the loss of logits = hidden W^T + bias and its
// gradients with respect to hidden, W and bias, without ever holding the rows x V logits.
//
// hidden h is rows x d, the weight W is V x d (row-major, as nn.Linear and an LM head store it),
// the optional bias b has V values, all of storage type T (float, __half, __nv_bfloat16); targets
// are class indices (int32 or int64) with ignore_index. The loss is cross_entropy's of
// z = h W^T + b with every CrossEntropyOptions option (reduction none / mean / sum, label
// smoothing, class weights, z-loss, logit softcap and scale, grad_scale; <warpfuse/cross_entropy.h>
// has the math). Rows are processed in chunks of n rows; per chunk, on `stream`:
//   1. z = h[chunk] W^T (+ ones b^T first, beta 1) into the workspace's n x V logits (T; cuBLAS,
//      fp32 accumulation, one rounding to T),
//   2. cross-entropy's row engine over z, writing dz in place (the mean's denominator is the whole
//      batch's, computed once before the first chunk),
//   3. dhidden[chunk] = dz W (fp32), dweight += dz^T h[chunk] (fp32), dbias += dz^T 1 (fp32).
// So the logits and their gradient are the same n x V buffer and the full rows x V matrix never
// exists: peak temporary memory is n x V x sizeof(T) plus a few floats per row.
//
// Gradients are accumulated in fp32 across chunks. dweight and dbias are overwritten unless
// options.accumulate (then added to what they hold, for gradient accumulation over micro-batches);
// dhidden is always overwritten. Optional rounded T copies (dhidden_copy, dweight_copy,
// dbias_copy) are written at the end from the fp32 results. With no gradient output the op is
// forward-only (no dz, no backward GEMMs).
//
// Numerics: the logits are rounded to T before the loss, as the unfused path (a T logits tensor
// from a GEMM, then cross_entropy) rounds them, so the two agree to fp32 sums' order; dz is rounded
// to T before the backward GEMMs (as the unfused path's T dlogits are).
//
// Chunk size: options.chunk_rows (0: as many rows as the workspace holds, at most rows). The
// workspace is linear_cross_entropy_workspace_bytes(rows, V, dtype, chunk_rows); with chunk_rows 0
// it is sized for the default chunk, kLinearCrossEntropyDefaultChunkRows rows (1024: GEMMs of 1024
// rows keep the tensor cores busy while the logits of V = 128256 in bf16 take 251 MiB, against
// 4 GiB for 16384 rows unchunked). Bad targets, the status and check_cross_entropy_targets behave
// as cross_entropy's (the status names the batch's row). No allocation, asynchronous on `stream`,
// safe under CUDA Graph capture (the Blas holds cuBLAS's workspace).
//
// Checks (InvalidArgument naming 'linear_cross_entropy' and the argument): shapes (d >= 1, V >= 1),
// options, every output's shape, no output sharing a byte with any input, the workspace or another
// output, dbias only with a bias, a copy only with its fp32 output, a workspace too small for one
// row. cuBLAS limits every dimension and row stride to below 2^31 (checked); element offsets are
// 64-bit throughout.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "warpfuse/cross_entropy.h"
#include "warpfuse/dtype.h"
#include "warpfuse/gemm.h"
#include "warpfuse/view.h"
#include "warpfuse/workspace.h"

namespace warpfuse {

/// Rows per chunk when neither options.chunk_rows nor a smaller workspace says otherwise.
constexpr std::int64_t kLinearCrossEntropyDefaultChunkRows = 1024;

struct LinearCrossEntropyOptions {
  CrossEntropyOptions cross_entropy{};  ///< the loss (reduction, smoothing, z-loss, softcap, ...)
  std::int64_t chunk_rows = 0;          ///< rows per chunk, >= 0 (0: what the workspace holds)
  bool accumulate = false;              ///< add to dweight / dbias instead of overwriting them
  GemmPrecision precision = GemmPrecision::fp32;  ///< fp32 operands only (see <warpfuse/gemm.h>)
};

/// Where linear_cross_entropy writes (device views). Only `loss` is required.
template <class T>
struct LinearCrossEntropyOutputs {
  VectorView<float> loss{};       ///< rows values (reduction none) or 1 (mean, sum)
  MatrixView<float> dhidden{};    ///< rows x d
  MatrixView<float> dweight{};    ///< V x d (accumulated over chunks; see options.accumulate)
  VectorView<float> dbias{};      ///< V values (needs a bias)
  MatrixView<T> dhidden_copy{};   ///< rows x d, dhidden rounded to T (needs dhidden)
  MatrixView<T> dweight_copy{};   ///< V x d, dweight rounded to T (needs dweight)
  VectorView<T> dbias_copy{};     ///< V values, dbias rounded to T (needs dbias)
  VectorView<float> logsumexp{};  ///< rows values, optional (as cross_entropy's)
  VectorView<float> z_loss_term{};
  VectorView<float> correct{};
  VectorView<float> entropy{};
};

/// Bytes of workspace for `rows` rows of `vocab` classes in `dtype` with chunks of `chunk_rows`
/// rows (0: the default chunk; either way at most rows, at least 1). Throws InvalidArgument for
/// negative sizes or a size that overflows.
std::size_t linear_cross_entropy_workspace_bytes(std::int64_t rows, std::int64_t vocab, DType dtype,
                                                 std::int64_t chunk_rows = 0);

/// The rows per chunk linear_cross_entropy uses with this workspace size and options.chunk_rows
/// (0 when not even one row fits).
std::int64_t linear_cross_entropy_chunk_rows(std::int64_t rows, std::int64_t vocab, DType dtype,
                                             std::size_t workspace_bytes,
                                             std::int64_t chunk_rows = 0);

/// The op (see above). Index: std::int32_t or std::int64_t, const or not. `class_weight`: optional
/// per-class weights (V floats, device).
template <class T, class Index>
void linear_cross_entropy(Blas& blas, nondeduced_t<MatrixView<const T>> hidden,
                          nondeduced_t<MatrixView<const T>> weight,
                          nondeduced_t<VectorView<const T>> bias, VectorView<Index> targets,
                          const LinearCrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                          const LinearCrossEntropyOptions& options = {},
                          VectorView<const float> class_weight = {}, cudaStream_t stream = nullptr);

}  // namespace warpfuse
