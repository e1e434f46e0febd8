// Tests of the activation ops (include/warpfuse/activation.h) against the double-precision
// reference (include/warpfuse/ref/activation.h), computed from the already-rounded inputs. One
// body, compiled into the emulated and the GPU test binaries (see test_util.h).
//
// Every kind x dtype runs over sizes 1..65537 (one 10^6 array per dtype), aligned and unaligned
// starts (alike: vectorised with a scalar head and tail; different: the scalar path), strided
// matrices, in place, and special values. Outputs start poisoned, and the memory around every
// output view (the elements before it, the row padding) must still hold the poison afterwards.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "test_util.h"
#include "warpfuse/activation.h"
#include "warpfuse/error.h"
#include "warpfuse/memory.h"
#include "warpfuse/ref/activation.h"

namespace warpfuse::test {
namespace {

using StorageTypes = ::testing::Types<float, __half, __nv_bfloat16>;

/// Every kind, with non-default parameters where it has any (ActivationDefaults covers those).
std::vector<ActivationParams> all_params() {
  std::vector<ActivationParams> result;
  for (Activation kind : kAllActivations) {
    ActivationParams params;
    params.kind = kind;
    if (kind == Activation::leaky_relu) params.negative_slope = 0.1f;
    if (kind == Activation::elu) params.alpha = 0.8f;
    if (kind == Activation::softplus) {
      params.beta = 1.5f;
      params.threshold = 10.0f;  // inputs in [-8, 8] reach both branches
    }
    result.push_back(params);
  }
  return result;
}

bool from_output(const ActivationParams& params) {
  return activation_backward_from(params.kind) == BackwardFrom::output;
}

/// A rows x cols matrix with row stride ld, placed `offset` elements into its own buffer. Every
/// element of the buffer outside the matrix holds the poison pattern (all bytes 0xFF), before and
/// after the op; an output's own elements start poisoned too.
template <class T>
class Placed {
 public:
  Placed(std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t offset)
      : rows_(rows), cols_(cols), ld_(ld), offset_(offset) {
    const std::int64_t span = rows == 0 ? 0 : (rows - 1) * ld + cols;
    buffer_ = poisoned_buffer<T>(static_cast<std::size_t>(offset + span + 1));
  }
  /// An input holding `dense` (rows x cols, row-major without padding).
  Placed(std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t offset,
         const std::vector<T>& dense)
      : Placed(rows, cols, ld, offset) {
    std::vector<T> host = buffer_.to_host();
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < cols; ++c) host[offset + r * ld + c] = dense[r * cols + c];
    }
    buffer_.copy_from_host(host);
  }

  MatrixView<T> view() { return MatrixView<T>(buffer_.data() + offset_, rows_, cols_, ld_); }
  VectorView<T> vector() { return VectorView<T>(buffer_.data() + offset_, rows_ * cols_); }

  /// The matrix, densely packed.
  std::vector<T> dense() const {
    const std::vector<T> host = buffer_.to_host();
    std::vector<T> result(static_cast<std::size_t>(rows_ * cols_));
    for (std::int64_t r = 0; r < rows_; ++r) {
      for (std::int64_t c = 0; c < cols_; ++c) result[r * cols_ + c] = host[offset_ + r * ld_ + c];
    }
    return result;
  }

  /// Whether every buffer element outside the matrix still holds the poison pattern.
  ::testing::AssertionResult surroundings_untouched() const { return poisoned_except(true); }
  /// Whether every buffer element, the matrix's included, still holds it (an output not written).
  ::testing::AssertionResult untouched() const { return poisoned_except(false); }

