// warpfuse kernels — math wrappers, so every kernel spells exp, log and division the same way and
// the exact/fast choice is visible at the call site.
//
//   exact_*  CUDA's standard single-precision functions (expf: at most 2 ulp; logf: 1 ulp).
//   fast_*   the hardware approximations: __expf (2 + 1.16 * |x| ulp; flushes like ex2.approx),
//            __fdividef (2 ulp, but returns 0 when |divisor| is in (2^126, 2^128)).
// Use fast_ only where the result feeds a tolerance that covers it (softmax's exponentials, whose
// relative error is small against the per-dtype tolerance) and the arguments stay in range.
#pragma once

#include <cmath>

#include "kernels/common/dialect.cuh"

namespace warpfuse::detail {

WF_DEVICE float exact_exp(float x) {
  return expf(x);
}
WF_DEVICE float exact_log(float x) {
  return logf(x);
}
WF_DEVICE float exact_tanh(float x) {
  return tanhf(x);
}
WF_DEVICE float exact_div(float x, float y) {
  return x / y;
}
WF_DEVICE float fast_exp(float x) {
  return __expf(x);
}
WF_DEVICE float fast_log(float x) {
  return __logf(x);
}
WF_DEVICE float fast_div(float x, float y) {
  return __fdividef(x, y);
}
WF_DEVICE float fast_rsqrt(float x) {
  return rsqrtf(x);
}

/// Neither infinite nor NaN (a comparison, so it needs no libm overload on either side).
WF_DEVICE bool is_finite(double x) {
  return fabs(x) <= 1.7976931348623157e308;
}

WF_DEVICE float positive_infinity() {
  return __int_as_float(0x7f800000);
}
WF_DEVICE float negative_infinity() {
  return __int_as_float(static_cast<int>(0xff800000u));
}
WF_DEVICE float quiet_nan() {
  return __int_as_float(0x7fc00000);
}

}  // namespace warpfuse::detail
