// warpfuse kernels — softmax and log-softmax over rows, forward and backward: the op policies of
// the row engine (kernels/common/row_engine.cuh, which holds the traversals and the strategies).
//
// Math (s = scale, per row):  m = max_k s x_k,  Z = sum_k exp(s x_k - m)
//   softmax      y_c = exp(s x_c - m) / Z          backward  dx_c = s y_c (dy_c - sum_k dy_k y_k)
//   log_softmax  y_c = s x_c - m - log Z           backward  dx_c = s (dy_c - exp(y_c) sum_k dy_k)
// Layout: row-major, element (row, col) at ptr[row * ld + col], 64-bit offsets. Arithmetic and the
// reductions are fp32 whatever the storage type.
//
// Numerics, identical in every strategy (the engine's RowStats and the policies' store_value are
// the single place they live):
//   - the row maximum is subtracted before exp, so no finite input overflows;
//   - a row of all -inf has Z = 0: softmax writes 0, log_softmax writes -inf (never NaN);
//   - NaN or +inf anywhere in a row makes Z NaN and so the whole row NaN;
//   - log_softmax computes (s x - m) - log Z without exp, so -inf inputs stay exactly -inf.
#pragma once

#include <cstdint>

#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/row_engine.cuh"

namespace warpfuse::detail {

enum class SoftmaxMode { softmax, log_softmax };

/// Forward: y = softmax(scale * x) (or log_softmax) over rows x cols. One input (x), one output
/// (y); the engine forms the normaliser; softmax stores from the exponential (so the block
/// strategy caches it in fp32), log_softmax from x.
template <class T_, SoftmaxMode kMode>
struct SoftmaxPolicy {
  using T = T_;
  static constexpr int kInputs = 1;
  static constexpr bool kNormalize = true;
  static constexpr bool kStoreUsesExp = kMode == SoftmaxMode::softmax;
  static constexpr int kSums = 0;
  struct Row {};
  struct Result {
    RowStats stats;
  };

  const T* x;
  T* y;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld_x;
  std::int64_t ld_y;
  float scale;

  WF_DEVICE const T* input(int, std::int64_t row) const { return x + row * ld_x; }
  WF_DEVICE T* output(std::int64_t row) const { return y + row * ld_y; }
  WF_DEVICE float logit_scale() const { return scale; }
  template <bool kStreamed>
  WF_DEVICE Row begin_row(std::int64_t, bool) const {
    return Row{};
  }
  template <bool kStreamed>
  WF_DEVICE void accumulate(const Row&, std::int64_t, const float*, float*) const {}
  WF_DEVICE Result finish(const Row&, std::int64_t, const RowStats& stats, const float*,
                          bool) const {
    return Result{stats};
  }
  WF_DEVICE float store_value(const Row&, const Result& r, std::int64_t, const float* in,
                              float e) const {
    const bool empty = r.stats.sum == 0.0f;  // every entry -inf
    if constexpr (kMode == SoftmaxMode::softmax) {
      return empty ? 0.0f : e * r.stats.inv_sum;
    } else {
      return empty ? negative_infinity() : (scale * in[0] - r.stats.shift) - r.stats.log_sum;
    }
  }
};

/// Backward: dx from the forward output y and the incoming gradient dy. Two inputs (y, dy), one
/// output (dx), one per-row sum: sum dy * y (softmax) or sum dy (log_softmax).
template <class T_, SoftmaxMode kMode>
struct SoftmaxBackwardPolicy {
  using T = T_;
  static constexpr int kInputs = 2;
  static constexpr bool kNormalize = false;
  static constexpr bool kStoreUsesExp = false;
  static constexpr int kSums = 1;
  struct Row {};
  struct Result {
    float reduced;
  };

  const T* y;
  const T* dy;
  T* dx;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld_y;
  std::int64_t ld_dy;
  std::int64_t ld_dx;
  float scale;

  WF_DEVICE const T* input(int i, std::int64_t row) const {
    return i == 0 ? y + row * ld_y : dy + row * ld_dy;
  }
  WF_DEVICE T* output(std::int64_t row) const { return dx + row * ld_dx; }
  WF_DEVICE float logit_scale() const { return 1.0f; }
  template <bool kStreamed>
  WF_DEVICE Row begin_row(std::int64_t, bool) const {
    return Row{};
  }
  template <bool kStreamed>
  WF_DEVICE void accumulate(const Row&, std::int64_t, const float* in, float* sums) const {
    if constexpr (kMode == SoftmaxMode::softmax) {
      sums[0] += in[1] * in[0];
    } else {
      sums[0] += in[1];
    }
  }
  WF_DEVICE Result finish(const Row&, std::int64_t, const RowStats&, const float* sums,
                          bool) const {
    return Result{sums[0]};
  }
  WF_DEVICE float store_value(const Row&, const Result& r, std::int64_t, const float* in,
                              float) const {
    if constexpr (kMode == SoftmaxMode::softmax) {
      return scale * in[0] * (in[1] - r.reduced);
    } else {
      return scale * (in[1] - exact_exp(in[0]) * r.reduced);
    }
  }
};

}  // namespace warpfuse::detail
