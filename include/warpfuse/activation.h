// warpfuse — activations: relu, leaky_relu, prelu, elu, selu, gelu (erf and tanh forms), silu,
// softplus, sigmoid, tanh; elementwise and fused with a bias (the Dense layer's epilogue), forward
// and backward.
//
// The activations, their parameters, formulas, derivatives, the tensor each backward reads and the
// conventions at kinks, NaN and infinities are listed in <warpfuse/ref/activation.h> (included
// below), which the CPU reference shares. In short, the backward reads
//   y (the output):  relu, leaky_relu, sigmoid, tanh
//   x (the input, for the fused forms the pre-activation x + bias):  every other kind
// as activation_backward_from(kind) says; the forward need not keep what the backward does not
// read.
//
// The forms, for a rows x cols row-major matrix (row stride ld) or a contiguous array:
//   activation_forward        y = f(x)
//   bias_activation_forward   y[r, c] = f(x[r, c] + bias[c]); optionally pre[r, c] = x + bias
//                             (outputs: BiasActivationOutputs<T>)
//   activation_backward       dx = dy * f'(.) from `saved` (x or y, see above)
//   bias_activation_backward  the same, plus dbias[c] = sum_r dx[r, c] and, for prelu,
//                             dslope[c] = sum_r dy[r, c] * min(x[r, c], 0)
//                             (outputs: BiasActivationBackwardOutputs<T>)
// prelu's slope has one value per column (length cols), so prelu takes the matrix forms only.
//
// Numerics: storage is float, __half or __nv_bfloat16 (every tensor of a call the same type);
// arithmetic is fp32 with CUDA's accurate single-precision functions; each output is rounded once.
// pre is rounded to T; y is computed from the unrounded fp32 sum. dbias and dslope add the fp32 dx
// (and dy * min(x, 0)) values in an order fixed by the shape alone: bitwise the same result on
// every run and every device, with no atomics. They need a caller-provided workspace of
// bias_activation_backward_workspace_bytes(rows, cols, kind) bytes; no op allocates memory.
//
// Memory: 16-byte vector loads and stores whenever every matrix's rows start equally misaligned
// (a scalar head and tail per row cover the rest), else scalar; any pointer and ld is accepted.
// Outputs may alias inputs exactly (same pointer and ld: y = x, pre = x, dx = dy or dx = saved);
// a partial overlap is rejected. pre and y must not overlap.
//
// Every call validates its arguments (warpfuse::InvalidArgument naming the op and argument),
// launches on `stream` and returns without synchronising; it is safe under CUDA Graph capture. An
// empty input (0 elements, rows == 0 or cols == 0) launches nothing, except that the fused backward
// sets dbias and dslope to zero (cudaMemsetAsync) when rows == 0 and cols > 0.
//
// Optional tensors (pre, dbias, dslope) are skipped when passed as a default-constructed view ({}).
// The templates are explicitly instantiated for float, __half and __nv_bfloat16. T is deduced
// from the output (y or dx, a view of T); the inputs are nondeduced_t views of const T, which
// views of T convert to, so one declaration takes const and mutable inputs alike.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "warpfuse/dtype.h"
#include "warpfuse/ref/activation.h"
#include "warpfuse/view.h"
#include "warpfuse/workspace.h"

