// warpfuse host — the loss ops' shared workspace, status and final reduction
// (include/warpfuse/loss.h, kernels/loss.cuh).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "host/cuda/loss_internal.h"
#include "kernels/loss.cuh"
#include "warpfuse/error.h"
#include "warpfuse/loss.h"

namespace warpfuse {

const char* to_string(Reduction reduction) {
  switch (reduction) {
    case Reduction::none:
      return "none";
    case Reduction::mean:
      return "mean";
    case Reduction::sum:
      return "sum";
    case Reduction::per_sample:
      return "per_sample";
    case Reduction::per_sample_sum:
      return "per_sample_sum";
  }
  return "unknown";
}

LossStatus read_loss_status(const Workspace& workspace, cudaStream_t stream) {
  detail::check_workspace("read_loss_status", workspace, detail::loss_workspace_bytes(0),
                          "a loss workspace's size for 0 rows");
  detail::LossHeader header{};
  WARPFUSE_CUDA_CHECK(
      cudaMemcpyAsync(&header, workspace.data, sizeof(header), cudaMemcpyDeviceToHost, stream));
  WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream));
  LossStatus status;
  status.bad_rows = static_cast<std::int64_t>(header.bad_rows);
  status.first_bad_row =
      header.bad_rows == 0 ? -1 : static_cast<std::int64_t>(header.first_bad_row);
  return status;
}

namespace detail {

std::size_t loss_workspace_bytes(std::int64_t rows) {
  const std::int64_t partials = rows > 0 ? rows : 0;
  const std::int64_t bytes = block_sums_offset_bytes(partials) +
                             reduce_blocks(partials) * static_cast<std::int64_t>(sizeof(float));
  const auto alignment = static_cast<std::int64_t>(kWorkspaceAlignment);
  return static_cast<std::size_t>((bytes + alignment - 1) / alignment * alignment);
}

LossScratch prepare_loss_workspace(const char* op, const char* query, const Workspace& workspace,
                                   std::int64_t rows, cudaStream_t stream) {
  check_workspace(op, workspace, loss_workspace_bytes(rows),
                  (std::string(query) + "(" + std::to_string(rows) + ")").c_str());
  auto* header = static_cast<LossHeader*>(workspace.data);
  // Zero counts, and first_bad_row all ones ("none") so atomicMin can only lower it.
  WARPFUSE_CUDA_CHECK(cudaMemsetAsync(header, 0, sizeof(LossHeader), stream));
  WARPFUSE_CUDA_CHECK(
      cudaMemsetAsync(&header->first_bad_row, 0xFF, sizeof(header->first_bad_row), stream));
  char* base = static_cast<char*>(workspace.data);
  return LossScratch{header, reinterpret_cast<float*>(base + kLossHeaderBytes),
                     reinterpret_cast<float*>(base + block_sums_offset_bytes(rows))};
}

std::int64_t block_sums_offset_bytes(std::int64_t rows) {
  const std::int64_t partials = (std::max<std::int64_t>(rows, 0) + 63) / 64 * 64;
  return kLossHeaderBytes + partials * static_cast<std::int64_t>(sizeof(float));
}

void launch_loss_reduce(const float* partials, std::int64_t n, float scale, const float* divisor,
                        float* block_sums, float* out, cudaStream_t stream) {
  const std::int64_t blocks = reduce_blocks(n);
  if (blocks > 1) {
    launch(LaunchConfig{dim3(static_cast<unsigned>(blocks)), dim3(kLossReduceThreads), 0, stream},
           "loss_block_sums_kernel", loss_block_sums_kernel<float>, partials, n, block_sums);
    partials = block_sums;
    n = blocks;
  }
  launch(LaunchConfig{dim3(1), dim3(kLossReduceThreads), 0, stream}, "loss_reduce_kernel",
         loss_reduce_kernel<float>, partials, n, scale, divisor, out);
}

}  // namespace detail
}  // namespace warpfuse
