// warpfuse host — activations: validation, strategy choice, launches (the math and the kernels are
// in kernels/activation.cuh; the API in include/warpfuse/activation.h).
//
// Strategy choice, per call:
//   pack width      16-byte packs (kPackElements<T>) when every matrix of the call has rows that
//                   start at the same offset from a 16-byte boundary (same misalignment of the
//                   pointers, each ld a whole number of packs, or a single row); the pack grid is
//                   shifted by that offset, so an unaligned start costs a scalar head and tail per
//                   row. Otherwise scalar (N = 1): correct for any pointer and ld.
//   flattening      without a bias or a per-column slope, a call whose matrices are all contiguous
//                   runs as one row of rows * cols elements: no partial packs at row ends.
//   tiled forward   with a bias or prelu's per-column slope: blocks of 32 packs x 8 warps over the
//                   row chunks of column_chunking, each thread on one pack for many rows, so the
//                   per-column values are read once per thread, not once per element.
//   flat kernels    forward and the backward without sums: a grid-stride loop of 256-thread blocks,
//                   at most one full wave at the kernel's real occupancy (a cached occupancy
//                   query), so huge inputs launch a bounded grid.
//   tiled backward  when dbias or dslope is requested: blocks of 32 packs x 8 warps over chunks of
//                   rows, then one finishing pass over the per-chunk partials (see the kernels'
//                   header). The chunking depends on the shape only (column_chunking below), which
//                   makes the sums reproducible across runs and devices, and lets the workspace
//                   size be queried without a device.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "kernels/activation.cuh"
#include "warpfuse/activation.h"
#include "warpfuse/error.h"

