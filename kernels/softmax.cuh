// warpfuse kernels — softmax and log-softmax over rows, forward and backward.
//
// Math (s = scale, per row):  m = max_k s x_k,  Z = sum_k exp(s x_k - m)
//   softmax      y_c = exp(s x_c - m) / Z          backward  dx_c = s y_c (dy_c - sum_k dy_k y_k)
//   log_softmax  y_c = s x_c - m - log Z           backward  dx_c = s (dy_c - exp(y_c) sum_k dy_k)
// Layout: row-major, element (row, col) at ptr[row * ld + col], 64-bit offsets. Arithmetic and the
// reductions are fp32 whatever the storage type.
//
// Numerics, identical in every strategy (RowNormalizer below is the single place they live):
//   - the row maximum is subtracted before exp, so no finite input overflows;
//   - a row of all -inf has Z = 0: softmax writes 0, log_softmax writes -inf (never NaN);
//   - NaN or +inf anywhere in a row makes Z NaN and so the whole row NaN;
//   - log_softmax computes (s x - m) - log Z without exp, so -inf inputs stay exactly -inf.
//
// Strategies (chosen in host/cuda/softmax.cu, softmax_choose_strategy):
//   warp    softmax_warp_kernel: kLanes lanes per row (1..32), kPerLane values per lane in
//           registers, so the row is read once and written once with no shared memory or
//           __syncthreads; the reductions are xor butterflies over the row's lanes.
//   block   softmax_block_kernel: one block per row; each thread caches its slice of the row in
//           dynamic shared memory (in the storage type: the input is exact there), so the row is
//           read from global memory once; block_all_reduce for max and sum.
//   online  softmax_online_kernel: one block per row, no cache: one pass computes max and Z
//           together (OnlineNormalizer), a second pass writes the output. Any row length; three
//           row-sized transfers instead of two.
// Rows are distributed grid-stride, so any number of rows runs with a bounded grid. 16-byte packs
// are used when every row start is pack-aligned (host checks pointers and strides); a partial pack
// at the end of a row falls back to scalar accesses.
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/common/rows.cuh"

namespace warpfuse::detail {

enum class SoftmaxMode { softmax, log_softmax };

/// Forward arguments: y = softmax(scale * x) over rows x cols.
template <class T>
struct SoftmaxArgs {
  const T* x;
  T* y;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld_x;
  std::int64_t ld_y;
  float scale;
};

/// Backward arguments: dx from the forward output y and the incoming gradient dy.
template <class T>
struct SoftmaxBackwardArgs {
  const T* y;
  const T* dy;
  T* dx;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld_y;
  std::int64_t ld_dy;
  std::int64_t ld_dx;
  float scale;
};

/// A row's reduced maximum and denominator, turned into per-element outputs.
struct RowNormalizer {
  float shift;    // the row maximum, or 0 for an all -inf row (so exp(x - shift) is 0, not NaN)
  float inv_sum;  // 1 / Z; NaN when Z is NaN
  float log_sum;  // log Z
  bool empty;     // Z == 0: every entry was -inf

