// warpfuse kernels — warp and block reductions, written once for every op.
//
// Both are all-reduces: every participating thread gets the result. Combination order is fixed by
// the lane and warp layout (a butterfly inside each warp, then warp 0 over the warps' partials), so
// the same inputs give bitwise the same result on every run: no atomics anywhere.
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/common/dialect.cuh"

namespace warpfuse::detail {

/// a + b. Identity 0.
struct SumOp {
  template <class T>
  WF_HOST_DEVICE T operator()(T a, T b) const {
    return a + b;
  }
  template <class T>
  WF_HOST_DEVICE static T identity() {
    return T(0);
  }
};

/// The larger of a and b. For floats this is fmaxf (IEEE maxNum): a NaN operand is ignored unless
/// both are NaN, which keeps the operation commutative so every lane of a butterfly agrees; callers
/// that must propagate NaN (softmax) do so through the values they compute from the maximum.
/// Identity: -inf for floating types, the lowest value for integers.
struct MaxOp {
  WF_HOST_DEVICE float operator()(float a, float b) const { return fmaxf(a, b); }
  WF_HOST_DEVICE double operator()(double a, double b) const { return fmax(a, b); }
  template <class T, class = std::enable_if_t<std::is_integral_v<T>>>
  WF_HOST_DEVICE T operator()(T a, T b) const {
    return a < b ? b : a;
  }
  template <class T>
  WF_HOST_DEVICE static T identity() {
    if constexpr (std::is_floating_point_v<T>) {
      return -std::numeric_limits<T>::infinity();
    } else {
      return std::numeric_limits<T>::lowest();
    }
  }
};

/// The exponent base the row kernels work in: e^(s x) = 2^(x * s log2(e)), so one FMA forms the
/// exponent of every element and MUFU.EX2 takes it directly (kernels/common/row_engine.cuh).
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

/// The offset subtracted in the exponent for a row (or partial) whose maximum raw value is `max`:
/// fl(max * scale2), scale2 = s log2(e); 0 for an empty or all -inf partial (so -inf elements give
/// 2^-inf = 0, never -inf - -inf).
WF_DEVICE float exp2_offset(float max, float scale2) {
  return max == -std::numeric_limits<float>::infinity() ? 0.0f : max * scale2;
}

/// A running (maximum raw value, sum of 2^((x - maximum) scale2)) of a set of values: the online
/// softmax normaliser (Milakov and Gimelshein, 2018) in base 2. Two partials combine
/// exactly into the normaliser of the union, so one pass over a row yields its maximum and its
/// denominator together.
struct OnlineNormalizer {
  float max;
  float sum;
};

/// Combines OnlineNormalizer partials formed with the same scale2. An empty partial (max = -inf,
/// sum = 0) is the identity. The rescale is skipped when a partial already has the top maximum, so
/// a NaN or +inf element makes the sum NaN (the whole row NaN), exactly as the two-pass formula
/// does.
struct OnlineNormalizerOp {
  float scale2;
  WF_DEVICE float rescaled(OnlineNormalizer part, float top) const {
    if (part.max == top) return part.sum;
    if (part.sum == 0.0f) return 0.0f;
    return part.sum * ex2_approx_ftz((part.max - top) * scale2);
  }
  WF_DEVICE OnlineNormalizer operator()(OnlineNormalizer a, OnlineNormalizer b) const {
    const float top = fmaxf(a.max, b.max);
    return OnlineNormalizer{top, rescaled(a, top) + rescaled(b, top)};
  }
  template <class T>
  WF_HOST_DEVICE static OnlineNormalizer identity() {
    return OnlineNormalizer{-std::numeric_limits<float>::infinity(), 0.0f};
  }
};

/// The warp shuffle every reduction goes through: the CUDA intrinsic for arithmetic types, one
/// shuffle per member for the structs above (the intrinsics take built-in types only).
template <class T>
WF_DEVICE T shfl_xor(unsigned mask, T value, int lane_mask, int width) {
  return __shfl_xor_sync(mask, value, lane_mask, width);
}
WF_DEVICE OnlineNormalizer shfl_xor(unsigned mask, OnlineNormalizer value, int lane_mask,
                                    int width) {
  return OnlineNormalizer{__shfl_xor_sync(mask, value.max, lane_mask, width),
                          __shfl_xor_sync(mask, value.sum, lane_mask, width)};
}

/// Reduces `value` over each aligned group of `Width` lanes (Width a power of two, 1..32) with a
/// xor butterfly; every lane of the group returns the group's result, bitwise identical across the
/// group. Contract: all lanes named in `mask` call it together, and `mask` covers whole groups.
template <int Width = kWarpSize, class T, class Op>
WF_DEVICE T warp_all_reduce(T value, Op op, unsigned mask = kFullMask) {
  static_assert(Width >= 1 && Width <= kWarpSize && (Width & (Width - 1)) == 0,
                "warp_all_reduce: Width must be a power of two in [1, 32]");
#pragma unroll
  for (int offset = Width / 2; offset > 0; offset /= 2) {
    value = op(value, shfl_xor(mask, value, offset, Width));
  }
  return value;
}

template <int Width = kWarpSize, class T>
WF_DEVICE T warp_all_reduce_sum(T value, unsigned mask = kFullMask) {
  return warp_all_reduce<Width>(value, SumOp{}, mask);
}
template <int Width = kWarpSize, class T>
WF_DEVICE T warp_all_reduce_max(T value, unsigned mask = kFullMask) {
  return warp_all_reduce<Width>(value, MaxOp{}, mask);
}

/// Reduces `value` over the whole block; every thread returns the result.
/// Contract: every thread of the block calls it (it contains __syncthreads), and the block holds a
/// whole number of warps, at most 1024 threads. Back-to-back calls are safe without an extra
/// barrier: the shared slots are only rewritten after a barrier every reader has passed.
/// block_all_reduce through caller-provided shared memory: `slots` holds kWarpSize + 1 values
/// (a cluster kernel passes dynamic shared memory; see dialect.cuh).
template <class T, class Op>
WF_DEVICE T block_all_reduce_in(T value, Op op, T* slots) {
  T* const warp_partials = slots;
  T* const block_result = slots + kWarpSize;
  const unsigned lane = lane_index();
  const unsigned warp = warp_index();
  const unsigned warps = threads_per_block() / kWarpSize;
  value = warp_all_reduce(value, op);
  if (lane == 0) warp_partials[warp] = value;
  __syncthreads();
  if (warp == 0) {
    T partial = lane < warps ? warp_partials[lane] : Op::template identity<T>();
    partial = warp_all_reduce(partial, op);
    if (lane == 0) *block_result = partial;
  }
  __syncthreads();
  return *block_result;
}

template <class T, class Op>
WF_DEVICE T block_all_reduce(T value, Op op) {
  __shared__ T slots[kWarpSize + 1];
  return block_all_reduce_in(value, op, slots);
}

/// N sums reduced together over each group of Width lanes: one shuffle per value per round, the
/// rounds shared (more independent shuffles in flight than N separate butterflies).
template <int Width, int N>
WF_DEVICE void warp_all_reduce_sums(float (&values)[N], unsigned mask = kFullMask) {
#pragma unroll
  for (int offset = Width / 2; offset > 0; offset /= 2) {
#pragma unroll
    for (int i = 0; i < N; ++i) values[i] += __shfl_xor_sync(mask, values[i], offset, Width);
  }
}

/// N sums over the whole block, every thread gets them; the contract of block_all_reduce (every
/// thread calls it; back-to-back calls need no extra barrier).
/// block_all_reduce_sums through caller-provided shared memory: `slots` holds N (kWarpSize + 1)
/// floats.
template <int N>
WF_DEVICE void block_all_reduce_sums_in(float (&values)[N], float* slots) {
  float* const warp_partials = slots;                 // [N][kWarpSize]
  float* const block_result = slots + N * kWarpSize;  // [N]
  const unsigned lane = lane_index();
  const unsigned warp = warp_index();
  const unsigned warps = threads_per_block() / kWarpSize;
  warp_all_reduce_sums<kWarpSize>(values);
  if (lane == 0) {
#pragma unroll
    for (int i = 0; i < N; ++i) warp_partials[i * kWarpSize + warp] = values[i];
  }
  __syncthreads();
  if (warp == 0) {
    float partial[N];
#pragma unroll
    for (int i = 0; i < N; ++i)
      partial[i] = lane < warps ? warp_partials[i * kWarpSize + lane] : 0.0f;
    warp_all_reduce_sums<kWarpSize>(partial);
    if (lane == 0) {
#pragma unroll
      for (int i = 0; i < N; ++i) block_result[i] = partial[i];
    }
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < N; ++i) values[i] = block_result[i];
}

template <int N>
WF_DEVICE void block_all_reduce_sums(float (&values)[N]) {
  __shared__ float slots[N * (kWarpSize + 1)];
  block_all_reduce_sums_in(values, slots);
}

template <class T>
WF_DEVICE T block_all_reduce_sum(T value) {
  return block_all_reduce(value, SumOp{});
}
template <class T>
WF_DEVICE T block_all_reduce_max(T value) {
  return block_all_reduce(value, MaxOp{});
}

}  // namespace warpfuse::detail
