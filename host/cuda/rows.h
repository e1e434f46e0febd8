// warpfuse host — the one launcher of the row engine (kernels/common/row_engine.cuh): which
// strategy holds a row, the warp strategy's team shape, block sizes, the shared-memory cache and
// the opt-in. Every row-wise op (softmax and its backward, cross-entropy) calls row_plan, then
// launch_rows, with its policy; the stream policies (elementwise losses) call launch_stream_rows.
//
// Strategy choice (row_plan), and why each threshold sits where it does (no GPU measurement yet:
// bench/RESULTS.md; the crossovers are to be moved where the benchmark sweeps put them):
//   cols <= 1024          warp: at most 32 fp32 values per lane and input stay in registers
//                         (kChunks <= 8 packs per lane); the row is read once, no shared memory,
//                         no block barrier. Beyond 1024 the per-lane arrays would spill.
//   cols <= block limit   block: the row is read from DRAM once and re-read from shared memory.
//                         The limit is the device's opt-in shared memory per block, less 1 KiB
//                         for the reductions' static slots, over the policy's cached arrays: on
//                         H100/H200 57 K fp32 / 115 K fp16 columns for one array (softmax,
//                         cross-entropy with index targets), half that for two (the backwards,
//                         probability targets). The exponentials are cached in fp32 where they
//                         fit (every fp32 row; 16-bit rows up to 57 K columns), else recomputed.
//   longer rows           cluster (compute capability >= 9.0, where the device can schedule the
//                         cluster): the row split over a thread-block cluster of 2..16 blocks,
//                         each caching its slice in its own shared memory, the partial maximum
//                         and sums exchanged through distributed shared memory; read from DRAM
//                         once like block, up to 16 blocks' shared memory per row (1.8 M bf16
//                         columns on H100/H200). The cluster is the smallest power of two whose
//                         slices fit half a block's opt-in shared memory (two blocks per SM, so
//                         one block's loads overlap the other's cluster barriers), with fp32
//                         exponentials where they fit in that, else the whole opt-in.
//   few long rows         cluster too when rows * 2 <= SMs and cols >= kClusterMinCols: a block
//                         per row would leave most SMs idle, so the row is spread over enough
//                         blocks (rows x cluster >= SMs, >= kClusterMinSlicePacks packs each).
//   longest rows          online: no cache; one pass for max and denominator together, one for
//                         the output, so 3 row transfers instead of 2, but any length (and every
//                         device without clusters).
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "kernels/common/row_engine.cuh"
#include "warpfuse/dtype.h"
#include "warpfuse/error.h"
#include "warpfuse/row_strategy.h"

