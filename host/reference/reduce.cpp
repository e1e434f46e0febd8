// warpfuse::ref — reference reductions (see include/warpfuse/ref/reduce.h).
#include "warpfuse/ref/reduce.h"

#include <cmath>
#include <cstdint>
#include <limits>

namespace warpfuse::ref {

template <class T>
double sum(const T* data, std::int64_t n) {
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) total += static_cast<double>(data[i]);
  return total;
}

template <class T>
double max(const T* data, std::int64_t n) {
  double best = -std::numeric_limits<double>::infinity();
  bool all_nan = n > 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double value = static_cast<double>(data[i]);
    if (std::isnan(value)) continue;
    all_nan = false;
    if (value > best) best = value;
  }
  return all_nan ? std::numeric_limits<double>::quiet_NaN() : best;
}

template double sum<float>(const float*, std::int64_t);
template double sum<double>(const double*, std::int64_t);
template double sum<std::int32_t>(const std::int32_t*, std::int64_t);
template double sum<std::int64_t>(const std::int64_t*, std::int64_t);
template double max<float>(const float*, std::int64_t);
template double max<double>(const double*, std::int64_t);
template double max<std::int32_t>(const std::int32_t*, std::int64_t);
template double max<std::int64_t>(const std::int64_t*, std::int64_t);

}  // namespace warpfuse::ref