namespace warpfuse {
namespace {

using detail::LaunchConfig;
using detail::PackGrid;

constexpr unsigned kFlatBlockThreads = detail::kActivationFlatThreads;
constexpr unsigned kFinishBlockThreads = detail::kColumnSumFinishThreads;

/// Chunking of the tiled backward's rows. Aim at about kTargetTileBlocks blocks (8 per SM on a
/// 132-SM H100/H200, enough to fill it), estimating the column tiles from kChunkingTileCols columns
/// per tile (a float tile; the real width depends on dtype and alignment, which the chunking must
/// not). Each chunk holds at least kMinRowsPerChunk rows, so the partials (4 bytes per column and
/// chunk, written and read once) stay a few percent of the matrix traffic.
constexpr std::int64_t kTargetTileBlocks = 1024;
constexpr std::int64_t kChunkingTileCols = 128;
constexpr std::int64_t kMinRowsPerChunk = 64;

struct ColumnChunking {
  std::int64_t rows_per_chunk;
  std::int64_t chunks;
};

ColumnChunking column_chunking(std::int64_t rows, std::int64_t cols) {
  const std::int64_t tiles = (cols + kChunkingTileCols - 1) / kChunkingTileCols;
  const std::int64_t wanted_chunks = tiles >= kTargetTileBlocks ? 1 : kTargetTileBlocks / tiles;
  std::int64_t rows_per_chunk = (rows + wanted_chunks - 1) / wanted_chunks;
  if (rows_per_chunk < kMinRowsPerChunk) rows_per_chunk = kMinRowsPerChunk;
  // Whole rounds of the tile's warps, so every warp of a full chunk adds as many rows.
  rows_per_chunk = (rows_per_chunk + detail::kTileRows - 1) / detail::kTileRows * detail::kTileRows;
  return ColumnChunking{rows_per_chunk, (rows + rows_per_chunk - 1) / rows_per_chunk};
}

int column_sum_count(Activation kind) {
  return kind == Activation::prelu ? 2 : 1;
}

// --- validation ----------------------------------------------------------------------------------

enum class Direction { forward, backward };

void check_params(const char* op, const ActivationParams& params, Direction direction) {
  const int kind = static_cast<int>(params.kind);
  if (kind < 0 || kind > static_cast<int>(Activation::tanh)) {
    throw InvalidArgument(op, "params.kind",
                          "kind = " + std::to_string(kind) + " is not an Activation");
  }
  switch (params.kind) {
    case Activation::leaky_relu:
      if (std::isnan(params.negative_slope)) {
        throw InvalidArgument(op, "params.negative_slope", "negative_slope is NaN");
      }
      if (direction == Direction::backward && params.negative_slope < 0.0f) {
        throw InvalidArgument(
            op, "params.negative_slope",
            "negative_slope = " + detail::format_number(params.negative_slope) +
                " is negative: leaky_relu's backward reads the sign of x from y, which needs "
                "negative_slope >= 0 (use prelu for a negative slope)");
      }
      break;
    case Activation::elu:
      if (!std::isfinite(params.alpha)) {
        throw InvalidArgument(op, "params.alpha",
                              "alpha = " + detail::format_number(params.alpha) + " is not finite");
      }
      break;
    case Activation::softplus:
      if (!std::isfinite(params.beta) || params.beta <= 0.0f) {
        throw InvalidArgument(
            op, "params.beta",
            "beta = " + detail::format_number(params.beta) + " must be finite and positive");
      }
      if (std::isnan(params.threshold)) {
        throw InvalidArgument(op, "params.threshold", "threshold is NaN");
      }
      break;
    default:
      break;
  }
}

/// Vectors of one value per column (bias, slope, dbias, dslope) must have exactly cols values.
template <class T>
void check_per_column(const char* op, const char* arg, const VectorView<T>& values,
                      const char* matrix_name, std::int64_t cols) {
  detail::check_view(op, arg, values);
  if (values.size != cols) {
    throw InvalidArgument(op, arg,
                          "size = " + std::to_string(values.size) + " does not match " +
                              matrix_name + "'s cols = " + std::to_string(cols) +
                              " (one value per column)");
  }
}

template <class T>
void check_slope(const char* op, const ActivationParams& params, const VectorView<const T>& slope,
                 const char* matrix_name, std::int64_t cols) {
  if (params.kind == Activation::prelu) check_per_column(op, "slope", slope, matrix_name, cols);
}

void check_not_prelu_vector(const char* op, const ActivationParams& params) {
  if (params.kind == Activation::prelu) {
    throw InvalidArgument(op, "params.kind",
                          "prelu has a slope per column; a VectorView has no columns: call the "
                          "MatrixView overload with the slope");
  }
}

template <class T>
void check_same_size(const char* op, const char* arg, const VectorView<T>& view,
                     const char* reference_name, std::int64_t size) {
  if (view.size != size) {
    throw InvalidArgument(op, arg,
                          "size = " + std::to_string(view.size) + " does not match " +
                              reference_name + "'s size = " + std::to_string(size));
  }
}

/// An optional tensor passed as {}: no data and no elements.
template <class View>
bool absent(const View& view) {
  return view.data == nullptr && view.empty();
}

template <class T>
MatrixView<T> as_row(const VectorView<T>& vector) {
  return MatrixView<T>(vector.data, 1, vector.size, vector.size);
}

// --- strategy ------------------------------------------------------------------------------------

/// One matrix of a call, for the pack decision: its data and row stride.
struct Operand {
  const void* data;
  std::int64_t ld;
};

/// The pack grid of a rows x cols call with the given pack width N (N = 1: scalar).
PackGrid pack_grid(std::int64_t rows, std::int64_t cols, int pack, std::int64_t shift) {
  const std::int64_t head = shift == 0 ? 0 : std::min<std::int64_t>(pack - shift, cols);
  const std::int64_t body_packs = (cols - head) / pack;
  return PackGrid{rows,
                  cols,
                  shift,
                  (cols + shift + pack - 1) / pack,
                  head,
                  body_packs,
                  cols - body_packs * pack};
}

/// The 16-byte pack grid when every operand's rows start at the same offset from a 16-byte
/// boundary, else the scalar grid (pack width 1). *vectorized says which.
template <class T>
PackGrid choose_pack_grid(std::int64_t rows, std::int64_t cols,
                          std::initializer_list<Operand> operands, bool* vectorized) {
  constexpr int kPack = detail::kPackElements<T>;
  constexpr auto kBytes = static_cast<std::uintptr_t>(sizeof(T) * kPack);
  const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(operands.begin()->data) % kBytes;
  bool aligned_alike = offset % sizeof(T) == 0;
  for (const Operand& operand : operands) {
    aligned_alike = aligned_alike &&
                    reinterpret_cast<std::uintptr_t>(operand.data) % kBytes == offset &&
                    (rows <= 1 || operand.ld % kPack == 0);
  }
  *vectorized = aligned_alike;
  if (!aligned_alike) return pack_grid(rows, cols, 1, 0);
  return pack_grid(rows, cols, kPack, static_cast<std::int64_t>(offset / sizeof(T)));
}

/// Calls f(std::integral_constant<int, N>) with the pack width chosen by choose_pack_grid.
template <class T, class F>
void with_pack_width(bool vectorized, F&& f) {
  if (vectorized) {
    f(std::integral_constant<int, detail::kPackElements<T>>{});
  } else {
    f(std::integral_constant<int, 1>{});
  }
}

/// Whether functor Fn reads y, as the public vocabulary says kind's backward does.
template <class Fn>
constexpr bool reads_output_as(Activation kind) {
  return Fn::kFromOutput == (activation_backward_from(kind) == BackwardFrom::output);
}
static_assert(reads_output_as<detail::ReluFn>(Activation::relu) &&
                  reads_output_as<detail::LeakyReluFn>(Activation::leaky_relu) &&
                  reads_output_as<detail::PreluFn>(Activation::prelu) &&
                  reads_output_as<detail::EluFn>(Activation::elu) &&
                  reads_output_as<detail::EluFn>(Activation::selu) &&
                  reads_output_as<detail::GeluFn>(Activation::gelu) &&
                  reads_output_as<detail::GeluTanhFn>(Activation::gelu_tanh) &&
                  reads_output_as<detail::SiluFn>(Activation::silu) &&
                  reads_output_as<detail::SoftplusFn>(Activation::softplus) &&
                  reads_output_as<detail::SigmoidFn>(Activation::sigmoid) &&
                  reads_output_as<detail::TanhFn>(Activation::tanh),
              "a kernel functor reads a different tensor than activation_backward_from says");

/// The one place an Activation becomes a kernel functor: calls f(functor) for params.kind.
template <class F>
void with_activation(const ActivationParams& params, F&& f) {
  switch (params.kind) {
    case Activation::relu:
      return f(detail::ReluFn{});
    case Activation::leaky_relu:
      return f(detail::LeakyReluFn{params.negative_slope});
    case Activation::prelu:
      return f(detail::PreluFn{});
    case Activation::elu:
      return f(detail::EluFn{params.alpha, 1.0f});
    case Activation::selu:
      return f(detail::EluFn{static_cast<float>(kSeluAlpha), static_cast<float>(kSeluScale)});
    case Activation::gelu:
      return f(detail::GeluFn{});
    case Activation::gelu_tanh:
      return f(detail::GeluTanhFn{});
    case Activation::silu:
      return f(detail::SiluFn{});
    case Activation::softplus:
      return f(detail::SoftplusFn{params.beta, params.threshold});
    case Activation::sigmoid:
      return f(detail::SigmoidFn{});
    case Activation::tanh:
      return f(detail::TanhFn{});
  }
}

/// The tiled kernels' shape: one block per (tile of kTilePacks packs, chunk of rows).
LaunchConfig tiled_config(const PackGrid& grid, const ColumnChunking& chunking,
                          cudaStream_t stream) {
  const std::int64_t tiles = (grid.packs_per_row + detail::kTilePacks - 1) / detail::kTilePacks;
  return LaunchConfig{dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(chunking.chunks)),
                      dim3(detail::kTilePacks, detail::kTileRows), 0, stream};
}

template <class Kernel>
LaunchConfig flat_config(Kernel kernel, const PackGrid& grid, cudaStream_t stream) {
  // The body's packs and the edges' elements are walked one after the other by the same grid.
  const std::int64_t items = grid.rows * std::max(grid.body_packs, grid.edge);
  return detail::wave_config(kernel, (items + kFlatBlockThreads - 1) / kFlatBlockThreads,
                             dim3(kFlatBlockThreads), 0, stream);
}

// --- the ops -------------------------------------------------------------------------------------

/// Validated forward: y = f(x + bias), pre = x + bias when pre.data is not null.
template <class T>
void run_forward(MatrixView<const T> x, const T* bias, MatrixView<T> y, MatrixView<T> pre,
                 const ActivationParams& params, const T* slope, cudaStream_t stream) {
  if (x.empty()) return;
  const bool per_column = bias != nullptr || params.kind == Activation::prelu;
  const bool store_pre = pre.data != nullptr;
  if (!per_column && x.contiguous() && y.contiguous() && (!store_pre || pre.contiguous())) {
    const std::int64_t size = x.size();
    x = MatrixView<const T>(x.data, 1, size, size);
    y = MatrixView<T>(y.data, 1, size, size);
    if (store_pre) pre = MatrixView<T>(pre.data, 1, size, size);
  }
  bool vectorized = false;
  const PackGrid grid =
      store_pre
          ? choose_pack_grid<T>(x.rows, x.cols,
                                {{x.data, x.ld}, {y.data, y.ld}, {pre.data, pre.ld}}, &vectorized)
          : choose_pack_grid<T>(x.rows, x.cols, {{x.data, x.ld}, {y.data, y.ld}}, &vectorized);
  const detail::ActivationForwardArgs<T> args{x.data, x.ld,     bias,   slope, y.data,
                                              y.ld,   pre.data, pre.ld, grid};
  if (!per_column) {
    with_activation(params, [&](auto act) {
      with_pack_width<T>(vectorized, [&](auto pack) {
        constexpr int N = decltype(pack)::value;
        const auto kernel = detail::activation_forward_flat_kernel<decltype(act), N, T>;
        detail::launch(flat_config(kernel, grid, stream), "activation_forward_flat_kernel", kernel,
                       args, act);
      });
    });
    return;
  }
  // Per-column vectors: the tiled traversal, each thread on one pack of columns for a chunk of
  // rows, so bias and slope are read once per thread rather than once per element.
  const ColumnChunking chunking = column_chunking(x.rows, x.cols);
  with_activation(params, [&](auto act) {
    with_pack_width<T>(vectorized, [&](auto pack) {
      constexpr int N = decltype(pack)::value;
      detail::launch(tiled_config(grid, chunking, stream), "activation_forward_tiled_kernel",
                     detail::activation_forward_tiled_kernel<decltype(act), N, T>, args, act,
                     chunking.rows_per_chunk);
    });
  });
}

/// `dx_arg`: dx's name in errors ("dx", or "outputs.dx" in the fused form).
template <class T>
void check_backward_views(const char* op, const MatrixView<const T>& saved,
                          const MatrixView<const T>& dy, const MatrixView<T>& dx,
                          const char* dx_arg = "dx") {
  detail::check_view(op, "saved", saved);
  detail::check_view(op, "dy", dy);
  detail::check_view(op, dx_arg, dx);
  detail::check_same_shape(op, "dy", dy, "saved", saved);
  detail::check_same_shape(op, dx_arg, dx, "saved", saved);
  detail::check_alias(op, dx_arg, dx, "saved", saved);
  detail::check_alias(op, dx_arg, dx, "dy", dy);
}

/// Validated backward. partials.dbias / partials.dslope null: the flat kernel, dx only.
template <class T>
void run_backward(MatrixView<const T> saved, MatrixView<const T> dy, MatrixView<T> dx,
                  const ActivationParams& params, const T* slope, T* dbias, T* dslope,
                  float* workspace, cudaStream_t stream) {
  if (saved.empty()) return;
  const bool sums = dbias != nullptr || dslope != nullptr;
  if (!sums && params.kind != Activation::prelu && saved.contiguous() && dy.contiguous() &&
      dx.contiguous()) {
    const std::int64_t size = saved.size();
    saved = MatrixView<const T>(saved.data, 1, size, size);
    dy = MatrixView<const T>(dy.data, 1, size, size);
    dx = MatrixView<T>(dx.data, 1, size, size);
  }
  bool vectorized = false;
  const PackGrid grid = choose_pack_grid<T>(
      saved.rows, saved.cols, {{saved.data, saved.ld}, {dy.data, dy.ld}, {dx.data, dx.ld}},
      &vectorized);
  const detail::ActivationBackwardArgs<T> args{saved.data, saved.ld, dy.data, dy.ld,
                                               slope,      dx.data,  dx.ld,   grid};
  if (!sums) {
    with_activation(params, [&](auto act) {
      with_pack_width<T>(vectorized, [&](auto pack) {
        constexpr int N = decltype(pack)::value;
        const auto kernel = detail::activation_backward_flat_kernel<decltype(act), N, T>;
        detail::launch(flat_config(kernel, grid, stream), "activation_backward_flat_kernel", kernel,
                       args, act);
      });
    });
    return;
  }
  const ColumnChunking chunking = column_chunking(saved.rows, saved.cols);
  const std::int64_t partial_floats = chunking.chunks * saved.cols;
  const detail::ColumnPartials partials{dbias != nullptr ? workspace : nullptr,
                                        dslope != nullptr ? workspace + partial_floats : nullptr,
                                        chunking.rows_per_chunk};
  with_activation(params, [&](auto act) {
    with_pack_width<T>(vectorized, [&](auto pack) {
      constexpr int N = decltype(pack)::value;
      detail::launch(tiled_config(grid, chunking, stream), "activation_backward_tiled_kernel",
                     detail::activation_backward_tiled_kernel<decltype(act), N, T>, args, act,
                     partials);
    });
  });
  const auto finish_kernel = detail::activation_column_sum_finish_kernel<T>;
  const LaunchConfig finish = detail::wave_config(
      finish_kernel, (saved.cols + kFinishBlockThreads - 1) / kFinishBlockThreads,
      dim3(kFinishBlockThreads), 0, stream);
  const float* sum_partials[2] = {partials.dbias, partials.dslope};
  T* sum_outputs[2] = {dbias, dslope};
  for (int sum = 0; sum < 2; ++sum) {
    if (sum_outputs[sum] == nullptr) continue;
    detail::launch(finish, "activation_column_sum_finish_kernel", finish_kernel, sum_partials[sum],
                   chunking.chunks, saved.cols, sum_outputs[sum]);
  }
}

}  // namespace

