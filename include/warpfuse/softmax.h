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
// Graph capture. y may alias x (dx may alias dy) exactly: the same pointer and row stride.
// rows == 0 (or cols == 0) does nothing.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "warpfuse/dtype.h"
#include "warpfuse/view.h"

namespace warpfuse {

/// How the rows are mapped onto the GPU. `automatic` (the default) picks by row length and dtype,
/// see softmax_strategy_for. The others force one, for benchmarks and tests.
enum class SoftmaxStrategy {
  automatic,
  warp,    ///< 1..32 lanes per row, the row in registers: rows up to kSoftmaxWarpMaxCols
  block,   ///< a block per row, the row cached in shared memory: rows that fit on chip
  online,  ///< a block per row, one pass for max and sum (online normaliser), any row length
};

/// "automatic", "warp", "block" or "online".
const char* to_string(SoftmaxStrategy strategy);

struct SoftmaxOptions {
  float scale = 1.0f;  ///< multiplies x before the softmax (inverse temperature, 1/sqrt(d))
  SoftmaxStrategy strategy = SoftmaxStrategy::automatic;
};

/// The longest row the warp strategy handles: 32 lanes x 32 values held in registers.
constexpr std::int64_t kSoftmaxWarpMaxCols = 1024;

/// The strategy `automatic` picks for rows of `cols` elements of `dtype` on the current device
/// (the block strategy's limit depends on the device's shared memory). Throws CudaError when the
/// device cannot be queried.
SoftmaxStrategy softmax_strategy_for(std::int64_t cols, DType dtype);

/// The longest row the block strategy can hold in shared memory on the current device.
std::int64_t softmax_block_max_cols(DType dtype);

template <class T>
void softmax(MatrixView<const T> x, MatrixView<T> y, const SoftmaxOptions& options = {},
             cudaStream_t stream = nullptr);
template <class T>
void log_softmax(MatrixView<const T> x, MatrixView<T> y, const SoftmaxOptions& options = {},
                 cudaStream_t stream = nullptr);
template <class T>
void softmax_backward(MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx,
                      const SoftmaxOptions& options = {}, cudaStream_t stream = nullptr);
template <class T>
void log_softmax_backward(MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx,
                          const SoftmaxOptions& options = {}, cudaStream_t stream = nullptr);

// The same ops taking mutable views for the inputs (in-place calls pass one view twice).
template <class T>
void softmax(MatrixView<T> x, MatrixView<T> y, const SoftmaxOptions& options = {},
             cudaStream_t stream = nullptr) {
  softmax(MatrixView<const T>(x), y, options, stream);
}
template <class T>
void log_softmax(MatrixView<T> x, MatrixView<T> y, const SoftmaxOptions& options = {},
                 cudaStream_t stream = nullptr) {
  log_softmax(MatrixView<const T>(x), y, options, stream);
}
template <class T>
void softmax_backward(MatrixView<T> y, MatrixView<T> dy, MatrixView<T> dx,
                      const SoftmaxOptions& options = {}, cudaStream_t stream = nullptr) {
  softmax_backward(MatrixView<const T>(y), MatrixView<const T>(dy), dx, options, stream);
}
template <class T>
void log_softmax_backward(MatrixView<T> y, MatrixView<T> dy, MatrixView<T> dx,
                          const SoftmaxOptions& options = {}, cudaStream_t stream = nullptr) {
  log_softmax_backward(MatrixView<const T>(y), MatrixView<const T>(dy), dx, options, stream);
}

}  // namespace warpfuse
