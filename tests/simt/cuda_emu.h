// simt — the header the emulated build force-includes (-include simt/cuda_emu.h) into every
// translation unit, so that kernels/ and host/cuda/ compile unchanged with g++.
//
// It takes the CUDA toolkit's host headers for the types (dim3, cudaError_t, __half,
// __nv_bfloat16, ...) and the runtime API declarations (defined by cudart_shim.cpp), then replaces
// the CUDA language pieces with the emulator's: execution-space keywords vanish, __shared__ becomes
// static (blocks run one after another, so a static is exactly one block's shared memory), and the
// built-in variables, barriers, warp intrinsics, atomics and fast-math intrinsics map onto simt::.
#pragma once

#define WARPFUSE_SIMT 1

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "simt/observer.h"
#include "simt/simt.h"

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __constant__ static
#define __launch_bounds__(...)

#define threadIdx (static_cast<const uint3&>(*::simt::detail::g_thread_idx))
#define blockIdx (static_cast<const uint3&>(::simt::detail::g_block_idx))
#define blockDim (static_cast<const dim3&>(::simt::detail::g_block_dim))
#define gridDim (static_cast<const dim3&>(::simt::detail::g_grid_dim))
#define warpSize 32

#define __syncthreads() ::simt::detail::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::simt::syncwarp(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_xor_sync(...) ::simt::shfl_xor(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::simt::shfl_down(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::simt::shfl_up(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_sync(...) ::simt::shfl_idx(__FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(mask, predicate) ::simt::ballot(__FILE__, __LINE__, (mask), (predicate))
#define __all_sync(mask, predicate) \
  (::simt::ballot(__FILE__, __LINE__, (mask), (predicate)) == static_cast<unsigned>(mask))
#define __any_sync(mask, predicate) (::simt::ballot(__FILE__, __LINE__, (mask), (predicate)) != 0u)

// Fibers switch only at synchronisation points, so a read-modify-write is atomic by construction.
// Only integer atomics exist: warpfuse's reductions must not depend on float atomics (DESIGN.md 4).
// Not instrumented by the access observer (they are not races); they report themselves as atomics.
#define SIMT_ATOMIC_FN __attribute__((no_sanitize_thread)) inline
#define SIMT_INTEGER_ATOMICS(T)                                \
  SIMT_ATOMIC_FN T atomicAdd(T* address, T value) {            \
    ::simt::detail::observe_atomic(address, sizeof(T));        \
    const T old = *address;                                    \
    *address = static_cast<T>(old + value);                    \
    return old;                                                \
  }                                                            \
  SIMT_ATOMIC_FN T atomicSub(T* address, T value) {            \
    ::simt::detail::observe_atomic(address, sizeof(T));        \
    const T old = *address;                                    \
    *address = static_cast<T>(old - value);                    \
    return old;                                                \
  }                                                            \
  SIMT_ATOMIC_FN T atomicExch(T* address, T value) {           \
    ::simt::detail::observe_atomic(address, sizeof(T));        \
    const T old = *address;                                    \
    *address = value;                                          \
    return old;                                                \
  }                                                            \
  SIMT_ATOMIC_FN T atomicMax(T* address, T value) {            \
    ::simt::detail::observe_atomic(address, sizeof(T));        \
    const T old = *address;                                    \
    *address = old < value ? value : old;                      \
    return old;                                                \
  }                                                            \
  SIMT_ATOMIC_FN T atomicMin(T* address, T value) {            \
    ::simt::detail::observe_atomic(address, sizeof(T));        \
    const T old = *address;                                    \
    *address = value < old ? value : old;                      \
    return old;                                                \
  }                                                            \
  SIMT_ATOMIC_FN T atomicAnd(T* address, T value) {            \
    ::simt::detail::observe_atomic(address, sizeof(T));        \
    const T old = *address;                                    \
    *address = old & value;                                    \
    return old;                                                \
  }                                                            \
  SIMT_ATOMIC_FN T atomicOr(T* address, T value) {             \
    ::simt::detail::observe_atomic(address, sizeof(T));        \
    const T old = *address;                                    \
    *address = old | value;                                    \
    return old;                                                \
  }                                                            \
  SIMT_ATOMIC_FN T atomicCAS(T* address, T compare, T value) { \
    ::simt::detail::observe_atomic(address, sizeof(T));        \
    const T old = *address;                                    \
    if (old == compare) *address = value;                      \
    return old;                                                \
  }
SIMT_INTEGER_ATOMICS(int)
SIMT_INTEGER_ATOMICS(unsigned int)
SIMT_INTEGER_ATOMICS(unsigned long long)
#undef SIMT_INTEGER_ATOMICS
#undef SIMT_ATOMIC_FN

inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
inline T __ldg(const T* address) {
  return *address;
}

// The fast intrinsics are computed exactly here; tolerances must cover the GPU's approximations.
inline float __expf(float x) {
  return std::exp(x);
}
inline float __logf(float x) {
  return std::log(x);
}
inline float __fdividef(float x, float y) {
  return x / y;
}
inline float __frcp_rn(float x) {
  return 1.0f / x;
}
inline float __saturatef(float x) {
  return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}
inline float rsqrtf(float x) {
  return 1.0f / std::sqrt(x);
}
inline int __float_as_int(float x) {
  int bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
}
inline float __int_as_float(int bits) {
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}
inline int __popc(unsigned int x) {
  return __builtin_popcount(x);
}
inline int __ffs(int x) {
  return __builtin_ffs(x);
}
inline int __clz(int x) {
  return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x));
}

// CUDA's global min/max overloads (same-type, and the mixed signed/unsigned and float/double ones).
#define SIMT_MIN_MAX(T, U, R)                                                             \
  inline R min(T a, U b) {                                                                \
    return static_cast<R>(b) < static_cast<R>(a) ? static_cast<R>(b) : static_cast<R>(a); \
  }                                                                                       \
  inline R max(T a, U b) {                                                                \
    return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(b) : static_cast<R>(a); \
  }
SIMT_MIN_MAX(int, int, int)
SIMT_MIN_MAX(unsigned int, unsigned int, unsigned int)
SIMT_MIN_MAX(int, unsigned int, unsigned int)
SIMT_MIN_MAX(unsigned int, int, unsigned int)
SIMT_MIN_MAX(long, long, long)
SIMT_MIN_MAX(unsigned long, unsigned long, unsigned long)
SIMT_MIN_MAX(long long, long long, long long)
SIMT_MIN_MAX(unsigned long long, unsigned long long, unsigned long long)
SIMT_MIN_MAX(float, float, float)
SIMT_MIN_MAX(double, double, double)
SIMT_MIN_MAX(float, double, double)
SIMT_MIN_MAX(double, float, double)
#undef SIMT_MIN_MAX
