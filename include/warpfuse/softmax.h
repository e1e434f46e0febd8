// warpfuse — softmax and log-softmax over the rows of a matrix, forward and backward.
//
// For each row r of the rows x cols row-major matrix x (row stride ld), with s = options.scale:
//   softmax:      y[r, c] = exp(s x[r, c] - m) / sum_k exp(s x[r, k] - m),   m = max_k s x[r, k]
//   log_softmax:  y[r, c] = s x[r, c] - m - log(sum_k exp(s x[r, k] - m))
//   softmax_backward (from y = softmax(s x) and dy = dL/dy):
//                 dx[r, c] = s y[r, c] (dy[r, c] - sum_k dy[r, k] y[r, k])
//   log_softmax_backward (from y = log_softmax(s x) and dy):
//                 dx[r, c] = s (dy[r, c] - exp(y[r, c]) sum_k dy[r, k])
// Storage is float, __half or __nv_bfloat16 (x, y, dy, dx all the same type); arithmetic and every
// sum are fp32. The maximum is subtracted before exponentiating, so large magnitudes stay finite.
//
// Numerics (DESIGN.md section 4):
//   - a row whose entries are all -inf gives all zeros (softmax) or all -inf (log_softmax), not
//   NaN;
//   - a NaN anywhere in a row makes that whole row NaN;
//   - log_softmax gives -inf exactly where the input is -inf (with a finite row maximum);
//   - +inf entries: the row's softmax is NaN (inf - inf), as in PyTorch.
//
// Every call validates its arguments (warpfuse::InvalidArgument naming the op and argument),
// allocates nothing, launches on `stream` and returns without synchronising; it is safe under CUDA
// Graph capture. y may alias x (dx may alias dy) exactly: the same pointer and row stride. Any
// pointer alignment and row stride keep 128-bit accesses for the body of every row (a scalar head
// and tail per row), e.g. cols = ld = 50257.
// rows == 0 (or cols == 0) does nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "warpfuse/dtype.h"
#include "warpfuse/row_strategy.h"
#include "warpfuse/view.h"

namespace warpfuse {

/// The strategies of the row engine (warpfuse/row_strategy.h); the name softmax's options had
/// before cross-entropy shared them.
using SoftmaxStrategy = RowStrategy;

struct SoftmaxOptions {
  float scale = 1.0f;  ///< multiplies x before the softmax (inverse temperature, 1/sqrt(d))
  RowStrategy strategy = RowStrategy::automatic;
};

/// The longest row the warp strategy handles: 32 lanes x 32 values held in registers.
constexpr std::int64_t kSoftmaxWarpMaxCols = kRowWarpMaxCols;

/// Which of softmax's passes a query is about: the backward caches two row arrays (y and dy), so
/// its block strategy holds rows half as long.
enum class SoftmaxPass { forward, backward };

/// The strategy `automatic` picks for `rows` rows (0: as many as fill the GPU) of `cols` elements
/// of `dtype` on the current device (the block strategy's limit depends on the device's shared
/// memory; the cluster strategy needs compute capability 9.0, and takes a few long rows too), for
/// the forward or the backward (softmax and log_softmax alike). A device that has clusters but
/// cannot schedule the one a row needs runs online where this says cluster. Throws CudaError
/// when the device cannot be queried.
RowStrategy softmax_strategy_for(std::int64_t cols, DType dtype,
                                 SoftmaxPass pass = SoftmaxPass::forward, std::int64_t rows = 0);

/// The longest row the block strategy can hold in shared memory on the current device.
std::int64_t softmax_block_max_cols(DType dtype, SoftmaxPass pass = SoftmaxPass::forward);

template <class T>
void softmax(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y,
             const SoftmaxOptions& options = {}, cudaStream_t stream = nullptr);
template <class T>
void log_softmax(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y,
                 const SoftmaxOptions& options = {}, cudaStream_t stream = nullptr);
template <class T>
void softmax_backward(nondeduced_t<MatrixView<const T>> y, nondeduced_t<MatrixView<const T>> dy,
                      MatrixView<T> dx, const SoftmaxOptions& options = {},
                      cudaStream_t stream = nullptr);
template <class T>
void log_softmax_backward(nondeduced_t<MatrixView<const T>> y, nondeduced_t<MatrixView<const T>> dy,
                          MatrixView<T> dx, const SoftmaxOptions& options = {},
                          cudaStream_t stream = nullptr);

// A const output would deduce T = const U, which has no instantiation: rejected here at compile
// time (these are more specialized, so overload resolution picks them for a const output).
template <class T>
void softmax(nondeduced_t<MatrixView<const T>>, MatrixView<const T>, const SoftmaxOptions& = {},
             cudaStream_t = nullptr) = delete;
template <class T>
void log_softmax(nondeduced_t<MatrixView<const T>>, MatrixView<const T>, const SoftmaxOptions& = {},
                 cudaStream_t = nullptr) = delete;
template <class T>
void softmax_backward(nondeduced_t<MatrixView<const T>>, nondeduced_t<MatrixView<const T>>,
                      MatrixView<const T>, const SoftmaxOptions& = {},
                      cudaStream_t = nullptr) = delete;
template <class T>
void log_softmax_backward(nondeduced_t<MatrixView<const T>>, nondeduced_t<MatrixView<const T>>,
                          MatrixView<const T>, const SoftmaxOptions& = {},
                          cudaStream_t = nullptr) = delete;

}  // namespace warpfuse