  /// From the maximum; the denominator is then accumulated with shift().
  WF_DEVICE static float shift_for(float max) { return max == negative_infinity() ? 0.0f : max; }
  WF_DEVICE static RowNormalizer from(float shift, float sum) {
    return RowNormalizer{shift, 1.0f / sum, exact_log(sum), sum == 0.0f};
  }
  template <SoftmaxMode kMode>
  WF_DEVICE float apply(float scaled) const {
    if constexpr (kMode == SoftmaxMode::softmax) {
      return empty ? 0.0f : fast_exp(scaled - shift) * inv_sum;
    } else {
      return empty ? negative_infinity() : (scaled - shift) - log_sum;
    }
  }
};

/// Warp strategy, forward. Grid: 1-D, grid-stride over rows. Block: kWarpRowBlockThreads
/// (whole warps). Each group of kLanes lanes owns one row; lane j holds columns
/// (k * kLanes + j) * kPack + i for k < kPerLane / kPack, i < kPack. No shared memory.
/// Requires cols <= kLanes * kPerLane; kPack > 1 only with pack-aligned rows.
template <class T, SoftmaxMode kMode, int kLanes, int kPerLane, int kPack>
__global__ void __launch_bounds__(kWarpRowBlockThreads) softmax_warp_kernel(SoftmaxArgs<T> args) {
  static_assert(kPerLane % kPack == 0, "a lane holds whole packs");
  constexpr int kRowsPerWarp = kWarpSize / kLanes;
  constexpr int kChunks = kPerLane / kPack;
  const int lane_in_row = static_cast<int>(lane_index()) % kLanes;
  const int group = static_cast<int>(lane_index()) / kLanes;
  std::int64_t first_row, row_stride;
  warp_rows<kRowsPerWarp>(&first_row, &row_stride);
  for (std::int64_t warp_row = first_row; warp_row < args.rows; warp_row += row_stride) {
    const std::int64_t row = warp_row + group;
    const bool active = row < args.rows;
    float values[kPerLane];
    const T* x = args.x + (active ? row : 0) * args.ld_x;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const std::int64_t col = (static_cast<std::int64_t>(k) * kLanes + lane_in_row) * kPack;
      load_scaled<kPack>(x, col, active ? args.cols : 0, args.scale, negative_infinity(),
                         values + k * kPack);
    }
    float max = negative_infinity();
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) max = fmaxf(max, values[i]);
    max = warp_all_reduce_max<kLanes>(max);
    const float shift = RowNormalizer::shift_for(max);
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) sum += fast_exp(values[i] - shift);
    sum = warp_all_reduce_sum<kLanes>(sum);
    if (!active) continue;
    const RowNormalizer norm = RowNormalizer::from(shift, sum);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) values[i] = norm.apply<kMode>(values[i]);
    T* y = args.y + row * args.ld_y;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const std::int64_t col = (static_cast<std::int64_t>(k) * kLanes + lane_in_row) * kPack;
      store_converted<kPack>(y, col, args.cols, values + k * kPack);
    }
  }
}

/// Block strategy, forward. Grid: 1-D, grid-stride over rows, one row per block at a time. Block:
/// any whole number of warps. Dynamic shared memory: cols elements of T (rounded up to whole
/// packs), 16-byte aligned. Thread t caches packs t, t + blockDim, ... of the row and only ever
/// reads back its own packs, so the cache needs no barrier; the reductions provide the rest.
template <class T, SoftmaxMode kMode, int kPack>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1)
    softmax_block_kernel(SoftmaxArgs<T> args) {
  WF_DYNAMIC_SHARED(T, cache);
  const std::int64_t packs = (args.cols + kPack - 1) / kPack;
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  for (std::int64_t row = blockIdx.x; row < args.rows; row += gridDim.x) {
    const T* x = args.x + row * args.ld_x;
    float max = negative_infinity();
    for (std::int64_t p = thread; p < packs; p += threads) {
      float values[kPack];
      load_scaled<kPack>(x, p * kPack, args.cols, 1.0f, 0.0f, values);
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        cache[p * kPack + i] = from_float<T>(values[i]);
        if (p * kPack + i < args.cols) max = fmaxf(max, args.scale * values[i]);
      }
    }
    max = block_all_reduce_max(max);
    const float shift = RowNormalizer::shift_for(max);
    float sum = 0.0f;
    for (std::int64_t p = thread; p < packs; p += threads) {
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        if (p * kPack + i < args.cols) {
          sum += fast_exp(args.scale * to_float(cache[p * kPack + i]) - shift);
        }
      }
    }
    sum = block_all_reduce_sum(sum);
    const RowNormalizer norm = RowNormalizer::from(shift, sum);
    T* y = args.y + row * args.ld_y;
    for (std::int64_t p = thread; p < packs; p += threads) {
      float values[kPack];
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        values[i] = norm.apply<kMode>(args.scale * to_float(cache[p * kPack + i]));
      }
      store_converted<kPack>(y, p * kPack, args.cols, values);
    }
  }
}

