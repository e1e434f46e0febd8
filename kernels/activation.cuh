// warpfuse kernels — activations: elementwise and fused bias + activation forward, backward, and
// the deterministic column sums of the fused backward (dbias, PReLU's dslope).
//
// Math (formulas, kink and special-value conventions: include/warpfuse/ref/activation.h):
//   forward            y[r, c] = f(x[r, c] + bias[c]), pre[r, c] = x[r, c] + bias[c]   (bias, pre
//                      optional; prelu reads slope[c])
//   backward           dx[r, c] = dy[r, c] f'(.), f' computed from saved[r, c]: x (the
//                      pre-activation) or y, as activation_backward_from says
//   column sums        dbias[c] = sum_r dx[r, c], dslope[c] = sum_r dy[r, c] min(x[r, c], 0)
// Layout: every matrix is row-major with its own row stride (ld >= cols); bias and slope are
// contiguous, one value per column. A contiguous array is a 1 x n matrix.
// Numerics: storage T is float, __half or __nv_bfloat16; every value is widened to fp32, computed
// with CUDA's accurate single-precision functions (expf, expm1f, log1pf, erfcf, tanhf: activations
// are memory bound, the fast intrinsics would buy nothing), and rounded once on store. pre is
// stored rounded to T, y is computed from the unrounded fp32 sum. Column sums add the fp32
// (unrounded) dx.
//
// Strategies (chosen in host/cuda/activation.cu):
//   flat   activation_forward_flat_kernel (no per-column vectors), activation_backward_flat_kernel:
//          grid-stride loops over the (row, whole pack) pairs, then over the (row, edge element)
//          pairs. A pack is N consecutive columns of one row; with N = kPackElements<T> (16 bytes)
//          the pack grid is shifted by `shift` columns so that whole packs sit on 16-byte
//          boundaries: pack p covers columns [p N - shift, p N - shift + N); the columns before
//          the first whole pack (the head) and after the last (the tail) are the edge elements.
//          N = 1 is the scalar fallback when the tensors are not aligned alike.
//   tiled  activation_forward_tiled_kernel (a bias or prelu's slope): thread (p, r) of block
//          (tile, chunk) keeps pack tile * 32 + p for rows r, r + 8, ... of the chunk and reads its
//          per-column values once.
//          activation_backward_tiled_kernel: the backward plus per-column partial sums, same tiles.
//          A block owns a tile of 32 packs x one chunk of rows; its 8 warps take every 8th row of
//          the chunk, each thread adds its column's values in row order in fp32, and the block
//          combines the 8 warps' sums in warp order into one fp32 partial per column and chunk
//          (caller-provided workspace). activation_column_sum_finish_kernel then adds a column's
//          partials in chunk order. The order of every addition is fixed by the shape alone (not by
//          pack width, alignment, device or schedule): the sums are bitwise reproducible, with no
//          atomics.
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/pack.cuh"

namespace warpfuse::detail {

// --- scalar helpers ------------------------------------------------------------------------------

WF_DEVICE bool is_nan(float x) {
  return x != x;
}
WF_DEVICE bool is_inf(float x) {
  return fabsf(x) == positive_infinity();
}
WF_DEVICE float logistic(float z) {
  return exact_div(1.0f, 1.0f + exact_exp(-z));
}

// --- the activations -----------------------------------------------------------------------------
// Each functor: forward(x, slope) = f(x); backward(saved, dy, slope) = dx from x or y as
// kFromOutput says; slope is prelu's per-column slope (0 for the others, which ignore it).
// kPerColumnSlope tells the kernels to load slope[c].

struct ReluFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = true;
  WF_DEVICE float forward(float x, float) const { return x <= 0.0f ? 0.0f : x; }
  // A select, as PyTorch's threshold_backward: 0 where y <= 0 even for a NaN or infinite dy.
  WF_DEVICE float backward(float y, float dy, float) const {
    return is_nan(y) ? y : (y > 0.0f ? dy : 0.0f);
  }
};

struct LeakyReluFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = true;  // y > 0 exactly when x > 0, given negative_slope >= 0
  float negative_slope;
  WF_DEVICE float forward(float x, float) const { return x > 0.0f ? x : negative_slope * x; }
  WF_DEVICE float backward(float y, float dy, float) const {
    return is_nan(y) ? y : (y > 0.0f ? dy : negative_slope * dy);
  }
};

