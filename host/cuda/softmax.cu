// warpfuse host — softmax and log-softmax: validation and the row-engine launch (the math is in
// kernels/softmax.cuh as the engine's policies; the strategies in host/cuda/rows.h; the API in
// include/warpfuse/softmax.h).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "host/cuda/rows.h"
#include "kernels/softmax.cuh"
#include "warpfuse/error.h"
#include "warpfuse/softmax.h"

namespace warpfuse {

const char* to_string(RowStrategy strategy) {
  switch (strategy) {
    case RowStrategy::automatic:
      return "automatic";
    case RowStrategy::warp:
      return "warp";
    case RowStrategy::block:
      return "block";
    case RowStrategy::online:
      return "online";
    case RowStrategy::cluster:
      return "cluster";
  }
  return "unknown";
}

namespace {

using detail::SoftmaxMode;

void check_options(const char* op, const SoftmaxOptions& options) {
  if (!std::isfinite(options.scale) || options.scale <= 0.0f) {
    throw InvalidArgument(
        op, "options.scale",
        "scale = " + detail::format_number(options.scale) + " must be finite and positive");
  }
  detail::check_row_strategy(op, options.strategy);
}

// --- forward ----------------------------------------------------------------------------------

template <class T, SoftmaxMode kMode>
void run_forward(const char* op, MatrixView<const T> x, MatrixView<T> y,
                 const SoftmaxOptions& options, cudaStream_t stream) {
  detail::check_view(op, "x", x);
  detail::check_view(op, "y", y);
  detail::check_same_shape(op, "y", y, "x", x);
  detail::check_alias(op, "y", y, "x", x);
  check_options(op, options);
  if (x.empty()) return;
  using Policy = detail::SoftmaxPolicy<T, kMode>;
  const detail::RowPlan plan = detail::row_plan<Policy>(op, options.strategy, x.rows, x.cols);
  detail::launch_rows(op, plan, Policy{x.data, y.data, x.rows, x.cols, x.ld, y.ld, options.scale},
                      stream);
}

// --- backward ---------------------------------------------------------------------------------

template <class T, SoftmaxMode kMode>
void run_backward(const char* op, MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx,
                  const SoftmaxOptions& options, cudaStream_t stream) {
  detail::check_view(op, "y", y);
  detail::check_view(op, "dy", dy);
  detail::check_view(op, "dx", dx);
  detail::check_same_shape(op, "dy", dy, "y", y);
  detail::check_same_shape(op, "dx", dx, "y", y);
  detail::check_alias(op, "dx", dx, "y", y);
  detail::check_alias(op, "dx", dx, "dy", dy);
  check_options(op, options);
  if (y.empty()) return;
  using Policy = detail::SoftmaxBackwardPolicy<T, kMode>;
  const detail::RowPlan plan = detail::row_plan<Policy>(op, options.strategy, y.rows, y.cols);
  detail::launch_rows(
      op, plan, Policy{y.data, dy.data, dx.data, y.rows, y.cols, y.ld, dy.ld, dx.ld, options.scale},
      stream);
}

}  // namespace

RowStrategy softmax_strategy_for(std::int64_t cols, DType dtype, SoftmaxPass pass,
                                 std::int64_t rows) {
  return detail::choose_row_strategy(cols, detail::dtype_bytes(dtype),
                                     pass == SoftmaxPass::forward ? 1 : 2, rows);
}

std::int64_t softmax_block_max_cols(DType dtype, SoftmaxPass pass) {
  return detail::block_max_cols(detail::dtype_bytes(dtype), pass == SoftmaxPass::forward ? 1 : 2);
}

template <class T>
void softmax(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y, const SoftmaxOptions& options,
             cudaStream_t stream) {
  run_forward<T, SoftmaxMode::softmax>("softmax", x, y, options, stream);
}

template <class T>
void log_softmax(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y,
                 const SoftmaxOptions& options, cudaStream_t stream) {
  run_forward<T, SoftmaxMode::log_softmax>("log_softmax", x, y, options, stream);
}

template <class T>
void softmax_backward(nondeduced_t<MatrixView<const T>> y, nondeduced_t<MatrixView<const T>> dy,
                      MatrixView<T> dx, const SoftmaxOptions& options, cudaStream_t stream) {
  run_backward<T, SoftmaxMode::softmax>("softmax_backward", y, dy, dx, options, stream);
}

template <class T>
void log_softmax_backward(nondeduced_t<MatrixView<const T>> y, nondeduced_t<MatrixView<const T>> dy,
                          MatrixView<T> dx, const SoftmaxOptions& options, cudaStream_t stream) {
  run_backward<T, SoftmaxMode::log_softmax>("log_softmax_backward", y, dy, dx, options, stream);
}

#define WARPFUSE_INSTANTIATE_SOFTMAX(T)                                                          \
  template void softmax<T>(MatrixView<const T>, MatrixView<T>, const SoftmaxOptions&,            \
                           cudaStream_t);                                                        \
  template void log_softmax<T>(MatrixView<const T>, MatrixView<T>, const SoftmaxOptions&,        \
                               cudaStream_t);                                                    \
  template void softmax_backward<T>(MatrixView<const T>, MatrixView<const T>, MatrixView<T>,     \
                                    const SoftmaxOptions&, cudaStream_t);                        \
  template void log_softmax_backward<T>(MatrixView<const T>, MatrixView<const T>, MatrixView<T>, \
                                        const SoftmaxOptions&, cudaStream_t);
WARPFUSE_INSTANTIATE_SOFTMAX(float)
WARPFUSE_INSTANTIATE_SOFTMAX(__half)
WARPFUSE_INSTANTIATE_SOFTMAX(__nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_SOFTMAX

}  // namespace warpfuse