/// Online strategy, forward. Grid: 1-D, grid-stride over rows, one row per block at a time. Block:
/// any whole number of warps. No shared memory beyond the reductions'. Pass 1 reads the row once
/// for max and Z together; pass 2 reads it again and writes y (in place is safe: each element is
/// read by the thread that then writes it).
template <class T, SoftmaxMode kMode, int kPack>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1)
    softmax_online_kernel(SoftmaxArgs<T> args) {
  const std::int64_t packs = (args.cols + kPack - 1) / kPack;
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  for (std::int64_t row = blockIdx.x; row < args.rows; row += gridDim.x) {
    const T* x = args.x + row * args.ld_x;
    OnlineNormalizer acc = OnlineNormalizerOp::identity<float>();
    for (std::int64_t p = thread; p < packs; p += threads) {
      float values[kPack];
      load_scaled<kPack>(x, p * kPack, args.cols, args.scale, negative_infinity(), values);
#pragma unroll
      for (int i = 0; i < kPack; ++i) acc = online_normalizer_add(acc, values[i]);
    }
    acc = block_all_reduce(acc, OnlineNormalizerOp{});
    // Z was accumulated relative to the running maximum, which ends as the row maximum; an all
    // -inf row ends as the identity (max -inf, Z 0).
    const RowNormalizer norm = RowNormalizer::from(RowNormalizer::shift_for(acc.max), acc.sum);
    T* y = args.y + row * args.ld_y;
    for (std::int64_t p = thread; p < packs; p += threads) {
      float values[kPack];
      load_scaled<kPack>(x, p * kPack, args.cols, args.scale, negative_infinity(), values);
#pragma unroll
      for (int i = 0; i < kPack; ++i) values[i] = norm.apply<kMode>(values[i]);
      store_converted<kPack>(y, p * kPack, args.cols, values);
    }
  }
}

// --- backward ------------------------------------------------------------------------------------

/// The per-row reduction of the backward: sum dy * y (softmax) or sum dy (log_softmax).
template <SoftmaxMode kMode>
WF_DEVICE float backward_term(float y, float dy) {
  if constexpr (kMode == SoftmaxMode::softmax) {
    return dy * y;
  } else {
    return dy;
  }
}

/// dx from y, dy and the row's reduction.
template <SoftmaxMode kMode>
WF_DEVICE float backward_value(float y, float dy, float reduced, float scale) {
  if constexpr (kMode == SoftmaxMode::softmax) {
    return scale * y * (dy - reduced);
  } else {
    return scale * (dy - exact_exp(y) * reduced);
  }
}

/// Warp strategy, backward: as softmax_warp_kernel, with y and dy both held in registers.
template <class T, SoftmaxMode kMode, int kLanes, int kPerLane, int kPack>
__global__ void __launch_bounds__(kWarpRowBlockThreads)
    softmax_backward_warp_kernel(SoftmaxBackwardArgs<T> args) {
  static_assert(kPerLane % kPack == 0, "a lane holds whole packs");
  constexpr int kRowsPerWarp = kWarpSize / kLanes;
  constexpr int kChunks = kPerLane / kPack;
  const int lane_in_row = static_cast<int>(lane_index()) % kLanes;
  const int group = static_cast<int>(lane_index()) / kLanes;
  std::int64_t first_row, row_stride;
  warp_rows<kRowsPerWarp>(&first_row, &row_stride);
  for (std::int64_t warp_row = first_row; warp_row < args.rows; warp_row += row_stride) {
    const std::int64_t row = warp_row + group;
    const bool active = row < args.rows;
    const std::int64_t cols = active ? args.cols : 0;
    const T* y_row = args.y + (active ? row : 0) * args.ld_y;
    const T* dy_row = args.dy + (active ? row : 0) * args.ld_dy;
    float y[kPerLane];
    float dy[kPerLane];
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const std::int64_t col = (static_cast<std::int64_t>(k) * kLanes + lane_in_row) * kPack;
      load_scaled<kPack>(y_row, col, cols, 1.0f, 0.0f, y + k * kPack);
      load_scaled<kPack>(dy_row, col, cols, 1.0f, 0.0f, dy + k * kPack);
    }
    float reduced = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) reduced += backward_term<kMode>(y[i], dy[i]);
    reduced = warp_all_reduce_sum<kLanes>(reduced);
    if (!active) continue;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      y[i] = backward_value<kMode>(y[i], dy[i], reduced, args.scale);
    T* dx = args.dx + row * args.ld_dx;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const std::int64_t col = (static_cast<std::int64_t>(k) * kLanes + lane_in_row) * kPack;
      store_converted<kPack>(dx, col, args.cols, y + k * kPack);
    }
  }
}

