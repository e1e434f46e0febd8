// warpfuse kernels — moving rows of a row-major matrix between memory and fp32 registers, and
// the row-to-warp mapping, shared by the row-wise ops (softmax, cross-entropy, losses).
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/pack.cuh"

namespace warpfuse::detail {

/// Threads per block of the warp-per-row kernels: 4 warps.
constexpr int kWarpRowBlockThreads = 128;
/// Most threads per block of the block-per-row kernels (block, online): their __launch_bounds__.
/// The launcher picks 128..1024 per row length (host/cuda/rows.h, row_block_threads).
constexpr int kRowBlockMaxThreads = 1024;

/// Loads kPack elements of a row starting at `col` (a multiple of kPack) into dst as fp32, times
/// `scale`; positions at or past `cols` get `fill`. One 16-byte access when the whole pack is in
/// the row (the caller guarantees row alignment when kPack > 1), scalar accesses otherwise.
template <int kPack, class T>
WF_DEVICE void load_scaled(const T* row, std::int64_t col, std::int64_t cols, float scale,
                           float fill, float* dst) {
  if (kPack > 1 && col + kPack <= cols) {
    const Pack<T, kPack> pack = load_pack<kPack>(row + col);
#pragma unroll
    for (int i = 0; i < kPack; ++i) dst[i] = scale * to_float(pack.elem[i]);
  } else {
#pragma unroll
    for (int i = 0; i < kPack; ++i) {
      dst[i] = col + i < cols ? scale * to_float(row[col + i]) : fill;
    }
  }
}

/// Stores kPack fp32 values converted to T at row[col..], skipping positions at or past `cols`.
template <int kPack, class T>
WF_DEVICE void store_converted(T* row, std::int64_t col, std::int64_t cols, const float* src) {
  if (kPack > 1 && col + kPack <= cols) {
    Pack<T, kPack> pack;
#pragma unroll
    for (int i = 0; i < kPack; ++i) pack.elem[i] = from_float<T>(src[i]);
    store_pack<kPack>(row + col, pack);
  } else {
#pragma unroll
    for (int i = 0; i < kPack; ++i) {
      if (col + i < cols) row[col + i] = from_float<T>(src[i]);
    }
  }
}

/// The first row handled by this thread's warp and the stride between its rows, for warp-strategy
/// kernels with kRowsPerWarp rows per warp. Every lane of a warp iterates the same rows, so the
/// warp's shuffles always have all 32 lanes (rows past the end compute on padding).
template <int kRowsPerWarp>
WF_DEVICE void warp_rows(std::int64_t* first, std::int64_t* stride) {
  const std::int64_t warps_per_block = threads_per_block() / kWarpSize;
  *first = (static_cast<std::int64_t>(blockIdx.x) * warps_per_block + warp_index()) * kRowsPerWarp;
  *stride = static_cast<std::int64_t>(gridDim.x) * warps_per_block * kRowsPerWarp;
}

}  // namespace warpfuse::detail