 private:
  ::testing::AssertionResult poisoned_except(bool skip_matrix) const {
    const std::vector<T> host = buffer_.to_host();
    // With skip_matrix false, no element is inside an empty matrix: all must hold the poison.
    const std::size_t written = written_outside(host, poisoned_host<T>(host.size()), offset_,
                                                skip_matrix ? rows_ : 0, cols_, ld_);
    if (written == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << written << " buffer element(s) " << (skip_matrix ? "outside the matrix " : "")
           << "were overwritten";
  }

  std::int64_t rows_, cols_, ld_, offset_;
  DeviceBuffer<T> buffer_;
};

/// Placement of one call's matrices: shape, the row stride and start offset (in elements past
/// a 256-byte aligned allocation) of the inputs and of the outputs.
struct Layout {
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld_in;
  std::int64_t offset_in;
  std::int64_t ld_out;
  std::int64_t offset_out;
};

std::string describe(const Layout& l) {
  return std::to_string(l.rows) + " x " + std::to_string(l.cols) + ", in ld " +
         std::to_string(l.ld_in) + " +" + std::to_string(l.offset_in) + ", out ld " +
         std::to_string(l.ld_out) + " +" + std::to_string(l.offset_out);
}

/// The matrix layouts every matrix test sweeps: contiguous, strided with whole-pack strides
/// (vectorised, shifted when the offsets agree), odd strides and mismatched offsets (scalar).
std::vector<Layout> matrix_layouts() {
  return {
      {1, 1, 1, 0, 1, 0},          {2, 3, 3, 0, 3, 0},          {3, 5, 5, 1, 5, 1},
      {7, 33, 40, 0, 40, 0},       {7, 33, 40, 3, 48, 3},       {5, 100, 104, 1, 104, 0},
      {33, 17, 17, 0, 19, 2},      {4, 1000, 1003, 0, 1000, 0}, {64, 129, 136, 5, 136, 5},
      {3, 4097, 4104, 0, 4104, 0},
  };
}

/// Inputs drawn from [-8, 8] (both softplus branches, the saturating tails), slopes from
/// [-0.5, 0.5] (prelu's may be negative), biases from [-1, 1].
constexpr double kInputRange = 8.0;

template <class T>
std::vector<T> draw_inputs(std::size_t n, std::uint64_t seed) {
  return random_values<T>(n, seed, -kInputRange, kInputRange);
}

/// x or y, whichever the backward of `params` reads: y = f(x) rounded to T for the y-kinds.
template <class T>
std::vector<T> draw_saved(const ActivationParams& params, std::size_t n, std::uint64_t seed,
                          const std::vector<T>& slope, std::int64_t cols) {
  std::vector<T> x = draw_inputs<T>(n, seed);
  if (!from_output(params)) return x;
  for (std::size_t i = 0; i < n; ++i) {
    const double w = slope.empty() ? 0.0 : to_double(slope[i % cols]);
    x[i] = from_double<T>(ref::activation(to_double(x[i]), params, w));
  }
  return x;
}

/// The reference forward of dense inputs.
struct ForwardExpected {
  std::vector<double> y;
  std::vector<double> pre;
};

template <class T>
ForwardExpected reference_forward(const ActivationParams& params, std::int64_t rows,
                                  std::int64_t cols, const std::vector<T>& x,
                                  const std::vector<T>& bias, const std::vector<T>& slope) {
  const std::vector<double> xd = to_double(x), bd = to_double(bias), sd = to_double(slope);
  ForwardExpected expected{std::vector<double>(x.size()), std::vector<double>(x.size())};
  ref::activation_forward(
      MatrixView<const double>(xd.data(), rows, cols),
      bias.empty() ? VectorView<const double>() : VectorView<const double>(bd.data(), cols),
      slope.empty() ? VectorView<const double>() : VectorView<const double>(sd.data(), cols),
      MatrixView<double>(expected.y.data(), rows, cols),
      MatrixView<double>(expected.pre.data(), rows, cols), params);
  return expected;
}

struct BackwardExpected {
  std::vector<double> dx;
  std::vector<double> dbias;
  std::vector<double> dslope;
  std::vector<double> dbias_scale;   ///< sum over rows of |dx|: the scale of dbias's rounding
  std::vector<double> dslope_scale;  ///< sum over rows of |dy min(x, 0)|
};

template <class T>
BackwardExpected reference_backward(const ActivationParams& params, std::int64_t rows,
                                    std::int64_t cols, const std::vector<T>& saved,
                                    const std::vector<T>& dy, const std::vector<T>& slope) {
  const std::vector<double> sd = to_double(saved), gd = to_double(dy), wd = to_double(slope);
  BackwardExpected e;
  e.dx.resize(saved.size());
  e.dbias.resize(cols);
  e.dslope.resize(cols);
  ref::activation_backward(
      MatrixView<const double>(sd.data(), rows, cols),
      MatrixView<const double>(gd.data(), rows, cols),
      slope.empty() ? VectorView<const double>() : VectorView<const double>(wd.data(), cols),
      MatrixView<double>(e.dx.data(), rows, cols), VectorView<double>(e.dbias.data(), cols),
      VectorView<double>(e.dslope.data(), cols), params);
  e.dbias_scale.assign(cols, 0.0);
  e.dslope_scale.assign(cols, 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      e.dbias_scale[c] += std::fabs(e.dx[r * cols + c]);
      e.dslope_scale[c] += std::fabs(ref::prelu_slope_term(sd[r * cols + c], gd[r * cols + c]));
    }
  }
  return e;
}

/// The fp32 column sums may differ from the double reference by a few float roundings of the
/// terms' magnitude, on top of the storage rounding: 2e-5 relative to sum |terms| covers a
/// thousand-row sum in any order.
template <class T>
Tolerance sum_tolerance() {
  Tolerance tol = tolerance_for<T>();
  if (tol.rtol < 2e-5) tol.rtol = 2e-5;
  return tol;
}

// --- elementwise forward and backward on arrays ------------------------------------------------

template <class T>
class ActivationArray : public DeviceTest {};
TYPED_TEST_SUITE(ActivationArray, StorageTypes);

/// Sizes for every kind; the 16-byte packs hold 4 or 8 elements, so these cover no whole pack,
/// one pack, a pack plus head or tail, and many packs with an odd tail.
const std::int64_t kArraySizes[] = {1, 2, 7, 8, 9, 31, 33, 257, 1000, 4097};

TYPED_TEST(ActivationArray, ForwardEveryKindSizeAndAlignment) {
  using T = TypeParam;
  std::uint64_t seed = 100;
  for (const ActivationParams& params : all_params()) {
    if (params.kind == Activation::prelu) continue;  // per column: the matrix forms
    for (const std::int64_t n : kArraySizes) {
      for (const auto& [offset_x, offset_y] : {std::pair{0, 0}, {1, 1}, {3, 0}}) {
        SCOPED_TRACE(std::string(to_string(params.kind)) + ", n = " + std::to_string(n) +
                     ", offsets " + std::to_string(offset_x) + ", " + std::to_string(offset_y));
        const std::vector<T> x = draw_inputs<T>(n, ++seed);
        Placed<T> in(1, n, n, offset_x, x), out(1, n, n, offset_y);
        activation_forward(in.vector(), out.vector(), params);
        const ForwardExpected expected = reference_forward<T>(params, 1, n, x, {}, {});
        ASSERT_TRUE(all_close(out.dense(), expected.y, tolerance_for<T>()));
        ASSERT_TRUE(out.surroundings_untouched());
      }
    }
  }
}

