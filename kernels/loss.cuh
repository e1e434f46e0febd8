// warpfuse kernels — the pieces every loss shares: the workspace layout, the status of bad targets,
// and the deterministic reduction of per-row partial losses.
//
// Workspace layout (Workspace::data, kWorkspaceAlignment = 256-byte aligned):
//   [0, 256)        LossHeader: bad-target status, the cross-entropy denominator and weight sum
//   [256, ...)      float row_partials[rows]: each row's loss (or its contribution to the sum),
//                   rounded up to 64 floats
//   [..., ...)      float block_sums[reduce_blocks(rows)]: the first stage of the reduction
// The reduction of n values is deterministic and scales: when n > kReduceItemsPerBlock, a first
// stage of reduce_blocks(n) blocks sums contiguous chunks of the values (thread t of a block sums
// its chunk's t, t + blockDim, ... in order, a block all-reduce combines the threads in a fixed
// tree), and one block then sums the block sums the same way. The chunking is a function of n
// alone, not of the device or the schedule: same inputs, same bits, every run, on every GPU.
#pragma once

#include <cstdint>

#include "kernels/common/dialect.cuh"
#include "kernels/common/reduce.cuh"

namespace warpfuse::detail {

constexpr std::int64_t kLossHeaderBytes = 256;
constexpr unsigned kLossReduceThreads = 1024;
/// Values each first-stage block sums at least, and the most first-stage blocks: 1M rows take 256
/// blocks, enough to spread the read over every SM of an H200.
constexpr std::int64_t kReduceItemsPerBlock = 4096;
constexpr std::int64_t kMaxReduceBlocks = 1024;

/// First-stage blocks of the reduction of n values: 1 (a single stage) up to kReduceItemsPerBlock
/// values, then one per kReduceItemsPerBlock, at most kMaxReduceBlocks.
WF_HOST_DEVICE std::int64_t reduce_blocks(std::int64_t n) {
  if (n <= kReduceItemsPerBlock) return 1;
  const std::int64_t blocks = (n + kReduceItemsPerBlock - 1) / kReduceItemsPerBlock;
  return blocks < kMaxReduceBlocks ? blocks : kMaxReduceBlocks;
}
/// Values of one first-stage block's chunk (the last may hold fewer).
WF_HOST_DEVICE std::int64_t reduce_chunk(std::int64_t n) {
  const std::int64_t blocks = reduce_blocks(n);
  return (n + blocks - 1) / blocks;
}

struct LossHeader {
  unsigned long long bad_rows;       // count of rows with a class index outside [0, C)
  unsigned long long first_bad_row;  // smallest such row; all bits set when none
  float denominator;                 // cross-entropy mean: sum of the counted rows' weights
  float weight_sum;                  // cross-entropy: sum over classes of the class weights
  float gradient_scale;              // cross-entropy mean, index targets: grad_scale / denominator
};
static_assert(sizeof(LossHeader) <= kLossHeaderBytes, "the header must fit its workspace slot");

/// Records that `row` has a bad target: integer atomics only (order-independent results).
WF_DEVICE void loss_report_bad_row(LossHeader* header, std::int64_t row) {
  atomicAdd(&header->bad_rows, 1ull);
  atomicMin(&header->first_bad_row, static_cast<unsigned long long>(row));
}

/// The reduction's first stage: block b writes block_sums[b] = the sum of values [b chunk,
/// min(n, (b + 1) chunk)) of partials, chunk = reduce_chunk(n). Launch: reduce_blocks(n) blocks of
/// kLossReduceThreads threads.
template <class Partial = float>
__global__ void __launch_bounds__(kLossReduceThreads)
    loss_block_sums_kernel(const Partial* partials, std::int64_t n, Partial* block_sums) {
  const std::int64_t chunk = reduce_chunk(n);
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * chunk;
  const std::int64_t end = begin + chunk < n ? begin + chunk : n;
  Partial sum = Partial(0);
  for (std::int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) sum += partials[i];
  sum = block_all_reduce_sum(sum);
  if (threadIdx.x == 0) block_sums[blockIdx.x] = sum;
}

/// out[0] = scale * sum(partials[0, n)) / divisor, where divisor is *divisor_ptr when given (a
/// divisor of 0 gives 0: every row was ignored) and 1 otherwise: the reduction's last stage, over
/// the values themselves (n <= kReduceItemsPerBlock) or over the first stage's block sums. Launch:
/// one block of kLossReduceThreads threads. (A template so the header can be included by several
/// files.)
template <class Partial = float>
__global__ void __launch_bounds__(kLossReduceThreads)
    loss_reduce_kernel(const Partial* partials, std::int64_t n, float scale,
                       const float* divisor_ptr, float* out) {
  Partial sum = Partial(0);
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += partials[i];
  sum = block_all_reduce_sum(sum);
  if (threadIdx.x == 0) {
    float result = scale * sum;
    if (divisor_ptr != nullptr) {
      const float divisor = *divisor_ptr;
      result = divisor == 0.0f ? 0.0f : result / divisor;
    }
    out[0] = result;
  }
}

}  // namespace warpfuse::detail