namespace warpfuse::detail {

/// Shared memory the block kernels keep for the reductions' static slots and alignment.
constexpr std::int64_t kReservedSharedBytes = 1024;

inline std::size_t dtype_bytes(DType dtype) {
  return dtype == DType::f32 ? 4 : 2;
}

/// Shared memory a block may use for the row cache on the current device.
inline std::int64_t row_cache_capacity() {
  return static_cast<std::int64_t>(current_device_info().shared_memory_per_block_optin) -
         kReservedSharedBytes;
}

/// Longest row the block strategy caches: `arrays` row-sized arrays of `element_bytes` each.
inline std::int64_t block_max_cols(std::size_t element_bytes, int arrays) {
  const std::int64_t cols =
      row_cache_capacity() / (static_cast<std::int64_t>(element_bytes) * arrays);
  return cols / 8 * 8;  // whole 16-byte packs for every dtype
}

/// Rows at least this long go to the cluster strategy when there are too few rows to fill the
/// SMs with a block each.
constexpr std::int64_t kClusterMinCols = 16384;
/// The fewest body packs per block a cluster spreads a short row over.
constexpr std::int64_t kClusterMinSlicePacks = 128;
/// Shared memory a cluster block keeps before its slice: the exchange and reduction slots.
constexpr std::int64_t kClusterReservedBytes = 4096;

/// Bytes per block of a cluster of `blocks` holding a row of `cols`: `arrays` arrays of
/// `element_bytes` each, the first in fp32 when `exp_cache` (the kernel's layout, bounded above
/// by kClusterReservedBytes for the slots).
inline std::int64_t cluster_block_bytes(std::int64_t cols, std::size_t element_bytes, int arrays,
                                        bool exp_cache, int blocks) {
  const std::int64_t pack = 16 / static_cast<std::int64_t>(element_bytes);
  const std::int64_t slice = (cols / pack + blocks - 1) / blocks;
  const std::int64_t first = exp_cache ? slice * pack * 4 : slice * 16;
  return kClusterReservedBytes + first + (arrays - 1) * slice * 16;
}

/// Whether the current device has thread-block clusters (compute capability >= 9.0).
inline bool device_has_clusters() {
  return current_device_info().compute_major >= 9;
}

/// The longest row a cluster of 16 blocks caches (input arrays in their storage type).
inline std::int64_t cluster_max_cols(std::size_t element_bytes, int arrays) {
  const std::int64_t optin =
      static_cast<std::int64_t>(current_device_info().shared_memory_per_block_optin);
  const std::int64_t per_block = (optin - kClusterReservedBytes) / (16 * arrays) * 16;  // packs
  return per_block / 16 * kClusterMaxBlocks * (16 / static_cast<std::int64_t>(element_bytes));
}

/// The strategy `automatic` picks for `rows` rows (0: many) of `cols` with `arrays` cached arrays
/// (the file's header gives the reasons).
inline RowStrategy choose_row_strategy(std::int64_t cols, std::size_t element_bytes, int arrays,
                                       std::int64_t rows = 0) {
  if (cols <= kRowWarpMaxCols) return RowStrategy::warp;
  const bool clusters = device_has_clusters() && cols <= cluster_max_cols(element_bytes, arrays);
  if (cols <= block_max_cols(element_bytes, arrays)) {
    const bool few_rows =
        rows > 0 && rows * 2 <= current_device_info().multiprocessors && cols >= kClusterMinCols;
    return clusters && few_rows ? RowStrategy::cluster : RowStrategy::block;
  }
  return clusters ? RowStrategy::cluster : RowStrategy::online;
}

/// Throws InvalidArgument unless `strategy` is a RowStrategy.
inline void check_row_strategy(const char* op, RowStrategy strategy) {
  const int value = static_cast<int>(strategy);
  if (value < 0 || value > static_cast<int>(RowStrategy::cluster)) {
    throw InvalidArgument(op, "options.strategy",
                          "strategy = " + std::to_string(value) + " is not a RowStrategy");
  }
}

/// Threads per row for the block and online strategies: about four packs per thread, between 128
/// (enough loads in flight for a short row) and 1024.
inline unsigned row_block_threads(std::int64_t cols, int pack) {
  const std::int64_t wanted = (cols + 4 * pack - 1) / (4 * pack);
  unsigned threads = 128;
  while (threads < 1024 && threads < wanted) threads *= 2;
  return threads;
}

/// A resolved strategy: never automatic.
struct RowPlan {
  RowStrategy strategy;
  bool exp_cache;  // block, cluster: input 0 cached in fp32, overwritten by its exponentials
  int cluster_blocks = 0;        // cluster: blocks per cluster (2..16)
  unsigned threads = 0;          // cluster: threads per block
  std::size_t shared_bytes = 0;  // cluster: dynamic shared memory per block
};

/// Threads per block and the row-cache layout of a cluster plan.
template <class Policy>
const void* cluster_kernel_handle(bool exp_cache) {
  if constexpr (Policy::kNormalize && Policy::kStoreUsesExp) {
    if (exp_cache) return kernel_handle(&row_cluster_kernel<Policy, true>);
  }
  return kernel_handle(&row_cluster_kernel<Policy, false>);
}

/// The cluster plan for `rows` rows of `cols` under Policy (the file's header gives the rules);
/// cluster_blocks = 0 when no cluster holds the row or the device cannot schedule one.
template <class Policy>
RowPlan cluster_plan(std::int64_t rows, std::int64_t cols) {
  using T = typename Policy::T;
  constexpr int P = kRowPack<T>;
  constexpr bool kExpCapable = Policy::kNormalize && Policy::kStoreUsesExp;
  static_assert(kClusterScratchFloats<Policy> * 4 <= kClusterReservedBytes,
                "the cluster kernel's slots outgrew kClusterReservedBytes");
  RowPlan none{RowStrategy::cluster, false, 0, 0, 0};
  if (!device_has_clusters()) return none;
  const std::int64_t optin =
      static_cast<std::int64_t>(current_device_info().shared_memory_per_block_optin);
  const std::int64_t sms = current_device_info().multiprocessors;
  const std::int64_t packs = cols / P;
  // Enough blocks to fill the SMs when rows are few, each with a worthwhile slice.
  int spread = 2;
  while (spread < kClusterMaxBlocks && rows * spread < sms &&
         packs / (spread * 2) >= kClusterMinSlicePacks) {
    spread *= 2;
  }
  for (const std::int64_t budget : {optin / 2, optin}) {
    for (const bool exp_cache : {true, false}) {
      if (exp_cache && !kExpCapable) continue;
      for (int blocks = spread; blocks <= kClusterMaxBlocks; blocks *= 2) {
        const std::int64_t bytes = row_cluster_bytes<Policy>(cols, blocks, exp_cache);
        if (bytes > budget) continue;
        const unsigned threads =
            row_block_threads(cluster_slice_packs<Policy>(cols, blocks) * P, P);
        const void* kernel = cluster_kernel_handle<Policy>(exp_cache);
        if (active_clusters(kernel, static_cast<unsigned>(blocks), threads,
                            static_cast<std::size_t>(bytes)) <= 0) {
          continue;
        }
        return RowPlan{RowStrategy::cluster, exp_cache, blocks, threads,
                       static_cast<std::size_t>(bytes)};
      }
    }
  }
  return none;
}

/// Resolves `requested` for rows of `cols` under Policy, throwing Unsupported when a forced
/// strategy cannot hold the row.
template <class Policy>
RowPlan row_plan(const char* op, RowStrategy requested, std::int64_t rows, std::int64_t cols) {
  using T = typename Policy::T;
  constexpr int kArrays = Policy::kInputs;
  RowStrategy strategy = requested;
  if (strategy == RowStrategy::automatic) {
    strategy = choose_row_strategy(cols, sizeof(T), kArrays, rows);
  }
  if (strategy == RowStrategy::cluster) {
    const RowPlan plan = cluster_plan<Policy>(rows, cols);
    if (plan.cluster_blocks > 0) return plan;
    if (requested == RowStrategy::cluster) {
      throw Unsupported(op, device_has_clusters()
                                ? "strategy cluster: no cluster of up to " +
                                      std::to_string(kClusterMaxBlocks) +
                                      " blocks holds rows of cols = " + std::to_string(cols) +
                                      " in this device's shared memory"
                                : "strategy cluster needs thread-block clusters (compute "
                                  "capability 9.0 or newer)");
    }
    // Automatic, and the device cannot schedule the cluster this kernel needs: the online pass.
    strategy = RowStrategy::online;
  }
  if (strategy == RowStrategy::warp && cols > kRowWarpMaxCols) {
    throw Unsupported(op, "strategy warp holds rows of at most " + std::to_string(kRowWarpMaxCols) +
                              " columns; cols = " + std::to_string(cols));
  }
  const std::int64_t block_limit = block_max_cols(sizeof(T), kArrays);
  if (strategy == RowStrategy::block && cols > block_limit) {
    throw Unsupported(
        op, "strategy block caches rows of at most " + std::to_string(block_limit) +
                " columns in this device's shared memory; cols = " + std::to_string(cols));
  }
  const bool exp_cache = strategy == RowStrategy::block && Policy::kNormalize &&
                         Policy::kStoreUsesExp &&
                         row_cache_bytes<Policy>(cols, true) <= row_cache_capacity();
  return RowPlan{strategy, exp_cache};
}

template <int N>
using Int = std::integral_constant<int, N>;

/// Calls f(Int<lanes>, Int<chunks>) for the warp strategy's team over a row of `cols` (<= 1024)
/// elements of P per pack: about one pack per lane for short rows (several rows per warp, an
/// 8-column bf16 row one pack of one lane), 32 lanes with 2..1024 / (32 P) packs each beyond.
/// Powers of two bound the instantiations; a row that does not fill its team leaves lanes idle.
template <int P, class F>
void dispatch_row_warp_shape(std::int64_t cols, F&& f) {
  const std::int64_t packs = (cols + P - 1) / P;  // >= the body packs of any row of cols
  if (packs <= 1) return f(Int<1>{}, Int<1>{});
  if (packs <= 2) return f(Int<2>{}, Int<1>{});
  if (packs <= 4) return f(Int<4>{}, Int<1>{});
  if (packs <= 8) return f(Int<8>{}, Int<1>{});
  if (packs <= 16) return f(Int<16>{}, Int<1>{});
  if (packs <= 32) return f(Int<32>{}, Int<1>{});
  if (packs <= 64) return f(Int<32>{}, Int<2>{});
  if constexpr (kRowWarpMaxCols / (32 * P) >= 8) {
    if (packs > 128) return f(Int<32>{}, Int<8>{});
  }
  return f(Int<32>{}, Int<4>{});
}

/// Launch shape of a block-per-row `kernel` over `rows` rows: one block per row up to one full
/// wave at the kernel's real occupancy with `shared_bytes` of row cache per block.
template <class Kernel>
LaunchConfig row_block_config(Kernel kernel, std::int64_t rows, unsigned threads,
                              std::size_t shared_bytes, cudaStream_t stream) {
  return wave_config(kernel, rows, dim3(threads), shared_bytes, stream);
}

/// Launches the row engine for `policy` under `plan` (row_plan's). `op` names the kernels in
/// launch errors ("<op> row_warp_kernel").
template <class Policy>
void launch_rows(const char* op, const RowPlan& plan, const Policy& policy, cudaStream_t stream) {
  using T = typename Policy::T;
  constexpr int P = kRowPack<T>;
  const std::string name = std::string(op) + " row_" + to_string(plan.strategy) + "_kernel";
  if (plan.strategy == RowStrategy::cluster) {
    const auto run = [&](auto kernel) {
      // active_clusters (cluster_plan) set the kernel's shared-memory and cluster-size opt-ins.
      const std::int64_t wave =
          active_clusters(kernel_handle(kernel), static_cast<unsigned>(plan.cluster_blocks),
                          plan.threads, plan.shared_bytes);
      const std::int64_t clusters = std::max<std::int64_t>(1, std::min(policy.rows, wave));
      launch_clustered(LaunchConfig{dim3(static_cast<unsigned>(clusters * plan.cluster_blocks)),
                                    dim3(plan.threads), plan.shared_bytes, stream},
                       static_cast<unsigned>(plan.cluster_blocks), name.c_str(), kernel, policy);
    };
    if constexpr (Policy::kNormalize && Policy::kStoreUsesExp) {
      if (plan.exp_cache) return run(&row_cluster_kernel<Policy, true>);
    }
    return run(&row_cluster_kernel<Policy, false>);
  }
  if (plan.strategy == RowStrategy::warp) {
    dispatch_row_warp_shape<P>(policy.cols, [&](auto lanes, auto chunks) {
      constexpr int kLanes = decltype(lanes)::value;
      constexpr int kRowsPerBlock = kWarpRowBlockThreads / kLanes;
      const auto kernel = &row_warp_kernel<Policy, kLanes, decltype(chunks)::value>;
      launch(wave_config(kernel, (policy.rows + kRowsPerBlock - 1) / kRowsPerBlock,
                         dim3(kWarpRowBlockThreads), 0, stream),
             name.c_str(), kernel, policy);
    });
    return;
  }
  const unsigned threads = row_block_threads(policy.cols, P);
  if (plan.strategy == RowStrategy::block) {
    const auto bytes =
        static_cast<std::size_t>(row_cache_bytes<Policy>(policy.cols, plan.exp_cache));
    const auto run = [&](auto kernel) {
      allow_dynamic_shared(kernel_handle(kernel), bytes);
      launch(row_block_config(kernel, policy.rows, threads, bytes, stream), name.c_str(), kernel,
             policy);
    };
    if constexpr (Policy::kNormalize && Policy::kStoreUsesExp) {
      if (plan.exp_cache) return run(&row_block_kernel<Policy, true>);
    }
    return run(&row_block_kernel<Policy, false>);
  }
  const auto kernel = &row_online_kernel<Policy>;
  launch(row_block_config(kernel, policy.rows, threads, 0, stream), name.c_str(), kernel, policy);
}

/// Launches the engine's stream traversal for a stream policy (the elementwise losses): rows of
/// up to kRowWarpMaxCols columns get a team of lanes, the smallest power of two (at most 32) that
/// gives each lane at most one register block of packs (a 1-column regression target puts 32
/// rows in a warp), longer rows a block each of row_block_threads(cols) threads. `op` names the
/// kernels in launch errors.
template <class Policy>
void launch_stream_rows(const char* op, const Policy& policy, cudaStream_t stream) {
  using T = typename Policy::T;
  constexpr int P = kRowPack<T>;
  constexpr int kB = kStreamBlockPacks;
  if (policy.cols > kRowWarpMaxCols) {
    const std::string name = std::string(op) + " row_stream_block_kernel";
    const auto kernel = &row_stream_block_kernel<Policy>;
    launch(row_block_config(kernel, policy.rows, row_block_threads(policy.cols, P), 0, stream),
           name.c_str(), kernel, policy);
    return;
  }
  const std::string name = std::string(op) + " row_stream_warp_kernel";
  const auto run = [&](auto lanes) {
    constexpr int kLanes = decltype(lanes)::value;
    constexpr int kRowsPerBlock = kWarpRowBlockThreads / kLanes;
    const auto kernel = &row_stream_warp_kernel<Policy, kLanes>;
    launch(wave_config(kernel, (policy.rows + kRowsPerBlock - 1) / kRowsPerBlock,
                       dim3(kWarpRowBlockThreads), 0, stream),
           name.c_str(), kernel, policy);
  };
  const std::int64_t blocks = (policy.cols + P * kB - 1) / (P * kB);  // register blocks per row
  if (blocks <= 1) return run(Int<1>{});
  if (blocks <= 2) return run(Int<2>{});
  if (blocks <= 4) return run(Int<4>{});
  if (blocks <= 8) return run(Int<8>{});
  if (blocks <= 16) return run(Int<16>{});
  return run(Int<32>{});
}

}  // namespace warpfuse::detail