TYPED_TEST(ActivationArray, BackwardEveryKindSizeAndAlignment) {
  using T = TypeParam;
  std::uint64_t seed = 200;
  for (const ActivationParams& params : all_params()) {
    if (params.kind == Activation::prelu) continue;
    for (const std::int64_t n : kArraySizes) {
      for (const auto& [offset_in, offset_out] : {std::pair{0, 0}, {1, 1}, {0, 5}}) {
        SCOPED_TRACE(std::string(to_string(params.kind)) + ", n = " + std::to_string(n) +
                     ", offsets " + std::to_string(offset_in) + ", " + std::to_string(offset_out));
        const std::vector<T> saved = draw_saved<T>(params, n, ++seed, {}, n);
        const std::vector<T> dy = random_values<T>(n, ++seed, -2.0, 2.0);
        Placed<T> saved_in(1, n, n, offset_in, saved), dy_in(1, n, n, offset_in, dy);
        Placed<T> dx(1, n, n, offset_out);
        activation_backward(saved_in.vector(), dy_in.vector(), dx.vector(), params);
        const BackwardExpected expected = reference_backward<T>(params, 1, n, saved, dy, {});
        ASSERT_TRUE(all_close(dx.dense(), expected.dx, tolerance_for<T>()));
        ASSERT_TRUE(dx.surroundings_untouched());
      }
    }
  }
}

TYPED_TEST(ActivationArray, LargeArraysForwardAndBackward) {
  using T = TypeParam;
  struct Case {
    Activation kind;
    std::int64_t n;
    int offset;
  };
  // One 10^6 array per dtype (vectorised, with a head and a tail), and a 65537 one per kind.
  std::vector<Case> cases = {{Activation::gelu, 1000000, 1}};
  for (Activation kind : kAllActivations) {
    if (kind != Activation::prelu) cases.push_back({kind, 65537, 0});
  }
  std::uint64_t seed = 300;
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(to_string(c.kind)) + ", n = " + std::to_string(c.n));
    ActivationParams params;
    params.kind = c.kind;
    const std::vector<T> x = draw_inputs<T>(c.n, ++seed);
    Placed<T> in(1, c.n, c.n, c.offset, x), out(1, c.n, c.n, c.offset);
    activation_forward(in.vector(), out.vector(), params);
    const ForwardExpected expected = reference_forward<T>(params, 1, c.n, x, {}, {});
    ASSERT_TRUE(all_close(out.dense(), expected.y, tolerance_for<T>()));

    if (c.n < 1000000) continue;
    const std::vector<T> dy = random_values<T>(c.n, ++seed, -2.0, 2.0);
    Placed<T> dy_in(1, c.n, c.n, c.offset, dy), dx(1, c.n, c.n, c.offset);
    activation_backward(in.vector(), dy_in.vector(), dx.vector(), params);
    ASSERT_TRUE(all_close(dx.dense(), reference_backward<T>(params, 1, c.n, x, dy, {}).dx,
                          tolerance_for<T>()));
  }
}

TYPED_TEST(ActivationArray, InPlace) {
  using T = TypeParam;
  std::uint64_t seed = 400;
  for (const ActivationParams& params : all_params()) {
    if (params.kind == Activation::prelu) continue;
    SCOPED_TRACE(to_string(params.kind));
    const std::int64_t n = 1001;
    const std::vector<T> x = draw_inputs<T>(n, ++seed);
    Placed<T> buffer(1, n, n, 1, x);
    activation_forward(buffer.vector(), buffer.vector(), params);
    ASSERT_TRUE(all_close(buffer.dense(), reference_forward<T>(params, 1, n, x, {}, {}).y,
                          tolerance_for<T>()));

    const std::vector<T> saved = draw_saved<T>(params, n, ++seed, {}, n);
    const std::vector<T> dy = random_values<T>(n, ++seed, -2.0, 2.0);
    Placed<T> saved_in(1, n, n, 0, saved), grad(1, n, n, 0, dy);
    activation_backward(saved_in.vector(), grad.vector(), grad.vector(), params);  // dx = dy
    ASSERT_TRUE(all_close(grad.dense(), reference_backward<T>(params, 1, n, saved, dy, {}).dx,
                          tolerance_for<T>()));
  }
}

TYPED_TEST(ActivationArray, SpecialValues) {
  using T = TypeParam;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Large enough to saturate every activation, small enough to stay finite in T after selu.
  const double big = std::is_same_v<T, __half> ? 3.0e4 : 1.0e30;
  const std::vector<double> values = {inf,   -inf, nan,   0.0,  -0.0,  big,  -big,  88.0,
                                      -88.0, 20.0, -20.0, 12.0, -12.0, 1e-3, -1e-3, 7.5};
  const auto n = static_cast<std::int64_t>(values.size());
  std::vector<T> x(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) x[i] = from_double<T>(values[i]);
  // dy: mostly ordinary, with NaN and infinities where the derivative is 0 and where it is not.
  std::vector<T> dy(values.size(), from_double<T>(1.25));
  dy[3] = from_double<T>(nan);    // at x = 0: relu's select gives 0, the others NaN
  dy[4] = from_double<T>(inf);    // at x = -0
  dy[14] = from_double<T>(-inf);  // at x = -1e-3
  // prelu runs as a 1 x n matrix with a slope per column, of both signs.
  std::vector<T> slope(values.size());
  for (std::size_t i = 0; i < slope.size(); ++i) slope[i] = from_double<T>(i % 2 ? -0.25 : 0.5);
  const DeviceBuffer<T> slope_buffer = to_device(slope);
  for (const ActivationParams& params : all_params()) {
    SCOPED_TRACE(to_string(params.kind));
    const bool prelu = params.kind == Activation::prelu;
    const std::vector<T> used_slope = prelu ? slope : std::vector<T>();
    Placed<T> in(1, n, n, 0, x), out(1, n, n, 0);
    if (prelu) {
      activation_forward(in.view(), out.view(), params, slope_buffer.vector());
    } else {
      activation_forward(in.vector(), out.vector(), params);
    }
    EXPECT_TRUE(all_close(out.dense(), reference_forward<T>(params, 1, n, x, {}, used_slope).y,
                          tolerance_for<T>()));
    // Backward from the special values as x, or from f of them as y (other values are not
    // outputs of f: tanh's (1 - y)(1 + y) at y = 1e30 would overflow fp32 but not the reference).
    std::vector<T> saved = x;
    if (from_output(params)) {
      for (std::size_t i = 0; i < x.size(); ++i) {
        saved[i] = from_double<T>(ref::activation(to_double(x[i]), params));
      }
    }
    Placed<T> saved_in(1, n, n, 0, saved), dy_in(1, n, n, 0, dy), dx(1, n, n, 0);
    if (prelu) {
      activation_backward(saved_in.view(), dy_in.view(), dx.view(), params, slope_buffer.vector());
    } else {
      activation_backward(saved_in.vector(), dy_in.vector(), dx.vector(), params);
    }
    EXPECT_TRUE(all_close(dx.dense(), reference_backward<T>(params, 1, n, saved, dy, used_slope).dx,
                          tolerance_for<T>()));
  }
}

