// Planted defects for the kernel gate (scripts/kernel-report --gate): each kernel breaks exactly
// one rule, so that tests/kernel_gate/planted_test.py can show every rule fires, and the control
// kernel breaks none. Compiled for sm_90 by the test, never linked into anything.
#include <cuda_fp16.h>

#include <cstdint>

namespace planted {

/// Control: a pack-4 path with 128-bit loads and stores, launch bounds, nothing else.
template <int kPack>
__global__ void __launch_bounds__(256)
    planted_clean_kernel(const float4* __restrict__ x, float4* __restrict__ y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * 256 + threadIdx.x; i < n; i += gridDim.x * 256) {
    float4 v = x[i];
    v.x *= 2.0f;
    v.y *= 2.0f;
    v.z *= 2.0f;
    v.w *= 2.0f;
    y[i] = v;
  }
}
template __global__ void planted_clean_kernel<4>(const float4*, float4*, std::int64_t);

/// local-memory: a register array written at a runtime index lives in local memory.
template <int kPack>
__global__ void __launch_bounds__(256)
    planted_local_array_kernel(const float4* __restrict__ x, const int* __restrict__ where,
                               float4* __restrict__ y) {
  float values[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) values[i] = static_cast<float>(i);
  const float4 v = x[threadIdx.x];
  values[where[threadIdx.x] & 31] = v.x;
  values[where[threadIdx.x + 256] & 31] += v.y;
  values[where[threadIdx.x + 512] & 31] += v.z * v.w;
  float4 out{0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < 32; i += 4) {
    out.x += values[i];
    out.y += values[i + 1];
    out.z += values[i + 2];
    out.w += values[i + 3];
  }
  y[threadIdx.x] = out;
}
template __global__ void planted_local_array_kernel<4>(const float4*, const int*, float4*);

/// vector-access: a pack-4 path that loads 128 bits but stores its pack as four 32-bit stores.
template <int kPack>
__global__ void __launch_bounds__(256)
    planted_scalar_store_kernel(const float4* __restrict__ x, float* __restrict__ y,
                                std::int64_t n) {
  for (std::int64_t i = blockIdx.x * 256 + threadIdx.x; i < n; i += gridDim.x * 256) {
    const float4 v = x[i];
    y[4 * i] = v.x * 2.0f;
    y[4 * i + 1] = v.y * 2.0f;
    y[4 * i + 2] = v.z * 2.0f;
    y[4 * i + 3] = v.w * 2.0f;
  }
}
template __global__ void planted_scalar_store_kernel<4>(const float4*, float*, std::int64_t);

/// fp64: a float kernel that accumulates in double.
__global__ void __launch_bounds__(256)
    planted_fp64_kernel(const float* __restrict__ x, float* __restrict__ y, int n) {
  double sum = 0.0;
  for (int i = threadIdx.x; i < n; i += 256) sum += static_cast<double>(x[i]) * 1.000001;
  y[threadIdx.x] = static_cast<float>(sum);
}

/// launch-bounds: no __launch_bounds__.
__global__ void planted_unbounded_kernel(const float* __restrict__ x, float* __restrict__ y,
                                         int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    y[i] = x[i] + 1.0f;
  }
}

/// A register-hungry body: 64 live accumulators.
#define PLANTED_HEAVY_BODY                                                \
  float acc[64];                                                          \
  _Pragma("unroll") for (int i = 0; i < 64; ++i) acc[i] = 0.0f;           \
  for (int j = 0; j < n; ++j) {                                           \
    _Pragma("unroll") for (int i = 0; i < 16; ++i) {                      \
      const float4 v = x[j * 16 + i + threadIdx.x];                       \
      acc[4 * i] += v.x * acc[(4 * i + 1) % 64];                          \
      acc[4 * i + 1] += v.y * acc[4 * i];                                 \
      acc[4 * i + 2] += v.z;                                              \
      acc[4 * i + 3] += v.w * acc[4 * i + 2];                             \
    }                                                                     \
  }                                                                       \
  float sum = 0.0f;                                                       \
  _Pragma("unroll") for (int i = 0; i < 64; ++i) sum += acc[i] * (i + 1); \
  y[threadIdx.x] = sum;

/// occupancy: ~130 registers at 256 threads leaves 8 resident warps, under its family's floor.
__global__ void __launch_bounds__(256)
    planted_heavy_kernel(const float4* __restrict__ x, float* __restrict__ y,
                         int n){PLANTED_HEAVY_BODY}

/// register-limit: launch bounds of 1024 threads, but the test assembles its PTX with a .maxnreg
/// of 168 added (as a -maxrregcount or a stale build setting would): ~136 registers x 1024
/// threads do not fit the register file, so every launch would fail.
__global__ void __launch_bounds__(1024)
    planted_over_bounds_kernel(const float4* __restrict__ x, float* __restrict__ y, int n) {
  PLANTED_HEAVY_BODY
}

}  // namespace planted

// --- row-engine families: the op is a policy (the first template argument), the pack comes from
// the policy's storage dtype and the chunks per lane from a template argument (chunks_arg).

template <class T>
struct PlantedPolicy {
  const float4* x;
  float4* y;
};
template <class T>
struct UnlistedPolicy {
  const float4* x;
  float4* y;
};

/// Control: kChunks 128-bit loads and stores per thread, as the family asks of kChunks chunks.
template <class Policy, int kChunks>
__global__ void __launch_bounds__(128) planted_row_clean_kernel(Policy policy) {
  float4 v[kChunks];
#pragma unroll
  for (int k = 0; k < kChunks; ++k) v[k] = policy.x[k * 128 + threadIdx.x];
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    v[k].x += 1.0f;
    policy.y[k * 128 + threadIdx.x] = v[k];
  }
}
template __global__ void planted_row_clean_kernel<PlantedPolicy<float>, 2>(PlantedPolicy<float>);

/// vector-access: a __half policy (pack 8) claiming 4 chunks but moving a single 128-bit pack.
template <class Policy, int kChunks>
__global__ void __launch_bounds__(128) planted_row_short_kernel(Policy policy) {
  float4 v = policy.x[threadIdx.x];
  v.x += 1.0f;
  policy.y[threadIdx.x] = v;
}
template __global__ void planted_row_short_kernel<PlantedPolicy<__half>, 4>(PlantedPolicy<__half>);

/// unknown-family: the kernel's name matches a family, its policy none.
template <class Policy, int kChunks>
__global__ void __launch_bounds__(128) planted_row_unlisted_kernel(Policy policy) {
  policy.y[threadIdx.x] = policy.x[threadIdx.x];
}
template __global__ void planted_row_unlisted_kernel<UnlistedPolicy<float>, 1>(
    UnlistedPolicy<float>);
