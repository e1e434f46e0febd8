// warpfuse tests and benches — the per-dtype tolerances, written once: the tests compare every
// kernel with the double-precision reference under them (tests/test_util.h), the benches check
// the outputs they time under a widened copy (bench/bench_common.h says why).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace warpfuse::test {

/// |actual - expected| <= atol + rtol * |expected|, with expected computed in double (the benches
/// scale atol by the row's largest |expected|).
struct Tolerance {
  double atol;
  double rtol;
};

/// The per-dtype tolerances, written once. They cover one rounding of the result to the storage
/// type (half an ulp: 2^-24, 2^-11, 2^-8 relative) plus fp32 arithmetic and the fast intrinsics,
/// with a margin of a few ulps.
template <class T>
constexpr Tolerance tolerance_for() {
  if constexpr (std::is_same_v<T, float>) {
    return {1e-6, 2e-5};
  } else if constexpr (std::is_same_v<T, __half>) {
    return {1e-4, 2e-3};
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return {1e-3, 1.6e-2};
  } else {
    static_assert(std::is_same_v<T, double>, "no tolerance for this type");
    return {1e-12, 1e-12};
  }
}

}  // namespace warpfuse::test