// --- matrices: elementwise, fused bias, backward with column sums ------------------------------

template <class T>
class ActivationMatrix : public DeviceTest {};
TYPED_TEST_SUITE(ActivationMatrix, StorageTypes);

TYPED_TEST(ActivationMatrix, ForwardStridedEveryKind) {
  using T = TypeParam;
  std::uint64_t seed = 500;
  for (const ActivationParams& params : all_params()) {
    for (const Layout& l : matrix_layouts()) {
      SCOPED_TRACE(std::string(to_string(params.kind)) + ", " + describe(l));
      const std::vector<T> x = draw_inputs<T>(l.rows * l.cols, ++seed);
      const std::vector<T> slope = random_values<T>(l.cols, ++seed, -0.5, 0.5);
      Placed<T> in(l.rows, l.cols, l.ld_in, l.offset_in, x);
      Placed<T> out(l.rows, l.cols, l.ld_out, l.offset_out);
      const DeviceBuffer<T> slope_buffer = to_device(slope);
      const bool prelu = params.kind == Activation::prelu;
      activation_forward(in.view(), out.view(), params,
                         prelu ? slope_buffer.vector() : VectorView<const T>());
      const ForwardExpected expected =
          reference_forward<T>(params, l.rows, l.cols, x, {}, prelu ? slope : std::vector<T>());
      ASSERT_TRUE(all_close(out.dense(), expected.y, tolerance_for<T>(), l.cols));
      ASSERT_TRUE(out.surroundings_untouched());
    }
  }
}

TYPED_TEST(ActivationMatrix, BiasForwardWithAndWithoutPre) {
  using T = TypeParam;
  std::uint64_t seed = 600;
  for (const ActivationParams& params : all_params()) {
    for (const Layout& l : matrix_layouts()) {
      const bool store_pre = seed % 2 == 0;
      SCOPED_TRACE(std::string(to_string(params.kind)) + ", " + describe(l) +
                   (store_pre ? ", with pre" : ""));
      const std::vector<T> x = draw_inputs<T>(l.rows * l.cols, ++seed);
      const std::vector<T> bias = random_values<T>(l.cols, ++seed, -1.0, 1.0);
      const std::vector<T> slope = random_values<T>(l.cols, ++seed, -0.5, 0.5);
      Placed<T> in(l.rows, l.cols, l.ld_in, l.offset_in, x);
      Placed<T> y(l.rows, l.cols, l.ld_out, l.offset_out),
          pre(l.rows, l.cols, l.ld_out, l.offset_out);
      const DeviceBuffer<T> bias_buffer = to_device(bias), slope_buffer = to_device(slope);
      const bool prelu = params.kind == Activation::prelu;
      bias_activation_forward(
          in.view(), bias_buffer.vector(),
          BiasActivationOutputs<T>{y.view(), store_pre ? pre.view() : MatrixView<T>()}, params,
          prelu ? slope_buffer.vector() : VectorView<const T>());
      const ForwardExpected expected =
          reference_forward<T>(params, l.rows, l.cols, x, bias, prelu ? slope : std::vector<T>());
      ASSERT_TRUE(all_close(y.dense(), expected.y, tolerance_for<T>(), l.cols));
      ASSERT_TRUE(y.surroundings_untouched());
      if (store_pre) {
        ASSERT_TRUE(all_close(pre.dense(), expected.pre, tolerance_for<T>(), l.cols));
        ASSERT_TRUE(pre.surroundings_untouched());
      } else {
        ASSERT_TRUE(pre.untouched());
      }
    }
  }
}

TYPED_TEST(ActivationMatrix, BiasForwardInPlace) {
  using T = TypeParam;
  std::uint64_t seed = 700;
  const Layout l{9, 45, 48, 1, 48, 1};
  for (const ActivationParams& params : all_params()) {
    SCOPED_TRACE(to_string(params.kind));
    const std::vector<T> x = draw_inputs<T>(l.rows * l.cols, ++seed);
    const std::vector<T> bias = random_values<T>(l.cols, ++seed, -1.0, 1.0);
    const std::vector<T> slope = random_values<T>(l.cols, ++seed, -0.5, 0.5);
    const DeviceBuffer<T> bias_buffer = to_device(bias), slope_buffer = to_device(slope);
    const std::vector<T> used_slope = params.kind == Activation::prelu ? slope : std::vector<T>();
    const ForwardExpected expected =
        reference_forward<T>(params, l.rows, l.cols, x, bias, used_slope);
    // y = x in place.
    Placed<T> xy(l.rows, l.cols, l.ld_in, l.offset_in, x);
    bias_activation_forward(xy.view(), bias_buffer.vector(), BiasActivationOutputs<T>{xy.view()},
                            params, slope_buffer.vector());
    ASSERT_TRUE(all_close(xy.dense(), expected.y, tolerance_for<T>(), l.cols));
    // pre = x in place, y elsewhere.
    Placed<T> xpre(l.rows, l.cols, l.ld_in, l.offset_in, x), y(l.rows, l.cols, l.cols, 0);
    bias_activation_forward(xpre.view(), bias_buffer.vector(),
                            BiasActivationOutputs<T>{y.view(), xpre.view()}, params,
                            slope_buffer.vector());
    ASSERT_TRUE(all_close(y.dense(), expected.y, tolerance_for<T>(), l.cols));
    ASSERT_TRUE(all_close(xpre.dense(), expected.pre, tolerance_for<T>(), l.cols));
  }
}

