// warpfuse::ref — CPU reference reductions, accumulated in double. The oracle for the device
// reductions in kernels/common/; no CUDA needed.
#pragma once

#include <cstdint>

namespace warpfuse::ref {

/// The sum of data[0, n), accumulated in double in index order. 0 for n == 0.
template <class T>
double sum(const T* data, std::int64_t n);

/// The largest of data[0, n), ignoring NaN unless every element is NaN (IEEE maxNum, as the
/// device's MaxOp). -inf for n == 0.
template <class T>
double max(const T* data, std::int64_t n);

}  // namespace warpfuse::ref