struct PreluFn {
  static constexpr bool kPerColumnSlope = true;
  static constexpr bool kFromOutput = false;  // the slope is learnt and may be negative
  WF_DEVICE float forward(float x, float slope) const { return x > 0.0f ? x : slope * x; }
  WF_DEVICE float backward(float x, float dy, float slope) const {
    return is_nan(x) ? x : (x > 0.0f ? dy : slope * dy);
  }
  /// This element's share of dL/dslope: dy * min(x, 0).
  WF_DEVICE float slope_term(float x, float dy) const { return x > 0.0f ? 0.0f : x * dy; }
};

/// elu, and selu as scale * elu with fixed alpha: expm1 keeps full precision for x near 0-.
struct EluFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = false;  // from y, y + alpha would cancel for x << 0
  float alpha;
  float scale;
  WF_DEVICE float forward(float x, float) const {
    return scale * (x > 0.0f ? x : alpha * expm1f(x));
  }
  WF_DEVICE float backward(float x, float dy, float) const {
    return dy * (scale * (x > 0.0f ? 1.0f : alpha * exact_exp(x)));
  }
};

/// x Phi(x) through erfc: for x << 0, 1 + erf(x / sqrt 2) would cancel to nothing.
struct GeluFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = false;
  WF_DEVICE float forward(float x, float) const {
    if (x == negative_infinity()) return 0.0f;
    return 0.5f * x * erfcf(-x * 0.70710678f);
  }
  WF_DEVICE float backward(float x, float dy, float) const {
    float derivative;
    if (is_inf(x)) {
      derivative = x > 0.0f ? 1.0f : 0.0f;
    } else {
      derivative = 0.5f * erfcf(-x * 0.70710678f) + x * 0.39894228f * exact_exp(-0.5f * x * x);
    }
    return dy * derivative;
  }
};

/// 0.5 x (1 + tanh u) written as x sigma(2u), which neither cancels for x << 0 nor forms inf / inf.
struct GeluTanhFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = false;
  static WF_DEVICE float u(float x) { return 0.79788456f * (x + 0.044715f * x * x * x); }
  WF_DEVICE float forward(float x, float) const {
    if (x == negative_infinity()) return 0.0f;
    return x * logistic(2.0f * u(x));
  }
  WF_DEVICE float backward(float x, float dy, float) const {
    const float s = logistic(2.0f * u(x));
    const float spread = s * (1.0f - s);
    // Where s saturates to exactly 0 or 1, spread is 0 and the second term vanishes; skipping it
    // keeps x * u'(x) (infinite for |x| > 1e19) from turning that 0 into NaN.
    const float derivative =
        spread == 0.0f ? s : s + 2.0f * x * spread * (0.79788456f * (1.0f + 0.134145f * x * x));
    return dy * derivative;
  }
};

struct SiluFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = false;
  WF_DEVICE float forward(float x, float) const {
    if (x == negative_infinity()) return 0.0f;
    return x * logistic(x);
  }
  WF_DEVICE float backward(float x, float dy, float) const {
    float derivative;
    if (is_inf(x)) {
      derivative = x > 0.0f ? 1.0f : 0.0f;
    } else {
      const float s = logistic(x);
      derivative = s * (1.0f + x * (1.0f - s));
    }
    return dy * derivative;
  }
};

/// log(1 + e^z) / beta as (max(z, 0) + log1p(e^-|z|)) / beta: no overflow at any threshold; the
/// linear branch above the threshold is PyTorch's, kept for bitwise-equal large outputs.
struct SoftplusFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = false;
  float beta;
  float threshold;
  WF_DEVICE float forward(float x, float) const {
    const float z = beta * x;
    if (z > threshold) return x;
    const float soft = z <= 0.0f ? log1pf(exact_exp(z)) : z + log1pf(exact_exp(-z));
    return soft / beta;
  }
  WF_DEVICE float backward(float x, float dy, float) const {
    const float z = beta * x;
    return dy * (z > threshold ? 1.0f : logistic(z));
  }
};

struct SigmoidFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = true;
  WF_DEVICE float forward(float x, float) const { return logistic(x); }
  WF_DEVICE float backward(float y, float dy, float) const { return dy * (y * (1.0f - y)); }
};