TYPED_TEST(ActivationMatrix, BackwardStridedEveryKind) {
  using T = TypeParam;
  std::uint64_t seed = 800;
  for (const ActivationParams& params : all_params()) {
    for (const Layout& l : matrix_layouts()) {
      SCOPED_TRACE(std::string(to_string(params.kind)) + ", " + describe(l));
      const std::vector<T> slope = random_values<T>(l.cols, ++seed, -0.5, 0.5);
      const std::vector<T> saved = draw_saved<T>(params, l.rows * l.cols, ++seed, slope, l.cols);
      const std::vector<T> dy = random_values<T>(l.rows * l.cols, ++seed, -2.0, 2.0);
      Placed<T> saved_in(l.rows, l.cols, l.ld_in, l.offset_in, saved);
      Placed<T> dy_in(l.rows, l.cols, l.ld_in, l.offset_in, dy);
      Placed<T> dx(l.rows, l.cols, l.ld_out, l.offset_out);
      const DeviceBuffer<T> slope_buffer = to_device(slope);
      activation_backward(saved_in.view(), dy_in.view(), dx.view(), params, slope_buffer.vector());
      const BackwardExpected expected =
          reference_backward<T>(params, l.rows, l.cols, saved, dy, slope);
      ASSERT_TRUE(all_close(dx.dense(), expected.dx, tolerance_for<T>(), l.cols));
      ASSERT_TRUE(dx.surroundings_untouched());
    }
  }
}

/// Shapes for the fused backward: besides matrix_layouts, several row chunks per column tile
/// (1000 x 37: 16 chunks; 300 x 300: 5 chunks) and a tail chunk.
std::vector<Layout> fused_backward_layouts() {
  std::vector<Layout> layouts = matrix_layouts();
  layouts.push_back({1000, 37, 37, 0, 37, 0});
  layouts.push_back({300, 300, 304, 1, 304, 1});
  layouts.push_back({521, 24, 24, 0, 26, 0});
  return layouts;
}

TYPED_TEST(ActivationMatrix, FusedBackwardDxDbiasDslope) {
  using T = TypeParam;
  std::uint64_t seed = 900;
  for (const ActivationParams& params : all_params()) {
    for (const Layout& l : fused_backward_layouts()) {
      SCOPED_TRACE(std::string(to_string(params.kind)) + ", " + describe(l));
      const std::vector<T> slope = random_values<T>(l.cols, ++seed, -0.5, 0.5);
      const std::vector<T> saved = draw_saved<T>(params, l.rows * l.cols, ++seed, slope, l.cols);
      const std::vector<T> dy = random_values<T>(l.rows * l.cols, ++seed, -2.0, 2.0);
      Placed<T> saved_in(l.rows, l.cols, l.ld_in, l.offset_in, saved);
      Placed<T> dy_in(l.rows, l.cols, l.ld_in, l.offset_in, dy);
      Placed<T> dx(l.rows, l.cols, l.ld_out, l.offset_out);
      Placed<T> dbias(1, l.cols, l.cols, 1), dslope(1, l.cols, l.cols, 0);
      const DeviceBuffer<T> slope_buffer = to_device(slope);
      const std::size_t bytes =
          bias_activation_backward_workspace_bytes(l.rows, l.cols, params.kind);
      DeviceBuffer<unsigned char> workspace(bytes);
      workspace.fill_bytes(0xFF);
      bias_activation_backward(
          saved_in.view(), dy_in.view(),
          BiasActivationBackwardOutputs<T>{dx.view(), dbias.vector(), dslope.vector()},
          Workspace{workspace.data(), bytes}, params, slope_buffer.vector());
      const BackwardExpected expected =
          reference_backward<T>(params, l.rows, l.cols, saved, dy, slope);
      ASSERT_TRUE(all_close(dx.dense(), expected.dx, tolerance_for<T>(), l.cols));
      ASSERT_TRUE(dx.surroundings_untouched());
      ASSERT_TRUE(all_close_scaled(dbias.dense(), expected.dbias, expected.dbias_scale,
                                   sum_tolerance<T>()));
      ASSERT_TRUE(dbias.surroundings_untouched());
      if (params.kind == Activation::prelu) {
        ASSERT_TRUE(all_close_scaled(dslope.dense(), expected.dslope, expected.dslope_scale,
                                     sum_tolerance<T>()));
      } else {
        // dslope is prelu's; the other kinds leave it alone.
        ASSERT_TRUE(dslope.untouched());
      }
    }
  }
}

TYPED_TEST(ActivationMatrix, FusedBackwardWithoutSumsNeedsNoWorkspace) {
  using T = TypeParam;
  ActivationParams params;
  params.kind = Activation::prelu;
  const Layout l{40, 70, 72, 0, 72, 0};
  const std::vector<T> slope = random_values<T>(l.cols, 1001, -0.5, 0.5);
  const std::vector<T> x = draw_inputs<T>(l.rows * l.cols, 1002);
  const std::vector<T> dy = random_values<T>(l.rows * l.cols, 1003, -2.0, 2.0);
  Placed<T> x_in(l.rows, l.cols, l.ld_in, 0, x), dy_in(l.rows, l.cols, l.ld_in, 0, dy);
  Placed<T> dx(l.rows, l.cols, l.ld_out, 0), dslope(1, l.cols, l.cols, 0);
  const DeviceBuffer<T> slope_buffer = to_device(slope);
  const BackwardExpected expected = reference_backward<T>(params, l.rows, l.cols, x, dy, slope);
  // Neither sum: the plain backward.
  bias_activation_backward(x_in.view(), dy_in.view(), BiasActivationBackwardOutputs<T>{dx.view()},
                           Workspace{}, params, slope_buffer.vector());
  ASSERT_TRUE(all_close(dx.dense(), expected.dx, tolerance_for<T>(), l.cols));
  // Only dslope (a PReLU layer without bias).
  const std::size_t bytes = bias_activation_backward_workspace_bytes(l.rows, l.cols, params.kind);
  DeviceBuffer<unsigned char> workspace(bytes);
  bias_activation_backward(x_in.view(), dy_in.view(),
                           BiasActivationBackwardOutputs<T>{dx.view(), {}, dslope.vector()},
                           Workspace{workspace.data(), bytes}, params, slope_buffer.vector());
  ASSERT_TRUE(
      all_close_scaled(dslope.dense(), expected.dslope, expected.dslope_scale, sum_tolerance<T>()));
}