std::size_t bias_activation_backward_workspace_bytes(std::int64_t rows, std::int64_t cols,
                                                     Activation kind) {
  constexpr const char* op = "bias_activation_backward_workspace_bytes";
  if (rows < 0)
    throw InvalidArgument(op, "rows", "rows = " + std::to_string(rows) + " is negative");
  if (cols < 0)
    throw InvalidArgument(op, "cols", "cols = " + std::to_string(cols) + " is negative");
  if (rows == 0 || cols == 0) return 0;
  const ColumnChunking chunking = column_chunking(rows, cols);
  return static_cast<std::size_t>(chunking.chunks) * static_cast<std::size_t>(cols) *
         sizeof(float) * static_cast<std::size_t>(column_sum_count(kind));
}

template <class T>
void activation_forward(nondeduced_t<VectorView<const T>> x, VectorView<T> y,
                        const ActivationParams& params, cudaStream_t stream) {
  constexpr const char* op = "activation_forward";
  check_params(op, params, Direction::forward);
  check_not_prelu_vector(op, params);
  detail::check_view(op, "x", x);
  detail::check_view(op, "y", y);
  check_same_size(op, "y", y, "x", x.size);
  detail::check_alias(op, "y", as_row(y), "x", as_row(x));
  run_forward<T>(as_row(x), nullptr, as_row(y), MatrixView<T>(), params, nullptr, stream);
}