struct TanhFn {
  static constexpr bool kPerColumnSlope = false;
  static constexpr bool kFromOutput = true;
  WF_DEVICE float forward(float x, float) const { return exact_tanh(x); }
  // (1 - y)(1 + y), not 1 - y * y: 1 - y is exact for y near 1, where 1 - y * y would cancel.
  WF_DEVICE float backward(float y, float dy, float) const {
    return dy * ((1.0f - y) * (1.0f + y));
  }
};

// --- kernel arguments ----------------------------------------------------------------------------

/// The pack grid shared by every tensor of one launch: rows x packs_per_row packs of N columns,
/// pack p of a row covering columns [p N - shift, p N - shift + N). The same columns split per row
/// into `head` leading columns (before the first 16-byte boundary), `body_packs` whole packs from
/// column `head`, and `edge - head` trailing columns: the flat kernels walk the body with one
/// vector access per array and the head and tail element by element.
struct PackGrid {
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t shift;
  std::int64_t packs_per_row;
  std::int64_t head;
  std::int64_t body_packs;
  std::int64_t edge;
};

template <class T>
struct ActivationForwardArgs {
  const T* x;
  std::int64_t ld_x;
  const T* bias;   ///< cols values, or null
  const T* slope;  ///< cols values (prelu), or null
  T* y;
  std::int64_t ld_y;
  T* pre;  ///< receives x + bias, or null
  std::int64_t ld_pre;
  PackGrid grid;
};

template <class T>
struct ActivationBackwardArgs {
  const T* saved;  ///< x or y, as the functor's kFromOutput says
  std::int64_t ld_saved;
  const T* dy;
  std::int64_t ld_dy;
  const T* slope;  ///< cols values (prelu), or null
  T* dx;
  std::int64_t ld_dx;
  PackGrid grid;
};

/// Where the tiled backward puts its per-chunk column sums: chunks x cols fp32 values each, in the
/// caller's workspace; a null pointer skips that sum.
struct ColumnPartials {
  float* dbias;
  float* dslope;
  std::int64_t rows_per_chunk;
};

// --- pack access ---------------------------------------------------------------------------------

/// Pack `pack` of a row (tiled backward), as its first column and whether all N lie in the row.
struct PackColumns {
  std::int64_t first;
  bool whole;
  WF_DEVICE bool holds(int k, std::int64_t cols) const {
    return whole || (first + k >= 0 && first + k < cols);
  }
};

template <int N>
WF_DEVICE PackColumns pack_columns(const PackGrid& grid, std::int64_t pack) {
  const std::int64_t first = pack * N - grid.shift;
  return PackColumns{first, first >= 0 && first + N <= grid.cols};
}

/// Widens M values of an array at `ptr` (one M-element access: 16 bytes for a whole pack, one
/// element for M = 1) into out.
template <int M, class T>
WF_DEVICE void load_values(const T* ptr, float (&out)[M]) {
  const Pack<T, M> pack = load_pack<M>(ptr);
#pragma unroll
  for (int k = 0; k < M; ++k) out[k] = to_float(pack.elem[k]);
}

/// Rounds M values and stores them as one M-element access.
template <int M, class T>
WF_DEVICE void store_values(T* ptr, const float (&in)[M]) {
  Pack<T, M> pack;
#pragma unroll
  for (int k = 0; k < M; ++k) pack.elem[k] = from_float<T>(in[k]);
  store_pack<M>(ptr, pack);
}

/// Per-column values (bias, slope) of columns [first, first + M): scalar loads, since these vectors
/// need not share the matrices' alignment and stay in cache.
template <int M, class T>
WF_DEVICE void load_column_values(const T* values, std::int64_t first, float (&out)[M]) {
#pragma unroll
  for (int k = 0; k < M; ++k) out[k] = to_float(values[first + k]);
}

/// A grid-stride walk over the (row, item) pairs of rows x items_per_row in 64 bits, with one
/// division at the start instead of one per step. items_per_row > 0.
struct RowPackCursor {
  std::int64_t row;
  std::int64_t pack;
  std::int64_t step_rows;
  std::int64_t step_packs;
  std::int64_t packs_per_row;

  WF_DEVICE explicit RowPackCursor(std::int64_t packs_per_row_) : packs_per_row(packs_per_row_) {
    const std::int64_t start = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
    row = start / packs_per_row;
    pack = start % packs_per_row;
    step_rows = step / packs_per_row;
    step_packs = step % packs_per_row;
  }
  WF_DEVICE void advance() {
    row += step_rows;
    pack += step_packs;
    if (pack >= packs_per_row) {
      pack -= packs_per_row;
      ++row;
    }
  }
};