TYPED_TEST(ActivationMatrix, FusedBackwardInPlace) {
  using T = TypeParam;
  std::uint64_t seed = 1100;
  const Layout l{130, 20, 24, 2, 24, 2};
  for (const ActivationParams& params : all_params()) {
    SCOPED_TRACE(to_string(params.kind));
    const std::vector<T> slope = random_values<T>(l.cols, ++seed, -0.5, 0.5);
    const std::vector<T> saved = draw_saved<T>(params, l.rows * l.cols, ++seed, slope, l.cols);
    const std::vector<T> dy = random_values<T>(l.rows * l.cols, ++seed, -2.0, 2.0);
    const BackwardExpected expected =
        reference_backward<T>(params, l.rows, l.cols, saved, dy, slope);
    const DeviceBuffer<T> slope_buffer = to_device(slope);
    const std::size_t bytes = bias_activation_backward_workspace_bytes(l.rows, l.cols, params.kind);
    DeviceBuffer<unsigned char> workspace(bytes);
    // dx = dy, then dx = saved.
    for (const bool over_dy : {true, false}) {
      Placed<T> saved_in(l.rows, l.cols, l.ld_in, l.offset_in, saved);
      Placed<T> dy_in(l.rows, l.cols, l.ld_in, l.offset_in, dy);
      Placed<T> dbias(1, l.cols, l.cols, 0);
      const MatrixView<T> dx = over_dy ? dy_in.view() : saved_in.view();
      bias_activation_backward(saved_in.view(), dy_in.view(),
                               BiasActivationBackwardOutputs<T>{dx, dbias.vector()},
                               Workspace{workspace.data(), bytes}, params, slope_buffer.vector());
      ASSERT_TRUE(
          all_close((over_dy ? dy_in : saved_in).dense(), expected.dx, tolerance_for<T>(), l.cols));
      ASSERT_TRUE(all_close_scaled(dbias.dense(), expected.dbias, expected.dbias_scale,
                                   sum_tolerance<T>()));
    }
  }
}

TYPED_TEST(ActivationMatrix, ColumnSumsAreBitwiseReproducible) {
  using T = TypeParam;
  ActivationParams params;
  params.kind = Activation::prelu;
  const std::int64_t rows = 777, cols = 45;
  const std::vector<T> slope = random_values<T>(cols, 1201, -0.5, 0.5);
  const std::vector<T> x = draw_inputs<T>(rows * cols, 1202);
  const std::vector<T> dy = random_values<T>(rows * cols, 1203, -2.0, 2.0);
  const DeviceBuffer<T> slope_buffer = to_device(slope);
  const std::size_t bytes = bias_activation_backward_workspace_bytes(rows, cols, params.kind);
  DeviceBuffer<unsigned char> workspace(bytes);

  // The same data at two placements: all aligned alike with whole-pack strides (vectorised) and
  // with misaligned dx (scalar). The order of the additions depends on the shape only, so even
  // the two strategies agree bitwise.
  const auto run = [&](std::int64_t ld, std::int64_t dx_offset) {
    Placed<T> x_in(rows, cols, ld, 0, x), dy_in(rows, cols, ld, 0, dy);
    Placed<T> dx(rows, cols, ld, dx_offset), dbias(1, cols, cols, 0), dslope(1, cols, cols, 0);
    workspace.fill_bytes(0xFF);
    bias_activation_backward(
        x_in.view(), dy_in.view(),
        BiasActivationBackwardOutputs<T>{dx.view(), dbias.vector(), dslope.vector()},
        Workspace{workspace.data(), bytes}, params, slope_buffer.vector());
    return std::pair{dbias.dense(), dslope.dense()};
  };
  const auto first = run(48, 0);
  const BackwardExpected expected = reference_backward<T>(params, rows, cols, x, dy, slope);
  ASSERT_TRUE(
      all_close_scaled(first.first, expected.dbias, expected.dbias_scale, sum_tolerance<T>()));
  ASSERT_TRUE(
      all_close_scaled(first.second, expected.dslope, expected.dslope_scale, sum_tolerance<T>()));
  for_each_schedule([&](const std::string& schedule) {
    SCOPED_TRACE("schedule " + schedule);
    for (const auto& [ld, dx_offset] : {std::pair{48, 0}, {48, 0}, {45, 1}}) {
      SCOPED_TRACE("ld " + std::to_string(ld) + ", dx offset " + std::to_string(dx_offset));
      const auto again = run(ld, dx_offset);
      EXPECT_TRUE(bitwise_equal(again.first, first.first));
      EXPECT_TRUE(bitwise_equal(again.second, first.second));
    }
  });
}

