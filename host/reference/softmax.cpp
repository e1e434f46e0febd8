// warpfuse::ref — reference softmax (see include/warpfuse/ref/softmax.h).
#include "warpfuse/ref/softmax.h"

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
void softmax(const T* x, std::int64_t ld_x, T* y, std::int64_t ld_y, std::int64_t rows,
             std::int64_t cols, double scale) {
  forward<Mode::softmax>(x, ld_x, y, ld_y, rows, cols, scale);
}
template <class T>
void log_softmax(const T* x, std::int64_t ld_x, T* y, std::int64_t ld_y, std::int64_t rows,
                 std::int64_t cols, double scale) {
  forward<Mode::log_softmax>(x, ld_x, y, ld_y, rows, cols, scale);
}
template <class T>
void softmax_backward(const T* y, std::int64_t ld_y, const T* dy, std::int64_t ld_dy, T* dx,
                      std::int64_t ld_dx, std::int64_t rows, std::int64_t cols, double scale) {
  backward<Mode::softmax>(y, ld_y, dy, ld_dy, dx, ld_dx, rows, cols, scale);
}
template <class T>
void log_softmax_backward(const T* y, std::int64_t ld_y, const T* dy, std::int64_t ld_dy, T* dx,
                          std::int64_t ld_dx, std::int64_t rows, std::int64_t cols, double scale) {
  backward<Mode::log_softmax>(y, ld_y, dy, ld_dy, dx, ld_dx, rows, cols, scale);
}

template void softmax<float>(const float*, std::int64_t, float*, std::int64_t, std::int64_t,
                             std::int64_t, double);
template void softmax<double>(const double*, std::int64_t, double*, std::int64_t, std::int64_t,
                              std::int64_t, double);
template void log_softmax<float>(const float*, std::int64_t, float*, std::int64_t, std::int64_t,
                                 std::int64_t, double);
template void log_softmax<double>(const double*, std::int64_t, double*, std::int64_t, std::int64_t,
                                  std::int64_t, double);
template void softmax_backward<float>(const float*, std::int64_t, const float*, std::int64_t,
                                      float*, std::int64_t, std::int64_t, std::int64_t, double);
template void softmax_backward<double>(const double*, std::int64_t, const double*, std::int64_t,
                                       double*, std::int64_t, std::int64_t, std::int64_t, double);
template void log_softmax_backward<float>(const float*, std::int64_t, const float*, std::int64_t,
                                          float*, std::int64_t, std::int64_t, std::int64_t, double);
template void log_softmax_backward<double>(const double*, std::int64_t, const double*, std::int64_t,
                                           double*, std::int64_t, std::int64_t, std::int64_t,
                                           double);

}  // namespace warpfuse::ref