/// Column of edge element `item` of a row: the head's columns, then the tail's.
WF_DEVICE std::int64_t edge_column(const PackGrid& grid, std::int64_t item) {
  return item < grid.head ? item : grid.cols - grid.edge + item;
}

/// y (and pre) for columns [first, first + M) of `row`: M = N on the body, 1 on the edges.
/// bias and slope hold the columns' per-column values (zeros when absent), loaded by the caller:
/// once per thread in the tiled kernel, whose thread keeps its columns for many rows.
template <class Act, int M, class T>
WF_DEVICE void forward_values(const ActivationForwardArgs<T>& args, const Act& act,
                              std::int64_t row, std::int64_t first, const float (&bias)[M],
                              const float (&slope)[M]) {
  float value[M];
  load_values<M>(args.x + row * args.ld_x + first, value);
  if (args.bias != nullptr) {
#pragma unroll
    for (int k = 0; k < M; ++k) value[k] += bias[k];
  }
  if (args.pre != nullptr) store_values<M>(args.pre + row * args.ld_pre + first, value);
#pragma unroll
  for (int k = 0; k < M; ++k) value[k] = act.forward(value[k], slope[k]);
  store_values<M>(args.y + row * args.ld_y + first, value);
}

/// The bias and (prelu) slope of columns [first, first + M), zeros where absent.
template <class Act, int M, class T>
WF_DEVICE void load_forward_columns(const ActivationForwardArgs<T>& args, std::int64_t first,
                                    float (&bias)[M], float (&slope)[M]) {
#pragma unroll
  for (int k = 0; k < M; ++k) bias[k] = slope[k] = 0.0f;
  if (args.bias != nullptr) load_column_values<M>(args.bias, first, bias);
  if constexpr (Act::kPerColumnSlope) load_column_values<M>(args.slope, first, slope);
}

/// dx for columns [first, first + M) of `row`, stored, with saved and dy kept for the column sums.
/// Both loads are issued before either is converted: two accesses in flight, not one after the
/// other.
template <class Act, int M, class T>
WF_DEVICE void backward_values(const ActivationBackwardArgs<T>& args, const Act& act,
                               std::int64_t row, std::int64_t first, float (&saved)[M],
                               float (&dy)[M], float (&dx)[M]) {
  const Pack<T, M> saved_pack = load_pack<M>(args.saved + row * args.ld_saved + first);
  const Pack<T, M> dy_pack = load_pack<M>(args.dy + row * args.ld_dy + first);
#pragma unroll
  for (int k = 0; k < M; ++k) {
    saved[k] = to_float(saved_pack.elem[k]);
    dy[k] = to_float(dy_pack.elem[k]);
  }
  float slope[M] = {};
  if constexpr (Act::kPerColumnSlope) load_column_values<M>(args.slope, first, slope);
#pragma unroll
  for (int k = 0; k < M; ++k) dx[k] = act.backward(saved[k], dy[k], slope[k]);
  store_values<M>(args.dx + row * args.ld_dx + first, dx);
}

// --- kernels -------------------------------------------------------------------------------------

/// Threads per block of the flat kernels and of the column-sum finish (their __launch_bounds__).
constexpr int kActivationFlatThreads = 256;
constexpr int kColumnSumFinishThreads = 256;

/// 1-D grid x 1-D blocks of kActivationFlatThreads: a grid-stride loop over the (row, whole pack)
/// pairs, then one over the (row, edge element) pairs; with N > 1 every tensor's rows start
/// `shift` elements past a 16-byte boundary (host checked). No per-column vectors (bias, slope):
/// those take activation_forward_tiled_kernel. y and pre may each alias x exactly.
template <class Act, int N, class T>
__global__ void __launch_bounds__(kActivationFlatThreads)
    activation_forward_flat_kernel(ActivationForwardArgs<T> args, Act act) {
  const PackGrid& grid = args.grid;
  const float none[N] = {};
  const float none_1[1] = {};
  if (grid.body_packs > 0) {
    for (RowPackCursor cursor(grid.body_packs); cursor.row < grid.rows; cursor.advance()) {
      forward_values<Act, N>(args, act, cursor.row, grid.head + cursor.pack * N, none, none);
    }
  }
  if (grid.edge > 0) {
    for (RowPackCursor cursor(grid.edge); cursor.row < grid.rows; cursor.advance()) {
      forward_values<Act, 1>(args, act, cursor.row, edge_column(grid, cursor.pack), none_1, none_1);
    }
  }
}