TYPED_TEST(ActivationMatrix, MutableAndConstViewsMix) {
  using T = TypeParam;
  const std::vector<T> x = draw_inputs<T>(6, 1301);
  const std::vector<T> bias = random_values<T>(3, 1302, -1.0, 1.0);
  DeviceBuffer<T> x_buffer = to_device(x), y_buffer(6), pre_buffer(6);
  const DeviceBuffer<T> bias_buffer = to_device(bias);
  ActivationParams params;
  params.kind = Activation::gelu;
  // A mutable x with a const bias, and a const x with mutable everything else.
  bias_activation_forward(x_buffer.view(2, 3), bias_buffer.vector(),
                          BiasActivationOutputs<T>{y_buffer.view(2, 3), pre_buffer.view(2, 3)},
                          params);
  const DeviceBuffer<T>& x_const = x_buffer;
  DeviceBuffer<T> bias_mutable = to_device(bias);
  bias_activation_forward(x_const.view(2, 3), bias_mutable.vector(),
                          BiasActivationOutputs<T>{y_buffer.view(2, 3)}, params);
  const ForwardExpected expected = reference_forward<T>(params, 2, 3, x, bias, {});
  EXPECT_TRUE(all_close(y_buffer.to_host(), expected.y, tolerance_for<T>(), 3));
  EXPECT_TRUE(all_close(pre_buffer.to_host(), expected.pre, tolerance_for<T>(), 3));
}

// --- defaults, empty inputs, errors ------------------------------------------------------------

class ActivationApi : public DeviceTest {};

TEST_F(ActivationApi, DefaultParametersArePyTorchs) {
  // relu by default; leaky_relu 0.01; elu alpha 1; softplus beta 1, threshold 20.
  const std::vector<float> x = {-3.0f, -0.5f, 0.0f, 0.5f, 25.0f};
  const DeviceBuffer<float> in = to_device(x);
  DeviceBuffer<float> out(x.size());
  for (const Activation kind :
       {Activation::relu, Activation::leaky_relu, Activation::elu, Activation::softplus}) {
    SCOPED_TRACE(to_string(kind));
    ActivationParams params;
    params.kind = kind;
    activation_forward(in.vector(), out.vector(),
                       kind == Activation::relu ? ActivationParams{} : params);
    EXPECT_TRUE(all_close(out.to_host(), reference_forward<float>(params, 1, 5, x, {}, {}).y,
                          tolerance_for<float>()));
  }
  activation_forward(in.vector(), out.vector(), ActivationParams{Activation::leaky_relu});
  EXPECT_FLOAT_EQ(out.to_host()[0], -0.03f);
}

TEST_F(ActivationApi, EmptyInputsLaunchNothing) {
  DeviceBuffer<float> buffer = poisoned_buffer<float>(8);
  const std::vector<float> before = buffer.to_host();
  ActivationParams params;
  params.kind = Activation::gelu;
  activation_forward(VectorView<const float>(buffer.data(), 0), VectorView<float>(buffer.data(), 0),
                     params);
  activation_forward(VectorView<const float>(), VectorView<float>(), params);
  activation_forward(MatrixView<const float>(buffer.data(), 0, 5),
                     MatrixView<float>(buffer.data(), 0, 5), params);
  activation_backward(MatrixView<const float>(buffer.data(), 3, 0),
                      MatrixView<const float>(buffer.data(), 3, 0),
                      MatrixView<float>(buffer.data(), 3, 0), params);
  EXPECT_EQ(bias_activation_backward_workspace_bytes(0, 5, Activation::relu), 0u);
  EXPECT_EQ(bias_activation_backward_workspace_bytes(5, 0, Activation::prelu), 0u);
  EXPECT_TRUE(bitwise_equal(buffer.to_host(), before));
}

TEST_F(ActivationApi, FusedBackwardOverNoRowsZeroesTheSums) {
  DeviceBuffer<__half> dbias = poisoned_buffer<__half>(4), dslope = poisoned_buffer<__half>(4);
  DeviceBuffer<__half> slope = poisoned_buffer<__half>(4);
  ActivationParams params;
  params.kind = Activation::prelu;
  bias_activation_backward(MatrixView<const __half>(nullptr, 0, 4),
                           MatrixView<const __half>(nullptr, 0, 4),
                           BiasActivationBackwardOutputs<__half>{MatrixView<__half>(nullptr, 0, 4),
                                                                 dbias.vector(), dslope.vector()},
                           Workspace{}, params, slope.vector());
  EXPECT_TRUE(all_close(dbias.to_host(), std::vector<double>(4, 0.0), tolerance_for<__half>()));
  EXPECT_TRUE(all_close(dslope.to_host(), std::vector<double>(4, 0.0), tolerance_for<__half>()));
}

TEST_F(ActivationApi, WorkspaceSizeDependsOnShapeAndKindOnly) {
  const std::size_t relu = bias_activation_backward_workspace_bytes(1000, 37, Activation::relu);
  EXPECT_GT(relu, 0u);
  EXPECT_EQ(relu % (37 * sizeof(float)), 0u);
  EXPECT_EQ(bias_activation_backward_workspace_bytes(1000, 37, Activation::prelu), 2 * relu);
  EXPECT_EQ(bias_activation_backward_workspace_bytes(1, 1, Activation::gelu), sizeof(float));
  EXPECT_THROW(bias_activation_backward_workspace_bytes(-1, 4, Activation::relu), InvalidArgument);
}