namespace warpfuse {

/// The workspace bias_activation_backward needs, in bytes, for a rows x cols matrix: the fp32
/// per-chunk column sums of dbias and, for prelu, dslope. Depends on the shape and kind only (no
/// device query); 0 when the matrix is empty. Throws InvalidArgument for negative sizes.
std::size_t bias_activation_backward_workspace_bytes(std::int64_t rows, std::int64_t cols,
                                                     Activation kind);

// --- forward -------------------------------------------------------------------------------------

/// y = f(x) over a contiguous array (any kind but prelu, whose slope is per column).
template <class T>
void activation_forward(nondeduced_t<VectorView<const T>> x, VectorView<T> y,
                        const ActivationParams& params = {}, cudaStream_t stream = nullptr);

/// y = f(x) over a strided matrix. slope: prelu's slope, cols values; ignored by the other kinds.
template <class T>
void activation_forward(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y,
                        const ActivationParams& params = {},
                        nondeduced_t<VectorView<const T>> slope = {},
                        cudaStream_t stream = nullptr);

/// Where bias_activation_forward writes: y (required) and, unless {}, pre = x + bias (keep it
/// when activation_backward_from(kind) is BackwardFrom::input; it must not overlap y).
template <class T>
struct BiasActivationOutputs {
  MatrixView<T> y{};
  MatrixView<T> pre{};
};

/// y[r, c] = f(x[r, c] + bias[c]) (bias: cols values), and pre. slope as activation_forward.
template <class T>
void bias_activation_forward(nondeduced_t<MatrixView<const T>> x,
                             nondeduced_t<VectorView<const T>> bias,
                             const BiasActivationOutputs<T>& outputs,
                             const ActivationParams& params = {},
                             nondeduced_t<VectorView<const T>> slope = {},
                             cudaStream_t stream = nullptr);

// --- backward ------------------------------------------------------------------------------------

/// dx = dy * f'(.) over a contiguous array, from saved = x or y (activation_backward_from); any
/// kind but prelu. leaky_relu needs negative_slope >= 0 (its sign is read from y).
template <class T>
void activation_backward(nondeduced_t<VectorView<const T>> saved,
                         nondeduced_t<VectorView<const T>> dy, VectorView<T> dx,
                         const ActivationParams& params = {}, cudaStream_t stream = nullptr);

/// dx = dy * f'(.) over a strided matrix, from saved = x or y. slope: prelu's, cols values.
template <class T>
void activation_backward(nondeduced_t<MatrixView<const T>> saved,
                         nondeduced_t<MatrixView<const T>> dy, MatrixView<T> dx,
                         const ActivationParams& params = {},
                         nondeduced_t<VectorView<const T>> slope = {},
                         cudaStream_t stream = nullptr);

/// Where bias_activation_backward writes: dx (required, may alias saved or dy exactly), and
/// unless {} dbias[c] = sum_r dx[r, c] and, for prelu, dslope[c] = sum_r dy[r, c] min(x[r, c], 0)
/// (cols values each).
template <class T>
struct BiasActivationBackwardOutputs {
  MatrixView<T> dx{};
  VectorView<T> dbias{};
  VectorView<T> dslope{};
};

/// The fused backward: dx as activation_backward, and the column sums dbias and dslope. The sums
/// are deterministic; they use `workspace` (<warpfuse/workspace.h>: at least
/// bias_activation_backward_workspace_bytes(rows, cols, params.kind) bytes, not overlapping any
/// tensor of the call; unused, and may be Workspace{}, when neither sum is requested).
template <class T>
void bias_activation_backward(nondeduced_t<MatrixView<const T>> saved,
                              nondeduced_t<MatrixView<const T>> dy,
                              const BiasActivationBackwardOutputs<T>& outputs,
                              const Workspace& workspace, const ActivationParams& params = {},
                              nondeduced_t<VectorView<const T>> slope = {},
                              cudaStream_t stream = nullptr);

// A const output would deduce T = const U, which has no instantiation: rejected here at compile
// time (these are more specialized, so overload resolution picks them for a const output).
template <class T>
void activation_forward(nondeduced_t<VectorView<const T>>, VectorView<const T>,
                        const ActivationParams& = {}, cudaStream_t = nullptr) = delete;
template <class T>
void activation_forward(nondeduced_t<MatrixView<const T>>, MatrixView<const T>,
                        const ActivationParams& = {}, nondeduced_t<VectorView<const T>> = {},
                        cudaStream_t = nullptr) = delete;
template <class T>
void activation_backward(nondeduced_t<VectorView<const T>>, nondeduced_t<VectorView<const T>>,
                         VectorView<const T>, const ActivationParams& = {},
                         cudaStream_t = nullptr) = delete;
template <class T>
void activation_backward(nondeduced_t<MatrixView<const T>>, nondeduced_t<MatrixView<const T>>,
                         MatrixView<const T>, const ActivationParams& = {},
                         nondeduced_t<VectorView<const T>> = {}, cudaStream_t = nullptr) = delete;

}  // namespace warpfuse