/// Block strategy, backward. As softmax_block_kernel; the cache holds the row of y followed by the
/// row of dy: 2 * cols elements of T (each rounded up to whole packs).
template <class T, SoftmaxMode kMode, int kPack>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1)
    softmax_backward_block_kernel(SoftmaxBackwardArgs<T> args) {
  WF_DYNAMIC_SHARED(T, cache);
  const std::int64_t packs = (args.cols + kPack - 1) / kPack;
  T* y_cache = cache;
  T* dy_cache = cache + packs * kPack;
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  for (std::int64_t row = blockIdx.x; row < args.rows; row += gridDim.x) {
    const T* y_row = args.y + row * args.ld_y;
    const T* dy_row = args.dy + row * args.ld_dy;
    float reduced = 0.0f;
    for (std::int64_t p = thread; p < packs; p += threads) {
      float y[kPack];
      float dy[kPack];
      load_scaled<kPack>(y_row, p * kPack, args.cols, 1.0f, 0.0f, y);
      load_scaled<kPack>(dy_row, p * kPack, args.cols, 1.0f, 0.0f, dy);
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        y_cache[p * kPack + i] = from_float<T>(y[i]);
        dy_cache[p * kPack + i] = from_float<T>(dy[i]);
        reduced += backward_term<kMode>(y[i], dy[i]);
      }
    }
    reduced = block_all_reduce_sum(reduced);
    T* dx = args.dx + row * args.ld_dx;
    for (std::int64_t p = thread; p < packs; p += threads) {
      float values[kPack];
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        values[i] = backward_value<kMode>(to_float(y_cache[p * kPack + i]),
                                          to_float(dy_cache[p * kPack + i]), reduced, args.scale);
      }
      store_converted<kPack>(dx, p * kPack, args.cols, values);
    }
  }
}

/// Online strategy, backward: one block per row, no cache; pass 1 reads y and dy for the
/// reduction, pass 2 reads them again and writes dx. Any row length.
template <class T, SoftmaxMode kMode, int kPack>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1)
    softmax_backward_online_kernel(SoftmaxBackwardArgs<T> args) {
  const std::int64_t packs = (args.cols + kPack - 1) / kPack;
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  for (std::int64_t row = blockIdx.x; row < args.rows; row += gridDim.x) {
    const T* y_row = args.y + row * args.ld_y;
    const T* dy_row = args.dy + row * args.ld_dy;
    float reduced = 0.0f;
    for (std::int64_t p = thread; p < packs; p += threads) {
      float y[kPack];
      float dy[kPack];
      load_scaled<kPack>(y_row, p * kPack, args.cols, 1.0f, 0.0f, y);
      load_scaled<kPack>(dy_row, p * kPack, args.cols, 1.0f, 0.0f, dy);
#pragma unroll
      for (int i = 0; i < kPack; ++i) reduced += backward_term<kMode>(y[i], dy[i]);
    }
    reduced = block_all_reduce_sum(reduced);
    T* dx = args.dx + row * args.ld_dx;
    for (std::int64_t p = thread; p < packs; p += threads) {
      float y[kPack];
      float dy[kPack];
      load_scaled<kPack>(y_row, p * kPack, args.cols, 1.0f, 0.0f, y);
      load_scaled<kPack>(dy_row, p * kPack, args.cols, 1.0f, 0.0f, dy);
#pragma unroll
      for (int i = 0; i < kPack; ++i)
        y[i] = backward_value<kMode>(y[i], dy[i], reduced, args.scale);
      store_converted<kPack>(dx, p * kPack, args.cols, y);
    }
  }
}

}  // namespace warpfuse::detail
