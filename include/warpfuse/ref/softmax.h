// warpfuse::ref — CPU reference of softmax and log-softmax, forward and backward, in double
// precision. Same math, layout and special-value semantics as <warpfuse/softmax.h>: per row,
// m = max(scale x) is subtracted; an all -inf row gives zeros (log: -inf); NaN or +inf in a row
// makes the row NaN. Matrices are host MatrixViews (row-major, any row stride; T, float or
// double, deduced from the output); every intermediate is double. A shape mismatch throws
// std::invalid_argument. No CUDA needed.
#pragma once

#include <cstdint>

#include "warpfuse/view_types.h"

namespace warpfuse::ref {

template <class T>
void softmax(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y, double scale = 1.0);
template <class T>
void log_softmax(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y, double scale = 1.0);
/// dx = scale * y * (dy - sum(dy * y)) per row, from y = softmax(scale * x).
template <class T>
void softmax_backward(nondeduced_t<MatrixView<const T>> y, nondeduced_t<MatrixView<const T>> dy,
                      MatrixView<T> dx, double scale = 1.0);
/// dx = scale * (dy - exp(y) * sum(dy)) per row, from y = log_softmax(scale * x).
template <class T>
void log_softmax_backward(nondeduced_t<MatrixView<const T>> y, nondeduced_t<MatrixView<const T>> dy,
                          MatrixView<T> dx, double scale = 1.0);

}  // namespace warpfuse::ref
