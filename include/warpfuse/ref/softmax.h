// warpfuse::ref — CPU reference of softmax and log-softmax, forward and backward, in double
// precision. Same math, layout and special-value semantics as <warpfuse/softmax.h>: per row,
// m = max(scale x) is subtracted; an all -inf row gives zeros (log: -inf); NaN or +inf in a row
// makes the row NaN. Matrices are row-major with row strides; T is float or double, every
// intermediate is double. No CUDA needed.
#pragma once

#include <cstdint>

namespace warpfuse::ref {

template <class T>
void softmax(const T* x, std::int64_t ld_x, T* y, std::int64_t ld_y, std::int64_t rows,
             std::int64_t cols, double scale = 1.0);
template <class T>
void log_softmax(const T* x, std::int64_t ld_x, T* y, std::int64_t ld_y, std::int64_t rows,
                 std::int64_t cols, double scale = 1.0);
/// dx = scale * y * (dy - sum(dy * y)) per row, from y = softmax(scale * x).
template <class T>
void softmax_backward(const T* y, std::int64_t ld_y, const T* dy, std::int64_t ld_dy, T* dx,
                      std::int64_t ld_dx, std::int64_t rows, std::int64_t cols, double scale = 1.0);
/// dx = scale * (dy - exp(y) * sum(dy)) per row, from y = log_softmax(scale * x).
template <class T>
void log_softmax_backward(const T* y, std::int64_t ld_y, const T* dy, std::int64_t ld_dy, T* dx,
                          std::int64_t ld_dx, std::int64_t rows, std::int64_t cols,
                          double scale = 1.0);

}  // namespace warpfuse::ref
