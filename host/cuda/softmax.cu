// warpfuse host — softmax and log-softmax: validation, strategy choice, launches (the math and the
// kernels are in kernels/softmax.cuh; the API in include/warpfuse/softmax.h).
//
// Strategy choice (softmax_choose_strategy), and why each threshold sits where it does. No GPU
// measurement exists yet (bench/RESULTS.md); these follow from the kernels' resource use and are to
// be moved where the Benchmarks issue's sweeps put the crossovers:
//   cols <= 1024                 warp: at most 32 fp32 values per lane stay in registers (kPerLane
//                                <= 32 keeps the kernel under ~64 registers, full occupancy); the
//                                row is read once, no shared memory, no block barrier. Beyond 1024
//                                the per-lane array would spill or need more lanes than a warp.
//   cols <= block limit          block: the row is read from DRAM once and re-read from shared
//                                memory (an order of magnitude more bandwidth). The limit is the
//                                device's opt-in shared memory per block, less 1 KiB for the
//                                reductions' static slots: 57 K fp32 / 115 K fp16 columns on
//                                H100/H200 (half that for the backward, which caches y and dy).
//   longer rows                  online: no cache; one pass for max and denominator together, one
//                                for the output, so 3 row transfers instead of 2 (at best 2/3 of
//                                copy bandwidth), but any length.
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

const char* to_string(SoftmaxStrategy strategy) {
  switch (strategy) {
    case SoftmaxStrategy::automatic:
      return "automatic";
    case SoftmaxStrategy::warp:
      return "warp";
    case SoftmaxStrategy::block:
      return "block";
    case SoftmaxStrategy::online:
      return "online";
  }
  return "unknown";
}

namespace {

using detail::SoftmaxMode;

void check_options(const char* op, const SoftmaxOptions& options) {
  if (!std::isfinite(options.scale) || options.scale <= 0.0f) {
    throw InvalidArgument(
        op, "options.scale",
        "scale = " + std::to_string(options.scale) + " must be finite and positive");
  }
  const int strategy = static_cast<int>(options.strategy);
  if (strategy < 0 || strategy > static_cast<int>(SoftmaxStrategy::online)) {
    throw InvalidArgument(op, "options.strategy",
                          "strategy = " + std::to_string(strategy) + " is not a SoftmaxStrategy");
  }
}

template <class T>
constexpr int kPack = detail::kPackElements<T>;

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
  const SoftmaxStrategy strategy =
      detail::resolve_row_strategy(op, options.strategy, x.cols, sizeof(T), 1);
  const detail::SoftmaxArgs<T> args{x.data, y.data, x.rows, x.cols, x.ld, y.ld, options.scale};
  constexpr int P = kPack<T>;
  const bool vectorized =
      detail::can_use_packs<P>(x.data, x.ld) && detail::can_use_packs<P>(y.data, y.ld);
  detail::launch_rows<P>(
      {"softmax_warp_kernel", "softmax_block_kernel", "softmax_online_kernel"}, strategy,
      vectorized, x.rows, x.cols, sizeof(T), 1, args, stream,
      [](auto lanes, auto per_lane, auto pack) {
        return &detail::softmax_warp_kernel<T, kMode, decltype(lanes)::value,
                                            decltype(per_lane)::value, decltype(pack)::value>;
      },
      [](auto pack, auto block) {
        if constexpr (decltype(block)::value) {
          return &detail::softmax_block_kernel<T, kMode, decltype(pack)::value>;
        } else {
          return &detail::softmax_online_kernel<T, kMode, decltype(pack)::value>;
        }
      });
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
  const SoftmaxStrategy strategy =
      detail::resolve_row_strategy(op, options.strategy, y.cols, sizeof(T), 2);
  const detail::SoftmaxBackwardArgs<T> args{y.data, dy.data, dx.data, y.rows,       y.cols,
                                            y.ld,   dy.ld,   dx.ld,   options.scale};
  constexpr int P = kPack<T>;
  const bool vectorized = detail::can_use_packs<P>(y.data, y.ld) &&
                          detail::can_use_packs<P>(dy.data, dy.ld) &&
                          detail::can_use_packs<P>(dx.data, dx.ld);
  detail::launch_rows<P>(
      {"softmax_backward_warp_kernel", "softmax_backward_block_kernel",
       "softmax_backward_online_kernel"},
      strategy, vectorized, y.rows, y.cols, sizeof(T), 2, args, stream,
      [](auto lanes, auto per_lane, auto pack) {
        return &detail::softmax_backward_warp_kernel<
            T, kMode, decltype(lanes)::value, decltype(per_lane)::value, decltype(pack)::value>;
      },
      [](auto pack, auto block) {
        if constexpr (decltype(block)::value) {
          return &detail::softmax_backward_block_kernel<T, kMode, decltype(pack)::value>;
        } else {
          return &detail::softmax_backward_online_kernel<T, kMode, decltype(pack)::value>;
        }
      });
}

}  // namespace

SoftmaxStrategy softmax_strategy_for(std::int64_t cols, DType dtype) {
  return detail::choose_row_strategy(cols, detail::dtype_bytes(dtype), 1);
}

std::int64_t softmax_block_max_cols(DType dtype) {
  return detail::block_max_cols(detail::dtype_bytes(dtype), 1);
}

template <class T>
void softmax(MatrixView<const T> x, MatrixView<T> y, const SoftmaxOptions& options,
             cudaStream_t stream) {
  run_forward<T, SoftmaxMode::softmax>("softmax", x, y, options, stream);
}

template <class T>
void log_softmax(MatrixView<const T> x, MatrixView<T> y, const SoftmaxOptions& options,
                 cudaStream_t stream) {
  run_forward<T, SoftmaxMode::log_softmax>("log_softmax", x, y, options, stream);
}

template <class T>
void softmax_backward(MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx,
                      const SoftmaxOptions& options, cudaStream_t stream) {
  run_backward<T, SoftmaxMode::softmax>("softmax_backward", y, dy, dx, options, stream);
}

template <class T>
void log_softmax_backward(MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx,
                          const SoftmaxOptions& options, cudaStream_t stream) {
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
