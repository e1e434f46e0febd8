// warpfuse host — launch helpers shared by the row-wise op families (softmax, cross-entropy):
// which strategy holds a row, the warp-strategy shape dispatch, block-per-row launch shapes and the
// shared-memory opt-in. The thresholds and their reasons are documented in host/cuda/softmax.cu.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "kernels/common/rows.cuh"
#include "warpfuse/dtype.h"
#include "warpfuse/error.h"
#include "warpfuse/softmax.h"

namespace warpfuse::detail {

/// Shared memory the block kernels keep for the reductions' static slots and alignment.
constexpr std::int64_t kReservedSharedBytes = 1024;

inline std::size_t dtype_bytes(DType dtype) {
  return dtype == DType::f32 ? 4 : 2;
}

/// Longest row the block strategy caches: `arrays` row-sized arrays of `element_bytes` each.
inline std::int64_t block_max_cols(std::size_t element_bytes, int arrays) {
  const auto shared =
      static_cast<std::int64_t>(current_device_info().shared_memory_per_block_optin);
  const std::int64_t cols =
      (shared - kReservedSharedBytes) / (static_cast<std::int64_t>(element_bytes) * arrays);
  return cols / 8 * 8;  // whole 16-byte packs for every dtype
}

inline SoftmaxStrategy choose_row_strategy(std::int64_t cols, std::size_t element_bytes,
                                           int arrays) {
  if (cols <= kSoftmaxWarpMaxCols) return SoftmaxStrategy::warp;
  if (cols <= block_max_cols(element_bytes, arrays)) return SoftmaxStrategy::block;
  return SoftmaxStrategy::online;
}

/// Threads per row for the block and online strategies: about four packs per thread, between 128
/// (enough loads in flight for a short row) and 1024.
inline unsigned row_block_threads(std::int64_t cols, int pack) {
  const std::int64_t wanted = (cols + 4 * pack - 1) / (4 * pack);
  unsigned threads = 128;
  while (threads < 1024 && threads < wanted) threads *= 2;
  return threads;
}

/// Resolves `requested` for a row of `cols`, throwing Unsupported when a forced strategy cannot
/// hold the row.
inline SoftmaxStrategy resolve_row_strategy(const char* op, SoftmaxStrategy requested,
                                            std::int64_t cols, std::size_t element_bytes,
                                            int arrays) {
  if (requested == SoftmaxStrategy::automatic)
    return choose_row_strategy(cols, element_bytes, arrays);
  if (requested == SoftmaxStrategy::warp && cols > kSoftmaxWarpMaxCols) {
    throw Unsupported(op, "strategy warp holds rows of at most " +
                              std::to_string(kSoftmaxWarpMaxCols) +
                              " columns; cols = " + std::to_string(cols));
  }
  if (requested == SoftmaxStrategy::block && cols > block_max_cols(element_bytes, arrays)) {
    throw Unsupported(
        op, "strategy block caches rows of at most " +
                std::to_string(block_max_cols(element_bytes, arrays)) +
                " columns in this device's shared memory; cols = " + std::to_string(cols));
  }
  return requested;
}

template <int N>
using Int = std::integral_constant<int, N>;

/// Calls f(lanes, per_lane, pack) with compile-time constants for a warp-strategy row of `cols`
/// (<= 1024) columns: vectorised (32 lanes, whole packs per lane) when the rows are pack-aligned
/// and long enough to give every lane a pack; otherwise scalar, with 1..32 lanes per row for short
/// rows so several rows share a warp. Per-lane counts are powers of two, which bounds the number
/// of instantiations; a row that does not fill them is padded (-inf forward, 0 backward).
template <int P, class F>
void dispatch_warp_shape(std::int64_t cols, bool vectorized, F&& f) {
  if (vectorized && cols >= 32 * P) {
    if (cols <= 32 * P) return f(Int<32>{}, Int<P>{}, Int<P>{});
    if constexpr (2 * P <= 32) {
      if (cols <= 64 * P) return f(Int<32>{}, Int<2 * P>{}, Int<P>{});
    }
    if constexpr (4 * P <= 32) {
      if (cols <= 128 * P) return f(Int<32>{}, Int<4 * P>{}, Int<P>{});
    }
    if constexpr (8 * P <= 32) {
      if (cols <= 256 * P) return f(Int<32>{}, Int<8 * P>{}, Int<P>{});
    }
  }
  if (cols <= 1) return f(Int<1>{}, Int<1>{}, Int<1>{});
  if (cols <= 2) return f(Int<2>{}, Int<1>{}, Int<1>{});
  if (cols <= 4) return f(Int<4>{}, Int<1>{}, Int<1>{});
  if (cols <= 8) return f(Int<8>{}, Int<1>{}, Int<1>{});
  if (cols <= 16) return f(Int<16>{}, Int<1>{}, Int<1>{});
  if (cols <= 32) return f(Int<32>{}, Int<1>{}, Int<1>{});
  if (cols <= 64) return f(Int<32>{}, Int<2>{}, Int<1>{});
  if (cols <= 128) return f(Int<32>{}, Int<4>{}, Int<1>{});
  if (cols <= 256) return f(Int<32>{}, Int<8>{}, Int<1>{});
  if (cols <= 512) return f(Int<32>{}, Int<16>{}, Int<1>{});
  return f(Int<32>{}, Int<32>{}, Int<1>{});
}

/// Launch shape of a block-per-row `kernel` over `rows` rows: one block per row up to one full
/// wave at the kernel's real occupancy with `shared_bytes` of row cache per block.
template <class Kernel>
LaunchConfig row_block_config(Kernel kernel, std::int64_t rows, unsigned threads,
                              std::size_t shared_bytes, cudaStream_t stream) {
  return wave_config(kernel, rows, dim3(threads), shared_bytes, stream);
}

/// Kernel names for launch errors, one per strategy.
struct RowKernelNames {
  const char* warp;
  const char* block;
  const char* online;
};

/// Launches a row-wise op under `strategy` (resolved: not automatic) with the kernel argument
/// `args`. The warp kernel is warp_kernel(lanes, per_lane, pack) for the shape dispatch_warp_shape
/// picks; the others are row_kernel(pack, std::true_type) for block and row_kernel(pack,
/// std::false_type) for online, with pack = P when `vectorized`, else 1. The block strategy gets
/// `arrays` row-sized arrays of `element_bytes`-byte elements of dynamic shared memory, each
/// rounded up to whole packs. The one launch sequence shared by softmax, its backward and
/// cross-entropy.
template <int P, class Args, class WarpKernel, class RowKernel>
void launch_rows(const RowKernelNames& names, SoftmaxStrategy strategy, bool vectorized,
                 std::int64_t rows, std::int64_t cols, std::size_t element_bytes, int arrays,
                 const Args& args, cudaStream_t stream, WarpKernel&& warp_kernel,
                 RowKernel&& row_kernel) {
  if (strategy == SoftmaxStrategy::warp) {
    dispatch_warp_shape<P>(cols, vectorized, [&](auto lanes, auto per_lane, auto pack) {
      constexpr int kRowsPerBlock = kWarpRowBlockThreads / decltype(lanes)::value;
      const auto kernel = warp_kernel(lanes, per_lane, pack);
      launch(wave_config(kernel, (rows + kRowsPerBlock - 1) / kRowsPerBlock,
                         dim3(kWarpRowBlockThreads), 0, stream),
             names.warp, kernel, args);
    });
    return;
  }
  const auto launch_block_or_online = [&](auto pack) {
    constexpr int kP = decltype(pack)::value;
    const unsigned threads = row_block_threads(cols, kP);
    if (strategy == SoftmaxStrategy::block) {
      const std::size_t bytes = static_cast<std::size_t>(arrays) *
                                static_cast<std::size_t>((cols + kP - 1) / kP * kP) * element_bytes;
      const auto kernel = row_kernel(pack, std::true_type{});
      allow_dynamic_shared(kernel_handle(kernel), bytes);
      launch(row_block_config(kernel, rows, threads, bytes, stream), names.block, kernel, args);
    } else {
      const auto kernel = row_kernel(pack, std::false_type{});
      launch(row_block_config(kernel, rows, threads, 0, stream), names.online, kernel, args);
    }
  };
  if (vectorized) {
    launch_block_or_online(Int<P>{});
  } else {
    launch_block_or_online(Int<1>{});
  }
}

}  // namespace warpfuse::detail
