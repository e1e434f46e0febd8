// warpfuse kernels — the pieces every loss shares: the workspace layout, the status of bad targets,
// and the deterministic reduction of per-row partial losses.
//
// Workspace layout (LossWorkspace::data, 256-byte aligned):
//   [0, 256)        LossHeader: bad-target status, the cross-entropy denominator and weight sum
//   [256, ...)      float row_partials[rows]: each row's loss (or its contribution to the sum)
// The final reduction is one block: thread t sums rows t, t + blockDim, ... in order, then a block
// all-reduce combines the threads in a fixed tree. Same inputs, same bits, every run.
#pragma once

#include <cstdint>

#include "kernels/common/dialect.cuh"
#include "kernels/common/reduce.cuh"

namespace warpfuse::detail {

constexpr std::int64_t kLossHeaderBytes = 256;
constexpr unsigned kLossReduceThreads = 1024;

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

/// out[0] = scale * sum(partials[0, n)) / divisor, where divisor is *divisor_ptr when given (a
/// divisor of 0 gives 0: every row was ignored) and 1 otherwise. Launch: one block of
/// kLossReduceThreads threads. (A template only so the header can be included by several files.)
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