template <class T>
void activation_forward(nondeduced_t<MatrixView<const T>> x, MatrixView<T> y,
                        const ActivationParams& params, nondeduced_t<VectorView<const T>> slope,
                        cudaStream_t stream) {
  constexpr const char* op = "activation_forward";
  check_params(op, params, Direction::forward);
  detail::check_view(op, "x", x);
  detail::check_view(op, "y", y);
  detail::check_same_shape(op, "y", y, "x", x);
  detail::check_alias(op, "y", y, "x", x);
  check_slope(op, params, slope, "x", x.cols);
  run_forward<T>(x, nullptr, y, MatrixView<T>(), params, slope.data, stream);
}

template <class T>
void bias_activation_forward(nondeduced_t<MatrixView<const T>> x,
                             nondeduced_t<VectorView<const T>> bias,
                             const BiasActivationOutputs<T>& outputs,
                             const ActivationParams& params,
                             nondeduced_t<VectorView<const T>> slope, cudaStream_t stream) {
  constexpr const char* op = "bias_activation_forward";
  const MatrixView<T> y = outputs.y;
  MatrixView<T> pre = outputs.pre;
  check_params(op, params, Direction::forward);
  detail::check_view(op, "x", x);
  check_per_column(op, "bias", bias, "x", x.cols);
  detail::check_view(op, "outputs.y", y);
  detail::check_same_shape(op, "outputs.y", y, "x", x);
  detail::check_alias(op, "outputs.y", y, "x", x);
  detail::check_disjoint(op, "outputs.y", detail::span_of(y), "bias", detail::span_of(bias));
  if (absent(pre)) {
    pre = MatrixView<T>();
  } else {
    detail::check_view(op, "outputs.pre", pre);
    detail::check_same_shape(op, "outputs.pre", pre, "x", x);
    detail::check_alias(op, "outputs.pre", pre, "x", x);
    detail::check_alias(op, "outputs.pre", pre, "outputs.y", MatrixView<const T>(y));
    if (pre.data == y.data && !x.empty()) {
      throw InvalidArgument(op, "outputs.pre",
                            "is the same matrix as 'outputs.y'; the two outputs must not overlap");
    }
    detail::check_disjoint(op, "outputs.pre", detail::span_of(pre), "bias", detail::span_of(bias));
  }
  check_slope(op, params, slope, "x", x.cols);
  run_forward<T>(x, bias.data, y, pre, params, slope.data, stream);
}

