// warpfuse::ref — reference softmax (see include/warpfuse/ref/softmax.h).
#include "warpfuse/ref/softmax.h"

#include "views.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace warpfuse::ref {
namespace {

enum class Mode { softmax, log_softmax };

template <Mode kMode, class T>
void forward(const T* x, std::int64_t ld_x, T* y, std::int64_t ld_y, std::int64_t rows,
             std::int64_t cols, double scale) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> scaled(static_cast<std::size_t>(cols));
  for (std::int64_t row = 0; row < rows; ++row) {
    double max = -inf;
    for (std::int64_t col = 0; col < cols; ++col) {
      scaled[col] = scale * static_cast<double>(x[row * ld_x + col]);
      max = std::fmax(max, scaled[col]);  // ignores NaN, like the device's MaxOp
    }
    const double shift = max == -inf ? 0.0 : max;
    double sum = 0.0;
    for (std::int64_t col = 0; col < cols; ++col) sum += std::exp(scaled[col] - shift);
    for (std::int64_t col = 0; col < cols; ++col) {
      double out;
      if (kMode == Mode::softmax) {
        out = sum == 0.0 ? 0.0 : std::exp(scaled[col] - shift) / sum;
      } else {
        out = sum == 0.0 ? -inf : (scaled[col] - shift) - std::log(sum);
      }
      y[row * ld_y + col] = static_cast<T>(out);
    }
  }
}

template <Mode kMode, class T>
void backward(const T* y, std::int64_t ld_y, const T* dy, std::int64_t ld_dy, T* dx,
              std::int64_t ld_dx, std::int64_t rows, std::int64_t cols, double scale) {
  for (std::int64_t row = 0; row < rows; ++row) {
    double reduced = 0.0;
    for (std::int64_t col = 0; col < cols; ++col) {
      const double g = static_cast<double>(dy[row * ld_dy + col]);
      reduced += kMode == Mode::softmax ? g * static_cast<double>(y[row * ld_y + col]) : g;
    }
    for (std::int64_t col = 0; col < cols; ++col) {
      const double out = static_cast<double>(y[row * ld_y + col]);
      const double g = static_cast<double>(dy[row * ld_dy + col]);
      const double grad = kMode == Mode::softmax ? scale * out * (g - reduced)
                                                 : scale * (g - std::exp(out) * reduced);
      dx[row * ld_dx + col] = static_cast<T>(grad);
    }
  }
}

}  // namespace

template <class T>
void softmax(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y, double scale) {
  detail::require_shape("softmax", "y", y, x.rows, x.cols);
  forward<Mode::softmax>(x.data, x.ld, y.data, y.ld, x.rows, x.cols, scale);
}
template <class T>
void log_softmax(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y, double scale) {
  detail::require_shape("log_softmax", "y", y, x.rows, x.cols);
  forward<Mode::log_softmax>(x.data, x.ld, y.data, y.ld, x.rows, x.cols, scale);
}
template <class T>
void softmax_backward(nondeduced_t<MatrixView<const T>> y, nondeduced_t<MatrixView<const T>> dy,
                      MatrixView<T> dx, double scale) {
  detail::require_shape("softmax_backward", "dy", dy, y.rows, y.cols);
  detail::require_shape("softmax_backward", "dx", dx, y.rows, y.cols);
  backward<Mode::softmax>(y.data, y.ld, dy.data, dy.ld, dx.data, dx.ld, y.rows, y.cols, scale);
}
template <class T>
void log_softmax_backward(nondeduced_t<MatrixView<const T>> y, nondeduced_t<MatrixView<const T>> dy,
                          MatrixView<T> dx, double scale) {
  detail::require_shape("log_softmax_backward", "dy", dy, y.rows, y.cols);
  detail::require_shape("log_softmax_backward", "dx", dx, y.rows, y.cols);
  backward<Mode::log_softmax>(y.data, y.ld, dy.data, dy.ld, dx.data, dx.ld, y.rows, y.cols, scale);
}

#define WARPFUSE_REF_SOFTMAX(T)                                                                  \
  template void softmax<T>(MatrixView<const T>, MatrixView<T>, double);                          \
  template void log_softmax<T>(MatrixView<const T>, MatrixView<T>, double);                      \
  template void softmax_backward<T>(MatrixView<const T>, MatrixView<const T>, MatrixView<T>,     \
                                    double);                                                     \
  template void log_softmax_backward<T>(MatrixView<const T>, MatrixView<const T>, MatrixView<T>, \
                                        double);
WARPFUSE_REF_SOFTMAX(float)
WARPFUSE_REF_SOFTMAX(double)
#undef WARPFUSE_REF_SOFTMAX

}  // namespace warpfuse::ref