/// 1-D grid x 1-D blocks of kActivationFlatThreads, traversal and alignment as the forward. dx may
/// alias dy or saved exactly.
template <class Act, int N, class T>
__global__ void __launch_bounds__(kActivationFlatThreads)
    activation_backward_flat_kernel(ActivationBackwardArgs<T> args, Act act) {
  const PackGrid& grid = args.grid;
  if (grid.body_packs > 0) {
    for (RowPackCursor cursor(grid.body_packs); cursor.row < grid.rows; cursor.advance()) {
      float saved[N], dy[N], dx[N];
      backward_values<Act, N>(args, act, cursor.row, grid.head + cursor.pack * N, saved, dy, dx);
    }
  }
  if (grid.edge > 0) {
    for (RowPackCursor cursor(grid.edge); cursor.row < grid.rows; cursor.advance()) {
      float saved[1], dy[1], dx[1];
      backward_values<Act, 1>(args, act, cursor.row, edge_column(grid, cursor.pack), saved, dy, dx);
    }
  }
}

/// Column tile of kTilePacks packs per block.
constexpr int kTilePacks = 32;
/// Warps per tiled block; warp w takes rows w, w + kTileRows, ... of the block's chunk.
constexpr int kTileRows = 8;
/// Resident tiled blocks per SM the register budget is held to (__launch_bounds__' second
/// argument): 4 x 256 threads = 32 warps, <= 64 registers; without it the 16-bit sigmoid and tanh
/// backwards took 71 registers (24 warps).
constexpr int kTiledMinBlocksPerSm = 4;
constexpr int kTiledThreads = kTilePacks * kTileRows;

/// The forward with per-column vectors (bias, prelu's slope). grid (ceil(packs_per_row /
/// kTilePacks), chunks), block (kTilePacks, kTileRows): thread (p, r) of block (tile, chunk) owns
/// pack tile * kTilePacks + p and does rows chunk * rows_per_chunk + r, + kTileRows, ... of it,
/// so it loads its columns' bias and slope once instead of once per row. Alignment as the flat
/// kernel; a head or tail pack is done element by element. y and pre may each alias x exactly.
template <class Act, int N, class T>
__global__ void __launch_bounds__(kTiledThreads, kTiledMinBlocksPerSm)
    activation_forward_tiled_kernel(ActivationForwardArgs<T> args, Act act,
                                    std::int64_t rows_per_chunk) {
  const std::int64_t pack = static_cast<std::int64_t>(blockIdx.x) * kTilePacks + threadIdx.x;
  if (pack >= args.grid.packs_per_row) return;
  const std::int64_t chunk_begin = static_cast<std::int64_t>(blockIdx.y) * rows_per_chunk;
  std::int64_t chunk_end = chunk_begin + rows_per_chunk;
  if (chunk_end > args.grid.rows) chunk_end = args.grid.rows;
  const PackColumns columns = pack_columns<N>(args.grid, pack);
  if (columns.whole) {
    float bias[N], slope[N];
    load_forward_columns<Act, N>(args, columns.first, bias, slope);
    for (std::int64_t row = chunk_begin + threadIdx.y; row < chunk_end; row += kTileRows) {
      forward_values<Act, N>(args, act, row, columns.first, bias, slope);
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) {
      if (!columns.holds(k, args.grid.cols)) continue;
      float bias[1], slope[1];
      load_forward_columns<Act, 1>(args, columns.first + k, bias, slope);
      for (std::int64_t row = chunk_begin + threadIdx.y; row < chunk_end; row += kTileRows) {
        forward_values<Act, 1>(args, act, row, columns.first + k, bias, slope);
      }
    }
  }
}