template <class T>
void activation_backward(nondeduced_t<VectorView<const T>> saved,
                         nondeduced_t<VectorView<const T>> dy, VectorView<T> dx,
                         const ActivationParams& params, cudaStream_t stream) {
  constexpr const char* op = "activation_backward";
  check_params(op, params, Direction::backward);
  check_not_prelu_vector(op, params);
  detail::check_view(op, "saved", saved);
  detail::check_view(op, "dy", dy);
  detail::check_view(op, "dx", dx);
  check_same_size(op, "dy", dy, "saved", saved.size);
  check_same_size(op, "dx", dx, "saved", saved.size);
  check_backward_views<T>(op, as_row(saved), as_row(dy), as_row(dx));
  run_backward<T>(as_row(saved), as_row(dy), as_row(dx), params, nullptr, nullptr, nullptr, nullptr,
                  stream);
}

template <class T>
void activation_backward(nondeduced_t<MatrixView<const T>> saved,
                         nondeduced_t<MatrixView<const T>> dy, MatrixView<T> dx,
                         const ActivationParams& params, nondeduced_t<VectorView<const T>> slope,
                         cudaStream_t stream) {
  constexpr const char* op = "activation_backward";
  check_params(op, params, Direction::backward);
  check_backward_views<T>(op, saved, dy, dx);
  check_slope(op, params, slope, "saved", saved.cols);
  run_backward<T>(saved, dy, dx, params, slope.data, nullptr, nullptr, nullptr, stream);
}

