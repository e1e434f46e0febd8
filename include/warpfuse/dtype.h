// warpfuse — the storage dtypes: float, __half and __nv_bfloat16. Arithmetic is always fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace warpfuse {

enum class DType { f32, f16, bf16 };

template <class T>
inline constexpr bool is_storage_dtype_v =
    std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

/// The DType tag of a storage type.
template <class T>
constexpr DType dtype_of() {
  static_assert(is_storage_dtype_v<T>, "warpfuse storage dtypes are float, __half, __nv_bfloat16");
  if constexpr (std::is_same_v<T, float>) {
    return DType::f32;
  } else if constexpr (std::is_same_v<T, __half>) {
    return DType::f16;
  } else {
    return DType::bf16;
  }
}

/// "f32", "f16" or "bf16".
constexpr const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
  }
  return "unknown";
}

}  // namespace warpfuse