TEST_F(ActivationApi, BadArgumentsThrowTypedErrors) {
  DeviceBuffer<float> a(64), b(64), c(64), vec(8), ws(1024);
  // The valid calls among these run: their inputs must hold values (initcheck).
  for (DeviceBuffer<float>* buffer : {&a, &b, &c, &vec}) {
    WARPFUSE_CUDA_CHECK(cudaMemset(buffer->data(), 0, buffer->size() * sizeof(float)));
  }
  const MatrixView<const float> x(a.data(), 4, 8);
  const MatrixView<float> y(b.data(), 4, 8);
  const VectorView<const float> bias(vec.data(), 8);
  ActivationParams relu;
  ActivationParams prelu;
  prelu.kind = Activation::prelu;
  const std::string fwd = "activation_forward", bfwd = "bias_activation_forward";
  const std::string bwd = "activation_backward", bbwd = "bias_activation_backward";
  using Fwd = BiasActivationOutputs<float>;
  using Bwd = BiasActivationBackwardOutputs<float>;

  // Shapes, strides, sizes, null pointers.
  expect_invalid([&] { activation_forward(x, MatrixView<float>(b.data(), 4, 7), relu); }, fwd, "y");
  expect_invalid([&] { activation_forward(MatrixView<const float>(a.data(), -1, 8), y, relu); },
                 fwd, "x");
  expect_invalid([&] { activation_forward(MatrixView<const float>(a.data(), 4, 8, 7), y, relu); },
                 fwd, "x");
  expect_invalid([&] { activation_forward(MatrixView<const float>(nullptr, 4, 8), y, relu); }, fwd,
                 "x");
  expect_invalid([&] { activation_forward(x, MatrixView<float>(nullptr, 4, 8), relu); }, fwd, "y");
  expect_invalid(
      [&] {
        activation_forward(VectorView<const float>(a.data(), 5), VectorView<float>(b.data(), 4));
      },
      fwd, "y");
  expect_invalid(
      [&] {
        activation_forward(VectorView<const float>(a.data(), -2), VectorView<float>(b.data(), -2));
      },
      fwd, "x");
  // Bias and slope lengths.
  expect_invalid(
      [&] { bias_activation_forward(x, VectorView<const float>(vec.data(), 7), Fwd{y}, relu); },
      bfwd, "bias");
  expect_invalid([&] { bias_activation_forward(x, VectorView<const float>(), Fwd{y}, relu); }, bfwd,
                 "bias");
  expect_invalid([&] { activation_forward(x, y, prelu, VectorView<const float>(vec.data(), 9)); },
                 fwd, "slope");
  expect_invalid([&] { activation_forward(x, y, prelu); }, fwd, "slope");
  expect_invalid(
      [&] {
        bias_activation_forward(x, bias, Fwd{y, MatrixView<float>(c.data(), 4, 9)}, relu);
      },
      bfwd, "outputs.pre");
  // prelu has no VectorView form.
  expect_invalid(
      [&] {
        activation_forward(VectorView<const float>(a.data(), 4), VectorView<float>(b.data(), 4),
                           prelu);
      },
      fwd, "params.kind");
  // Parameters.
  ActivationParams bad_kind;
  bad_kind.kind = static_cast<Activation>(42);
  expect_invalid([&] { activation_forward(x, y, bad_kind); }, fwd, "params.kind");
  ActivationParams softplus;
  softplus.kind = Activation::softplus;
  softplus.beta = 0.0f;
  expect_invalid([&] { activation_forward(x, y, softplus); }, fwd, "params.beta");
  ActivationParams leaky;
  leaky.kind = Activation::leaky_relu;
  leaky.negative_slope = -0.5f;
  activation_forward(x, y, leaky);  // the forward takes any slope
  expect_invalid([&] { activation_backward(x, x, y, leaky); }, bwd, "params.negative_slope");
  // Overlaps: a partial overlap of output and input; pre on top of y.
  expect_invalid([&] { activation_forward(x, MatrixView<float>(a.data() + 1, 4, 8), relu); }, fwd,
                 "y");
  expect_invalid([&] { bias_activation_forward(x, bias, Fwd{y, y}, relu); }, bfwd, "outputs.pre");
  expect_invalid(
      [&] { bias_activation_forward(x, VectorView<const float>(b.data() + 1, 8), Fwd{y}, relu); },
      bfwd, "outputs.y");  // y overlaps the bias
  // Backward shapes and the fused backward's outputs and workspace.
  expect_invalid([&] { activation_backward(x, MatrixView<const float>(c.data(), 3, 8), y, relu); },
                 bwd, "dy");
  expect_invalid([&] { activation_backward(x, x, MatrixView<float>(b.data(), 4, 9), relu); }, bwd,
                 "dx");
  const std::size_t bytes = bias_activation_backward_workspace_bytes(4, 8, Activation::prelu);
  const VectorView<float> dbias(c.data() + 40, 8), dslope(c.data() + 50, 8);
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, VectorView<float>(c.data() + 40, 6)},
                                 Workspace{ws.data(), bytes}, relu);
      },
      bbwd, "outputs.dbias");
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, VectorView<float>(a.data() + 2, 8)},
                                 Workspace{ws.data(), bytes}, relu);
      },
      bbwd, "outputs.dbias");  // dbias overlaps saved
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, dbias}, Workspace{nullptr, bytes}, relu);
      },
      bbwd, "workspace");
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, dbias}, Workspace{ws.data(), 4}, relu);
      },
      bbwd, "workspace");
  // One alignment for every workspace (kWorkspaceAlignment), and no byte shared with a tensor.
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, dbias}, Workspace{ws.data() + 1, bytes}, relu);
      },
      bbwd, "workspace");
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, dbias}, Workspace{b.data(), bytes}, relu);
      },
      bbwd, "workspace");
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, dbias, VectorView<float>(c.data() + 50, 3)},
                                 Workspace{ws.data(), bytes}, prelu, bias);
      },
      bbwd, "outputs.dslope");
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, dbias, dbias}, Workspace{ws.data(), bytes}, prelu,
                                 bias);
      },
      bbwd, "outputs.dslope");  // the same vector as dbias
  expect_invalid(
      [&] {
        bias_activation_backward(x, x, Bwd{y, dbias}, Workspace{ws.data(), bytes}, prelu);
      },
      bbwd, "slope");
  // Valid calls still go through after all that.
  bias_activation_backward(x, x, Bwd{y, dbias, dslope}, Workspace{ws.data(), bytes}, prelu, bias);
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace
}  // namespace warpfuse::test