/// grid (ceil(packs_per_row / kTilePacks), chunks), block (kTilePacks, kTileRows): block (tile,
/// chunk) does rows [chunk * rows_per_chunk, +rows_per_chunk) of its tile's packs and writes fp32
/// partials[chunk * cols + c] for dbias and (prelu) dslope. Static shared memory: kTileRows x
/// kTilePacks * N floats per sum. Every thread reaches the one barrier.
template <class Act, int N, class T>
__global__ void __launch_bounds__(kTiledThreads, kTiledMinBlocksPerSm)
    activation_backward_tiled_kernel(ActivationBackwardArgs<T> args, Act act,
                                     ColumnPartials partials) {
  constexpr int kSums = Act::kPerColumnSlope ? 2 : 1;
  constexpr int kTileCols = kTilePacks * N;
  __shared__ float warp_sums[kSums][kTileRows][kTileCols];

  const std::int64_t cols = args.grid.cols;
  const std::int64_t pack = static_cast<std::int64_t>(blockIdx.x) * kTilePacks + threadIdx.x;
  const std::int64_t chunk_begin = static_cast<std::int64_t>(blockIdx.y) * partials.rows_per_chunk;
  std::int64_t chunk_end = chunk_begin + partials.rows_per_chunk;
  if (chunk_end > args.grid.rows) chunk_end = args.grid.rows;

  float bias_sum[N] = {};
  float slope_sum[N] = {};
  if (pack < args.grid.packs_per_row) {
    const PackColumns columns = pack_columns<N>(args.grid, pack);
    // A thread's pack is the same in every row: a whole pack takes the vector loop, a head or tail
    // pack the scalar one, as two separate loops so that the compiler keeps the vector accesses.
    if (columns.whole) {
      for (std::int64_t row = chunk_begin + threadIdx.y; row < chunk_end; row += kTileRows) {
        float saved[N], dy[N], dx[N];
        backward_values<Act, N>(args, act, row, columns.first, saved, dy, dx);
#pragma unroll
        for (int k = 0; k < N; ++k) {
          bias_sum[k] += dx[k];
          if constexpr (Act::kPerColumnSlope) slope_sum[k] += act.slope_term(saved[k], dy[k]);
        }
      }
    } else {
      for (std::int64_t row = chunk_begin + threadIdx.y; row < chunk_end; row += kTileRows) {
#pragma unroll
        for (int k = 0; k < N; ++k) {
          if (!columns.holds(k, cols)) continue;
          float saved[1], dy[1], dx[1];
          backward_values<Act, 1>(args, act, row, columns.first + k, saved, dy, dx);
          bias_sum[k] += dx[0];
          if constexpr (Act::kPerColumnSlope) slope_sum[k] += act.slope_term(saved[0], dy[0]);
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < N; ++k) {
    warp_sums[0][threadIdx.y][threadIdx.x * N + k] = bias_sum[k];
    if constexpr (Act::kPerColumnSlope)
      warp_sums[1][threadIdx.y][threadIdx.x * N + k] = slope_sum[k];
  }
  __syncthreads();

  // Thread t of the block finishes tile column t (and t + 256, ...) of each sum, in warp order.
  const int thread = static_cast<int>(threadIdx.y) * kTilePacks + static_cast<int>(threadIdx.x);
  const std::int64_t tile_first =
      static_cast<std::int64_t>(blockIdx.x) * kTileCols - args.grid.shift;
  for (int index = thread; index < kSums * kTileCols; index += kTilePacks * kTileRows) {
    const int sum = index / kTileCols;
    const int tile_col = index % kTileCols;
    const std::int64_t col = tile_first + tile_col;
    float* out = sum == 0 ? partials.dbias : partials.dslope;
    if (out == nullptr || col < 0 || col >= cols) continue;
    float total = 0.0f;
#pragma unroll
    for (int warp = 0; warp < kTileRows; ++warp) total += warp_sums[sum][warp][tile_col];
    out[static_cast<std::int64_t>(blockIdx.y) * cols + col] = total;
  }
}

/// 1-D grid x 1-D blocks, grid-stride over columns: out[c] = sum over chunks, in chunk order, of
/// partials[chunk * cols + c], rounded once to T.
template <class T>
__global__ void __launch_bounds__(kColumnSumFinishThreads)
    activation_column_sum_finish_kernel(const float* partials, std::int64_t chunks,
                                        std::int64_t cols, T* out) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t col = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       col < cols; col += step) {
    float total = 0.0f;
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) total += partials[chunk * cols + col];
    out[col] = from_float<T>(total);
  }
}

}  // namespace warpfuse::detail
