// warpfuse kernels — conversion between the storage dtypes and fp32, the arithmetic type.
//
// Loads widen exactly (every __half and __nv_bfloat16 value is a float). Stores round to nearest
// even, so a value that survives the round trip is the closest representable one.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/common/dialect.cuh"

namespace warpfuse::detail {

WF_HOST_DEVICE float to_float(float value) {
  return value;
}
WF_HOST_DEVICE float to_float(__half value) {
  return __half2float(value);
}
WF_HOST_DEVICE float to_float(__nv_bfloat16 value) {
  return __bfloat162float(value);
}

template <class T>
WF_HOST_DEVICE T from_float(float value);
template <>
WF_HOST_DEVICE float from_float<float>(float value) {
  return value;
}
template <>
WF_HOST_DEVICE __half from_float<__half>(float value) {
  return __float2half_rn(value);
}
template <>
WF_HOST_DEVICE __nv_bfloat16 from_float<__nv_bfloat16>(float value) {
  return __float2bfloat16_rn(value);
}

}  // namespace warpfuse::detail