template <class T>
void bias_activation_backward(nondeduced_t<MatrixView<const T>> saved,
                              nondeduced_t<MatrixView<const T>> dy,
                              const BiasActivationBackwardOutputs<T>& outputs,
                              const Workspace& workspace, const ActivationParams& params,
                              nondeduced_t<VectorView<const T>> slope, cudaStream_t stream) {
  constexpr const char* op = "bias_activation_backward";
  const MatrixView<T> dx = outputs.dx;
  const VectorView<T> dbias = outputs.dbias;
  const VectorView<T> dslope = outputs.dslope;
  check_params(op, params, Direction::backward);
  check_backward_views<T>(op, saved, dy, dx, "outputs.dx");
  check_slope(op, params, slope, "saved", saved.cols);
  const bool want_dbias = !absent(dbias);
  const bool want_dslope = params.kind == Activation::prelu && !absent(dslope);
  // The column sums share no byte with each other or with any matrix of the call.
  const detail::ByteSpan matrices[] = {detail::span_of(saved), detail::span_of(dy),
                                       detail::span_of(dx), detail::span_of(slope)};
  const char* const matrix_names[] = {"saved", "dy", "outputs.dx", "slope"};
  if (want_dbias) {
    check_per_column(op, "outputs.dbias", dbias, "saved", saved.cols);
    for (int i = 0; i < 4; ++i) {
      detail::check_disjoint(op, "outputs.dbias", detail::span_of(dbias), matrix_names[i],
                             matrices[i]);
    }
  }
  if (want_dslope) {
    check_per_column(op, "outputs.dslope", dslope, "saved", saved.cols);
    for (int i = 0; i < 4; ++i) {
      detail::check_disjoint(op, "outputs.dslope", detail::span_of(dslope), matrix_names[i],
                             matrices[i]);
    }
  }
  if (want_dbias && want_dslope) {
    detail::check_disjoint(op, "outputs.dslope", detail::span_of(dslope), "outputs.dbias",
                           detail::span_of(dbias));
  }
  if (saved.cols == 0) return;
  if (saved.rows == 0) {
    // The sum over no rows is 0; all-zero bytes are 0 in every storage type.
    if (want_dbias) {
      WARPFUSE_CUDA_CHECK(cudaMemsetAsync(dbias.data, 0, dbias.size * sizeof(T), stream));
    }
    if (want_dslope) {
      WARPFUSE_CUDA_CHECK(cudaMemsetAsync(dslope.data, 0, dslope.size * sizeof(T), stream));
    }
    return;
  }
  float* partials = nullptr;
  if (want_dbias || want_dslope) {
    const std::size_t needed =
        bias_activation_backward_workspace_bytes(saved.rows, saved.cols, params.kind);
    detail::check_workspace(op, workspace, needed, "bias_activation_backward_workspace_bytes");
    const detail::ByteSpan scratch = detail::span_of(workspace);
    detail::check_disjoint(op, "workspace", scratch, "saved", detail::span_of(saved));
    detail::check_disjoint(op, "workspace", scratch, "dy", detail::span_of(dy));
    detail::check_disjoint(op, "workspace", scratch, "outputs.dx", detail::span_of(dx));
    detail::check_disjoint(op, "workspace", scratch, "outputs.dbias", detail::span_of(dbias));
    detail::check_disjoint(op, "workspace", scratch, "slope", detail::span_of(slope));
    detail::check_disjoint(op, "workspace", scratch, "outputs.dslope", detail::span_of(dslope));
    partials = static_cast<float*>(workspace.data);
  }
  run_backward<T>(saved, dy, dx, params, slope.data, want_dbias ? dbias.data : nullptr,
                  want_dslope ? dslope.data : nullptr, partials, stream);
}

// --- explicit instantiations ---------------------------------------------------------------------

#define WARPFUSE_INSTANTIATE_ACTIVATION(T)                                                         \
  template void activation_forward<T>(VectorView<const T>, VectorView<T>, const ActivationParams&, \
                                      cudaStream_t);                                               \
  template void activation_forward<T>(MatrixView<const T>, MatrixView<T>, const ActivationParams&, \
                                      VectorView<const T>, cudaStream_t);                          \
  template void bias_activation_forward<T>(                                                        \
      MatrixView<const T>, VectorView<const T>, const BiasActivationOutputs<T>&,                   \
      const ActivationParams&, VectorView<const T>, cudaStream_t);                                 \
  template void activation_backward<T>(VectorView<const T>, VectorView<const T>, VectorView<T>,    \
                                       const ActivationParams&, cudaStream_t);                     \
  template void activation_backward<T>(MatrixView<const T>, MatrixView<const T>, MatrixView<T>,    \
                                       const ActivationParams&, VectorView<const T>,               \
                                       cudaStream_t);                                              \
  template void bias_activation_backward<T>(                                                       \
      MatrixView<const T>, MatrixView<const T>, const BiasActivationBackwardOutputs<T>&,           \
      const Workspace&, const ActivationParams&, VectorView<const T>, cudaStream_t);

WARPFUSE_INSTANTIATE_ACTIVATION(float)
WARPFUSE_INSTANTIATE_ACTIVATION(__half)
WARPFUSE_INSTANTIATE_ACTIVATION(__nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_ACTIVATION

}  // namespace warpfuse
