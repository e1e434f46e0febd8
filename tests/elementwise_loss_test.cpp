// Tests of the elementwise losses (include/warpfuse/elementwise_loss.h: binary cross-entropy from
// logits and from probabilities, MSE, MAE, Huber) against the double-precision reference, for
// every loss, dtype and reduction, with and without the fused gradient. One body, in the emulated
// and the GPU binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"
#include "warpfuse/elementwise_loss.h"
#include "warpfuse/loss.h"
#include "warpfuse/ref/elementwise_loss.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

enum class Kind { bce_with_logits, bce, mse, mae, huber };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::bce_with_logits:
      return "binary_cross_entropy_with_logits";
    case Kind::bce:
      return "binary_cross_entropy";
    case Kind::mse:
      return "mse_loss";
    case Kind::mae:
      return "mae_loss";
    case Kind::huber:
      return "huber_loss";
  }
  return "?";
}

constexpr Kind kKinds[] = {Kind::bce_with_logits, Kind::bce, Kind::mse, Kind::mae, Kind::huber};
constexpr Reduction kReductions[] = {Reduction::none, Reduction::mean, Reduction::sum,
                                     Reduction::per_sample, Reduction::per_sample_sum};

std::string number(float value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

/// One case: the loss and its options, the matrices' shape and layout.
struct Case {
  Kind kind;
  Reduction reduction;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld;      // row stride of pred, target, dpred and (reduction none) the loss
  std::int64_t offset;  // elements between each allocation's start and its matrix
  bool grad = true;
  bool in_place = false;  // dpred is pred
  float grad_scale = 1.0f;
  bool pos_weight = false;  // bce_with_logits
  float delta = 1.0f;       // huber
  float eps = 1e-7f;        // bce

  std::string name() const {
    return std::string(kind_name(kind)) + " " + to_string(reduction) + " " + std::to_string(rows) +
           "x" + std::to_string(cols) + " ld " + std::to_string(ld) + " offset " +
           std::to_string(offset) + (grad ? " grad" : "") + (in_place ? " in place" : "") +
           " grad_scale " + number(grad_scale) + (pos_weight ? " pos_weight" : "") + " delta " +
           number(delta) + " eps " + number(eps);
  }
  std::int64_t span() const { return offset + (rows == 0 ? 0 : (rows - 1) * ld + cols) + 5; }
  std::size_t at(std::int64_t row, std::int64_t col) const {
    return static_cast<std::size_t>(offset + row * ld + col);
  }
  /// The loss's shape and row stride for the reduction.
  std::int64_t loss_rows() const {
    return reduction == Reduction::none || reduction == Reduction::per_sample ? rows : 1;
  }
  std::int64_t loss_cols() const { return reduction == Reduction::none ? cols : 1; }
  std::int64_t loss_ld() const {
    if (reduction == Reduction::none) return ld;
    return reduction == Reduction::per_sample && ld > cols ? 2 : 1;  // a strided per_sample too
  }
  std::int64_t loss_span() const {
    return offset + (loss_rows() == 0 ? 0 : (loss_rows() - 1) * loss_ld() + loss_cols()) + 5;
  }
};

template <class T>
std::vector<double> dense(const std::vector<T>& storage, const Case& c) {
  std::vector<double> out(static_cast<std::size_t>(c.rows * c.cols));
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t col = 0; col < c.cols; ++col)
      out[r * c.cols + col] = to_double(storage[c.at(r, col)]);
  return out;
}

/// The device buffers of a case.
template <class T>
struct Buffers {
  DeviceBuffer<T> pred;
  DeviceBuffer<T> target;
  DeviceBuffer<T> dpred;
  DeviceBuffer<float> loss;
  DeviceBuffer<float> pos_weight;
  DeviceBuffer<unsigned char> workspace;
};

/// A case's device buffers: its inputs, poisoned outputs and a workspace.
template <class T>
Buffers<T> buffers_for(const Case& c, const std::vector<T>& pred, const std::vector<T>& target,
                       const std::vector<float>& weight) {
  return Buffers<T>{to_device(pred),
                    to_device(target),
                    poisoned_buffer<T>(static_cast<std::size_t>(c.span())),
                    poisoned_buffer<float>(static_cast<std::size_t>(c.loss_span())),
                    to_device(weight),
                    DeviceBuffer<unsigned char>(elementwise_loss_workspace_bytes(c.rows))};
}

template <class T>
MatrixView<T> view_of(DeviceBuffer<T>& buffer, const Case& c) {
  return MatrixView<T>(buffer.data() + c.offset, c.rows, c.cols, c.ld);
}

/// Calls the case's op on `b` and waits for it.
template <class T>
void call(const Case& c, Buffers<T>& b) {
  const MatrixView<T> pred = view_of(b.pred, c);
  const MatrixView<const T> target = view_of(b.target, c);
  const MatrixView<float> loss(b.loss.data() + c.offset, c.loss_rows(), c.loss_cols(), c.loss_ld());
  const MatrixView<T> dpred = !c.grad ? MatrixView<T>() : c.in_place ? pred : view_of(b.dpred, c);
  const Workspace workspace{b.workspace.data(), b.workspace.size()};
  const ElementwiseLossOutputs<T> outputs{loss, dpred};
  switch (c.kind) {
    case Kind::bce_with_logits:
      binary_cross_entropy_with_logits(
          pred, target, outputs, workspace, {c.reduction, c.grad_scale},
          c.pos_weight ? VectorView<const float>(b.pos_weight.data(), c.cols)
                       : VectorView<const float>());
      break;
    case Kind::bce:
      binary_cross_entropy(pred, target, outputs, workspace, {c.reduction, c.grad_scale, c.eps});
      break;
    case Kind::mse:
      mse_loss(pred, target, outputs, workspace, {c.reduction, c.grad_scale});
      break;
    case Kind::mae:
      mae_loss(pred, target, outputs, workspace, {c.reduction, c.grad_scale});
      break;
    case Kind::huber:
      huber_loss(pred, target, outputs, workspace, {c.reduction, c.grad_scale, c.delta});
      break;
  }
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
}

/// The reference's element losses and derivatives, plus the size of the terms each was computed
/// from (the logit form and the probability gradient cancel, so their fp32 error scales with the
/// terms rather than the result).
struct Expected {
  std::vector<double> loss, grad, loss_terms, grad_terms;
};

Expected reference(const Case& c, const std::vector<double>& p, const std::vector<double>& t,
                   const std::vector<double>& w) {
  const std::int64_t n = c.rows * c.cols;
  Expected e{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n, 0.0),
             std::vector<double>(n, 0.0)};
  const auto C = c.cols;
  switch (c.kind) {
    case Kind::bce_with_logits:
      ref::binary_cross_entropy_with_logits(
          MatrixView<const double>(p.data(), c.rows, C, C),
          MatrixView<const double>(t.data(), c.rows, C, C),
          VectorView<const double>(c.pos_weight ? w.data() : nullptr, C),
          MatrixView<double>(e.loss.data(), c.rows, C, C),
          MatrixView<double>(e.grad.data(), c.rows, C, C));
      for (std::int64_t i = 0; i < n; ++i) {
        const double weight = c.pos_weight ? w[i % C] : 1.0;
        const double l = 1.0 + (weight - 1.0) * t[i];
        e.loss_terms[i] = std::fabs((1.0 - t[i]) * p[i]) + std::fabs(l) * (std::fabs(p[i]) + 1.0);
        e.grad_terms[i] = std::fabs(1.0 - t[i]) + std::fabs(l);
      }
      break;
    case Kind::bce:
      ref::binary_cross_entropy(MatrixView<const double>(p.data(), c.rows, C, C),
                                MatrixView<const double>(t.data(), c.rows, C, C),
                                static_cast<double>(c.eps),
                                MatrixView<double>(e.loss.data(), c.rows, C, C),
                                MatrixView<double>(e.grad.data(), c.rows, C, C));
      for (std::int64_t i = 0; i < n; ++i) {
        const double q = std::fmax(1.0 - p[i], static_cast<double>(c.eps));
        const double pc = std::fmax(p[i], static_cast<double>(c.eps));
        e.grad_terms[i] = std::fabs((1.0 - t[i]) / q) + std::fabs(t[i] / pc);
      }
      break;
    case Kind::mse:
      ref::mse_loss(MatrixView<const double>(p.data(), c.rows, C, C),
                    MatrixView<const double>(t.data(), c.rows, C, C),
                    MatrixView<double>(e.loss.data(), c.rows, C, C),
                    MatrixView<double>(e.grad.data(), c.rows, C, C));
      break;
    case Kind::mae:
      ref::mae_loss(MatrixView<const double>(p.data(), c.rows, C, C),
                    MatrixView<const double>(t.data(), c.rows, C, C),
                    MatrixView<double>(e.loss.data(), c.rows, C, C),
                    MatrixView<double>(e.grad.data(), c.rows, C, C));
      break;
    case Kind::huber:
      ref::huber_loss(MatrixView<const double>(p.data(), c.rows, C, C),
                      MatrixView<const double>(t.data(), c.rows, C, C),
                      static_cast<double>(c.delta), MatrixView<double>(e.loss.data(), c.rows, C, C),
                      MatrixView<double>(e.grad.data(), c.rows, C, C));
      break;
  }
  return e;
}

/// Inputs in the range each loss is meant for: logits and regression values spread over both
/// signs (and both Huber regions), probabilities with some exactly 0 or 1 (clamped), targets in
/// [0, 1] for the cross-entropies.
template <class T>
void fill_inputs(const Case& c, std::uint64_t seed, std::vector<T>* pred, std::vector<T>* target,
                 std::vector<float>* pos_weight) {
  const std::size_t span = static_cast<std::size_t>(c.span());
  switch (c.kind) {
    case Kind::bce_with_logits:
      *pred = random_values<T>(span, seed, -8.0, 8.0);
      *target = random_values<T>(span, seed + 1, 0.0, 1.0);
      break;
    case Kind::bce:
      *pred = random_values<T>(span, seed, 0.01, 0.99);
      for (std::size_t i = 0; i < span; i += 7) (*pred)[i] = from_double<T>(i % 2 ? 0.0 : 1.0);
      *target = random_values<T>(span, seed + 1, 0.0, 1.0);
      break;
    default:
      *pred = random_values<T>(span, seed, -3.0, 3.0);
      *target = random_values<T>(span, seed + 1, -3.0, 3.0);
      break;
  }
  *pos_weight = random_values<float>(static_cast<std::size_t>(c.cols) + 1, seed + 2, 0.25, 4.0);
}

/// Runs the case and checks every output element against the reference, and that nothing
/// around the outputs was written.
template <class T>
void check_case(const Case& c, std::uint64_t seed) {
  SCOPED_TRACE(c.name());
  std::vector<T> pred_host, target_host;
  std::vector<float> weight_host;
  fill_inputs(c, seed, &pred_host, &target_host, &weight_host);
  const std::size_t span = static_cast<std::size_t>(c.span());
  Buffers<T> b = buffers_for(c, pred_host, target_host, weight_host);
  call(c, b);

  const std::vector<double> p = dense(pred_host, c), t = dense(target_host, c);
  const std::vector<double> w(weight_host.begin(), weight_host.end());
  const Expected e = reference(c, p, t, w);
  const ref::LossReductions reduced =
      ref::reduce_losses(MatrixView<const double>(e.loss.data(), c.rows, c.cols, c.cols));
  std::vector<double> magnitude(e.loss.size());  // what each element adds to a sum's error
  for (std::size_t i = 0; i < magnitude.size(); ++i) {
    magnitude[i] = std::fabs(e.loss[i]) + e.loss_terms[i];
  }
  const ref::LossReductions magnitudes =
      ref::reduce_losses(MatrixView<const double>(magnitude.data(), c.rows, c.cols, c.cols));
  const Tolerance fp32 = tolerance_for<float>();

  // The loss.
  const std::vector<float> loss = b.loss.to_host();
  std::vector<float> got;
  std::vector<double> expected, term_scale;
  switch (c.reduction) {
    case Reduction::none:
      for (std::int64_t r = 0; r < c.rows; ++r)
        for (std::int64_t col = 0; col < c.cols; ++col) got.push_back(loss[c.at(r, col)]);
      expected = e.loss;
      term_scale = e.loss_terms;
      break;
    case Reduction::per_sample:
      for (std::int64_t r = 0; r < c.rows; ++r) {
        got.push_back(loss[static_cast<std::size_t>(c.offset + r * c.loss_ld())]);
      }
      expected = reduced.per_sample;
      term_scale = magnitudes.per_sample;
      break;
    case Reduction::mean:
      got = {loss[c.offset]};
      expected = {reduced.mean};
      term_scale = {magnitudes.mean};
      break;
    case Reduction::sum:
      got = {loss[c.offset]};
      expected = {reduced.sum};
      term_scale = {magnitudes.sum};
      break;
    case Reduction::per_sample_sum:
      got = {loss[c.offset]};
      expected = {reduced.per_sample_sum};
      term_scale = {magnitudes.per_sample_sum};
      break;
  }
  EXPECT_TRUE(all_close_scaled(got, expected, term_scale, fp32,
                               c.reduction == Reduction::none ? c.cols : 0))
      << "loss";
  const std::size_t loss_written_outside = written_outside(
      loss, poisoned_host<float>(loss.size()), c.offset, c.loss_rows(), c.loss_cols(), c.loss_ld());
  EXPECT_EQ(loss_written_outside, 0u) << "loss elements outside the output were written";

  // The gradient: grad_scale * g * dL/dp, rounded to T.
  if (!c.grad) return;
  const double weight =
      c.reduction == Reduction::mean ? reduced.mean_weight
      : c.reduction == Reduction::per_sample || c.reduction == Reduction::per_sample_sum
          ? reduced.per_sample_weight
          : 1.0;
  const double factor = static_cast<double>(c.grad_scale) * weight;
  std::vector<double> grad(e.grad.size()), grad_terms(e.grad.size());
  for (std::size_t i = 0; i < grad.size(); ++i) {
    grad[i] = factor * e.grad[i];
    grad_terms[i] = 4.0 * std::fabs(factor) * e.grad_terms[i];
  }
  const std::vector<T> dpred = c.in_place ? b.pred.to_host() : b.dpred.to_host();
  EXPECT_TRUE(all_close_scaled(dense(dpred, c), rounded_to<T>(grad), grad_terms, tolerance_for<T>(),
                               c.cols))
      << "dpred";
  const std::size_t grad_written_outside = written_outside(
      dpred, c.in_place ? pred_host : poisoned_host<T>(span), c.offset, c.rows, c.cols, c.ld);
  EXPECT_EQ(grad_written_outside, 0u) << "dpred elements outside the matrix were written";
}

template <class T>
class ElementwiseLoss : public DeviceTest {};
using StorageTypes = ::testing::Types<float, __half, __nv_bfloat16>;
TYPED_TEST_SUITE(ElementwiseLoss, StorageTypes);

TYPED_TEST(ElementwiseLoss, EveryLossAndReductionMatchesTheReference) {
  using T = TypeParam;
  std::uint64_t seed = 1000;
  // 1x1; rows of 1, 2, 4, 8, 16 and 32 lanes, several rows per warp and a partial last warp;
  // 16-byte packs (fp32, 128 columns); the block strategy.
  const std::vector<std::pair<std::int64_t, std::int64_t>> shapes = {
      {1, 1}, {3, 2}, {130, 3}, {37, 5}, {5, 16}, {9, 33}, {4, 128}, {2, 1025}};
  for (Kind kind : kKinds) {
    for (Reduction reduction : kReductions) {
      for (const auto& [rows, cols] : shapes) {
        Case c{kind, reduction, rows, cols, cols, 0};
        c.grad = seed % 5 != 0;  // the loss alone now and then
        c.pos_weight = seed % 2 == 0;
        check_case<T>(c, ++seed);
      }
    }
  }
}

TYPED_TEST(ElementwiseLoss, StridedUnalignedVectorizedAndInPlace) {
  using T = TypeParam;
  std::uint64_t seed = 5000;
  int turn = 0;
  for (Kind kind : kKinds) {
    // 7: scalar lanes; 300: 32 lanes with 16-byte packs when aligned; 1500: block, packed.
    for (std::int64_t cols : {7, 300, 1500}) {
      const std::int64_t rows = cols > 1024 ? 3 : 19;
      const std::int64_t aligned_ld = (cols + 7) / 8 * 8 + 8;  // packs, a partial last one
      const Reduction reduction = kReductions[turn++ % 5];
      const Reduction other = kReductions[turn++ % 5];
      check_case<T>(Case{kind, reduction, rows, cols, aligned_ld, 0}, ++seed);
      check_case<T>(Case{kind, other, rows, cols, cols + 3, 1}, ++seed);  // unaligned
      Case in_place{kind, reduction, rows, cols, aligned_ld, 8, true, true};
      check_case<T>(in_place, ++seed);
      Case unaligned_in_place{kind, other, rows, cols, cols, 3, true, true};
      check_case<T>(unaligned_in_place, ++seed);
    }
  }
}

TYPED_TEST(ElementwiseLoss, Options) {
  using T = TypeParam;
  std::uint64_t seed = 7000;
  for (Reduction reduction : {Reduction::mean, Reduction::per_sample}) {
    for (float grad_scale : {0.5f, -3.0f, 0.0f}) {
      Case c{Kind::mse, reduction, 5, 9, 9, 0};
      c.grad_scale = grad_scale;
      check_case<T>(c, ++seed);
    }
    for (float delta : {0.3f, 2.5f}) {
      Case c{Kind::huber, reduction, 6, 40, 40, 0};
      c.delta = delta;
      check_case<T>(c, ++seed);
    }
    for (float eps : {1e-3f, 0.2f}) {
      Case c{Kind::bce, reduction, 6, 40, 40, 0};
      c.eps = eps;
      check_case<T>(c, ++seed);
    }
    for (bool pos_weight : {false, true}) {
      Case c{Kind::bce_with_logits, reduction, 7, 300, 304, 0};
      c.pos_weight = pos_weight;
      c.grad_scale = 2.0f;
      check_case<T>(c, ++seed);
    }
  }
}

TEST(ElementwiseLossWide, GridStrideLoopsAndLongRows) {
  if (const auto reason = device_unavailable()) GTEST_SKIP() << "no CUDA device: " << *reason;
  // More rows than the grid covers at once (132 SMs x 16 blocks x 4 rows of 32 lanes; 132 x 4
  // blocks of 512 threads), so the grid-stride loops turn; more rows than the final reduction's
  // 1024 threads; a row longer than a block's stride.
  check_case<float>(Case{Kind::bce_with_logits, Reduction::mean, 8500, 33, 33, 0}, 11);
  check_case<float>(Case{Kind::mse, Reduction::per_sample, 600, 1025, 1025, 0}, 12);
  check_case<__half>(Case{Kind::huber, Reduction::per_sample_sum, 2, 9000, 9000, 0}, 13);
  // Past kReduceItemsPerBlock (4096) rows the final reduction takes two stages (kernels/loss.cuh):
  // just past it, and many first-stage blocks with a short last chunk.
  check_case<float>(Case{Kind::mse, Reduction::mean, 4097, 3, 3, 0}, 14);
  check_case<__nv_bfloat16>(Case{Kind::bce_with_logits, Reduction::sum, 70001, 4, 4, 0}, 15);
}

// --- Keras's published example -------------------------------------------------------------------

TEST(ElementwiseLossKeras, BinaryCrossEntropyVector) {
  if (const auto reason = device_unavailable()) GTEST_SKIP() << "no CUDA device: " << *reason;
  // keras.losses.binary_crossentropy: y_true [[0, 1], [0, 0]], y_pred [[0.6, 0.4], [0.4, 0.6]].
  DeviceBuffer<float> y_true = to_device(std::vector<float>{0.0f, 1.0f, 0.0f, 0.0f});
  DeviceBuffer<float> y_pred = to_device(std::vector<float>{0.6f, 0.4f, 0.4f, 0.6f});
  DeviceBuffer<float> out = poisoned_buffer<float>(2);
  DeviceBuffer<unsigned char> workspace(elementwise_loss_workspace_bytes(2));
  const Workspace ws{workspace.data(), workspace.size()};
  const MatrixView<const float> pred(y_pred.data(), 2, 2), target(y_true.data(), 2, 2);
  const auto run = [&](Reduction reduction) {
    const MatrixView<float> loss(out.data(), reduction == Reduction::per_sample ? 2 : 1, 1);
    binary_cross_entropy<float>(pred, target, {loss}, ws, {reduction});
    return out.to_host();
  };
  const auto three_decimals = [](double v) { return std::round(v * 1000.0) / 1000.0; };
  EXPECT_DOUBLE_EQ(three_decimals(run(Reduction::mean)[0]), 0.815);
  EXPECT_DOUBLE_EQ(three_decimals(run(Reduction::per_sample_sum)[0]), 1.630);
  const std::vector<float> per_sample = run(Reduction::per_sample);
  EXPECT_DOUBLE_EQ(three_decimals(per_sample[0]), 0.916);
  EXPECT_DOUBLE_EQ(three_decimals(per_sample[1]), 0.714);
}

// --- special values ------------------------------------------------------------------------------

/// Runs `kind` with reduction none and mean on explicit (pred, target) pairs, one row each, and
/// compares with the reference: NaN must meet NaN and an infinity the same infinity.
template <class T>
void check_special(Kind kind, const std::vector<std::pair<double, double>>& pairs,
                   bool expect_finite) {
  const std::int64_t cols = static_cast<std::int64_t>(pairs.size());
  std::vector<T> pred_host, target_host;
  for (const auto& [p, t] : pairs) {
    pred_host.push_back(from_double<T>(p));
    target_host.push_back(from_double<T>(t));
  }
  for (Reduction reduction : {Reduction::none, Reduction::mean}) {
    const Case c{kind, reduction, 1, cols, cols, 0};
    SCOPED_TRACE(c.name());
    DeviceBuffer<T> pred = to_device(pred_host), target = to_device(target_host);
    DeviceBuffer<T> dpred = poisoned_buffer<T>(pairs.size());
    DeviceBuffer<float> loss = poisoned_buffer<float>(pairs.size());
    DeviceBuffer<unsigned char> workspace(elementwise_loss_workspace_bytes(1));
    Buffers<T> b{std::move(pred), std::move(target),      std::move(dpred),
                 std::move(loss), DeviceBuffer<float>(1), std::move(workspace)};
    call(c, b);
    const std::vector<double> p = to_double(pred_host), t = to_double(target_host);
    const Expected e = reference(c, p, t, {});
    const std::vector<float> got_loss = b.loss.to_host();
    const std::vector<T> got_grad = b.dpred.to_host();
    if (reduction == Reduction::none) {
      EXPECT_TRUE(all_close_scaled(got_loss, e.loss, e.loss_terms, tolerance_for<float>()));
    } else {
      const double mean =
          ref::reduce_losses(MatrixView<const double>(e.loss.data(), 1, cols, cols)).mean;
      EXPECT_TRUE(all_close(std::vector<float>{got_loss[0]}, {mean}, {1e-5, 1e-4}));
    }
    std::vector<double> grad(e.grad.size()), terms(e.grad.size());
    const double factor = reduction == Reduction::mean ? 1.0 / static_cast<double>(cols) : 1.0;
    for (std::size_t i = 0; i < grad.size(); ++i) {
      grad[i] = factor * e.grad[i];
      terms[i] = 4.0 * factor * e.grad_terms[i];
    }
    EXPECT_TRUE(all_close_scaled(got_grad, rounded_to<T>(grad), terms, tolerance_for<T>()));
    if (expect_finite) {
      const std::size_t written = reduction == Reduction::none ? pairs.size() : 1;
      for (std::size_t i = 0; i < written; ++i) EXPECT_TRUE(std::isfinite(got_loss[i])) << i;
      for (T v : got_grad) EXPECT_TRUE(std::isfinite(to_double(v))) << to_double(v);
    }
  }
}

TYPED_TEST(ElementwiseLoss, SpecialValues) {
  using T = TypeParam;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Huge finite logits: the stable form stays finite for every target.
  check_special<T>(Kind::bce_with_logits,
                   {{1e4, 0.0}, {1e4, 1.0}, {-1e4, 0.0}, {-1e4, 1.0}, {1e4, 0.5}, {-1e4, 0.25}},
                   true);
  // Clamped probabilities: finite loss, zero gradient.
  check_special<T>(Kind::bce, {{0.0, 0.0}, {0.0, 1.0}, {1.0, 0.0}, {1.0, 1.0}, {-2.0, 0.5}}, true);
  // NaN and infinities propagate through every formula (and the mean).
  for (Kind kind : kKinds) {
    check_special<T>(kind, {{nan, 0.5}, {0.5, 0.25}}, false);
    check_special<T>(kind, {{0.25, nan}, {0.5, 0.25}}, false);
  }
  for (Kind kind : {Kind::mse, Kind::mae, Kind::huber}) {
    check_special<T>(kind, {{inf, 0.0}, {0.5, 0.25}}, false);
    check_special<T>(kind, {{0.0, inf}, {0.5, 0.25}}, false);
    check_special<T>(kind, {{-inf, -inf}, {0.5, 0.25}}, false);
  }
  check_special<T>(Kind::bce_with_logits, {{inf, 0.0}, {-inf, 0.0}, {inf, 1.0}, {0.5, 0.25}},
                   false);
  check_special<T>(Kind::bce, {{inf, 0.5}, {-inf, 0.5}, {nan, 0.5}}, false);
  // Regression at d = 0 (MAE's gradient 0) and at Huber's switch point.
  check_special<T>(Kind::mae, {{0.5, 0.5}, {-2.0, -2.0}, {1.0, 0.0}}, true);
  check_special<T>(Kind::huber, {{1.0, 0.0}, {0.0, 1.0}, {1.5, 0.0}, {0.0, 0.0}}, true);
}

// --- empty inputs --------------------------------------------------------------------------------

TEST(ElementwiseLossEmpty, MeanOfNothingIsZero) {
  if (const auto reason = device_unavailable()) GTEST_SKIP() << "no CUDA device: " << *reason;
  DeviceBuffer<float> pred(8), target(8), dpred(8);
  DeviceBuffer<unsigned char> workspace(elementwise_loss_workspace_bytes(4));
  const Workspace ws{workspace.data(), workspace.size()};
  for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::per_sample_sum}) {
    for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{0, 4}, {4, 0}}) {
      DeviceBuffer<float> out = poisoned_buffer<float>(1);
      mse_loss<float>(
          MatrixView<const float>(pred.data(), rows, cols),
          MatrixView<float>(target.data(), rows, cols),
          {MatrixView<float>(out.data(), 1, 1), MatrixView<float>(dpred.data(), rows, cols)}, ws,
          {reduction});
      WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_EQ(out.to_host()[0], 0.0f) << to_string(reduction) << " " << rows << "x" << cols;
    }
  }
  // per_sample of rows with no columns: 0 per row; none of an empty matrix writes nothing.
  DeviceBuffer<float> out = poisoned_buffer<float>(4);
  huber_loss<float>(MatrixView<const float>(pred.data(), 3, 0),
                    MatrixView<const float>(target.data(), 3, 0),
                    {MatrixView<float>(out.data(), 3, 1)}, Workspace{}, {Reduction::per_sample});
  mae_loss<float>(MatrixView<const float>(pred.data(), 0, 5),
                  MatrixView<const float>(target.data(), 0, 5),
                  {MatrixView<float>(out.data() + 3, 0, 5)}, Workspace{}, {Reduction::none});
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> host = out.to_host();
  EXPECT_EQ(host[0], 0.0f);
  EXPECT_EQ(host[2], 0.0f);
  EXPECT_TRUE(std::isnan(host[3]));
}

// --- determinism ---------------------------------------------------------------------------------

TYPED_TEST(ElementwiseLoss, RunsAreBitwiseIdentical) {
  using T = TypeParam;
  const Case cases[] = {Case{Kind::bce_with_logits, Reduction::mean, 1100, 37, 37, 0},
                        Case{Kind::huber, Reduction::per_sample, 300, 20, 20, 0},
                        Case{Kind::mse, Reduction::sum, 3, 3000, 3000, 0},
                        Case{Kind::mae, Reduction::mean, 9000, 2, 2, 0}};  // two stages
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name());
    std::vector<T> pred_host, target_host;
    std::vector<float> weight_host;
    fill_inputs(c, 77, &pred_host, &target_host, &weight_host);
    Buffers<T> b = buffers_for(c, pred_host, target_host, weight_host);
    std::vector<float> first_loss;
    std::vector<T> first_grad;
    for_each_schedule([&](const std::string& schedule) {
      for (int run = 0; run < 2; ++run) {
        call(c, b);
        if (first_loss.empty()) {
          first_loss = b.loss.to_host();
          first_grad = b.dpred.to_host();
          continue;
        }
        EXPECT_TRUE(bitwise_equal(b.loss.to_host(), first_loss)) << schedule << " run " << run;
        EXPECT_TRUE(bitwise_equal(b.dpred.to_host(), first_grad)) << schedule << " run " << run;
      }
    });
  }
}

// --- bad arguments -------------------------------------------------------------------------------

class ElementwiseLossApi : public DeviceTest {};

TEST_F(ElementwiseLossApi, BadArgumentsAreTypedErrorsNamingOpAndArgument) {
  DeviceBuffer<float> buffer(4096);
  DeviceBuffer<unsigned char> workspace(elementwise_loss_workspace_bytes(4));
  float* p = buffer.data();
  const Workspace ws{workspace.data(), workspace.size()};
  const MatrixView<const float> pred(p, 4, 8), target(p + 100, 4, 8);
  const MatrixView<float> scalar(p + 200, 1, 1), per_row(p + 200, 4, 1);
  const MatrixView<float> dpred(p + 300, 4, 8);
  const auto message = [&](auto&& body) { return error_message(body); };

  EXPECT_THAT(
      message([&] { mse_loss<float>(MatrixView<const float>(p, -1, 8), target, {scalar}, ws); }),
      HasSubstr("warpfuse::mse_loss: argument 'pred': rows = -1 is negative"));
  EXPECT_THAT(message([&] {
                mae_loss<float>(MatrixView<const float>(nullptr, 4, 8), target, {scalar}, ws);
              }),
              HasSubstr("warpfuse::mae_loss: argument 'pred': data is null"));
  EXPECT_THAT(message([&] {
                huber_loss<float>(pred, MatrixView<const float>(p + 100, 4, 8, 6), {scalar}, ws);
              }),
              HasSubstr("warpfuse::huber_loss: argument 'target': ld = 6 is less than cols = 8"));
  EXPECT_THAT(
      message([&] {
        binary_cross_entropy<float>(pred, MatrixView<const float>(p + 100, 4, 7), {scalar}, ws);
      }),
      HasSubstr("warpfuse::binary_cross_entropy: argument 'target': shape 4 x 7 does not match "
                "pred's 4 x 8"));
  // The loss's shape follows the reduction.
  EXPECT_THAT(message([&] { mse_loss<float>(pred, target, {per_row}, ws); }),
              HasSubstr("argument 'outputs.loss': shape 4 x 1 is not the 1 x 1 that reduction "
                        "mean writes for pred's 4 x 8"));
  EXPECT_THAT(
      message([&] { mse_loss<float>(pred, target, {scalar}, ws, {Reduction::per_sample}); }),
      HasSubstr("argument 'outputs.loss': shape 1 x 1 is not the 4 x 1 that reduction "
                "per_sample"));
  EXPECT_THAT(message([&] { mse_loss<float>(pred, target, {scalar}, ws, {Reduction::none}); }),
              HasSubstr("argument 'outputs.loss': shape 1 x 1 is not the 4 x 8"));
  EXPECT_THAT(
      message([&] { mse_loss<float>(pred, target, {MatrixView<float>(nullptr, 1, 1)}, ws); }),
      HasSubstr("warpfuse::mse_loss: argument 'outputs.loss': data is null"));
  // The gradient and overlaps.
  EXPECT_THAT(message([&] {
                mse_loss<float>(pred, target, {scalar, MatrixView<float>(p + 300, 4, 9)}, ws);
              }),
              HasSubstr("argument 'outputs.dpred': shape 4 x 9 does not match pred's 4 x 8"));
  EXPECT_THAT(message([&] {
                mse_loss<float>(pred, target, {scalar, MatrixView<float>(p + 3, 4, 8)}, ws);
              }),
              HasSubstr("argument 'outputs.dpred': overlaps 'pred'"));
  EXPECT_THAT(message([&] {
                mse_loss<float>(pred, target, {MatrixView<float>(p + 5, 1, 1), dpred}, ws);
              }),
              HasSubstr("argument 'outputs.loss': overlaps 'pred'"));
  EXPECT_THAT(message([&] {
                mse_loss<float>(pred, target, {MatrixView<float>(p, 4, 8)}, ws, {Reduction::none});
              }),
              HasSubstr("argument 'outputs.loss': overlaps 'pred'"));
  EXPECT_THAT(message([&] {
                mse_loss<float>(pred, target, {MatrixView<float>(p + 301, 1, 1), dpred}, ws);
              }),
              HasSubstr("argument 'outputs.loss': overlaps 'outputs.dpred'"));
  EXPECT_THAT(message([&] {
                mse_loss<float>(pred, target,
                                {MatrixView<float>(static_cast<float*>(ws.data) + 70, 1, 1)}, ws);
              }),
              HasSubstr("argument 'outputs.loss': overlaps 'workspace'"));
  // The workspace (mean, sum and per_sample_sum only).
  EXPECT_THAT(message([&] { mse_loss<float>(pred, target, {scalar}, Workspace{}); }),
              HasSubstr("warpfuse::mse_loss: argument 'workspace'"));
  EXPECT_THAT(
      message([&] {
        mse_loss<float>(pred, target, {scalar}, Workspace{workspace.data(), 300}, {Reduction::sum});
      }),
      HasSubstr("argument 'workspace': holds 300 bytes"));
  // Options.
  EXPECT_THAT(
      message([&] { mse_loss<float>(pred, target, {scalar}, ws, {static_cast<Reduction>(9)}); }),
      HasSubstr("argument 'options.reduction': reduction = 9"));
  EXPECT_THAT(message([&] {
                mae_loss<float>(pred, target, {scalar}, ws, {Reduction::mean, std::nanf("")});
              }),
              HasSubstr("warpfuse::mae_loss: argument 'options.grad_scale': grad_scale = nan"));
  for (float delta : {0.0f, -1.0f, std::numeric_limits<float>::infinity(), std::nanf("")}) {
    EXPECT_THAT(message([&] {
                  huber_loss<float>(pred, target, {scalar}, ws, {Reduction::mean, 1.0f, delta});
                }),
                HasSubstr("warpfuse::huber_loss: argument 'options.delta'"));
  }
  for (float eps : {0.0f, 0.5f, 0.7f, -1e-7f, std::nanf("")}) {
    EXPECT_THAT(
        message([&] {
          binary_cross_entropy<float>(pred, target, {scalar}, ws, {Reduction::mean, 1.0f, eps});
        }),
        HasSubstr("warpfuse::binary_cross_entropy: argument 'options.eps'"));
  }
  EXPECT_THAT(
      message([&] {
        binary_cross_entropy<float>(pred, target, {scalar}, ws, {Reduction::mean, 1.0f, 0.7f});
      }),
      HasSubstr("eps = 0.7 is not in (0, 0.5)"));
  // pos_weight.
  EXPECT_THAT(message([&] {
                binary_cross_entropy_with_logits<float>(pred, target, {scalar}, ws, {},
                                                        VectorView<const float>(p + 400, 7));
              }),
              HasSubstr("warpfuse::binary_cross_entropy_with_logits: argument 'pos_weight': "
                        "size = 7 is not pred's cols = 8"));
  EXPECT_THAT(message([&] {
                binary_cross_entropy_with_logits<float>(pred, target, {scalar, dpred}, ws, {},
                                                        VectorView<const float>(p + 300, 8));
              }),
              HasSubstr("argument 'outputs.dpred': overlaps 'pos_weight'"));
  EXPECT_THAT(message([&] {
                binary_cross_entropy_with_logits<float>(pred, target, {scalar}, ws, {},
                                                        VectorView<const float>(nullptr, 8));
              }),
              HasSubstr("argument 'pos_weight': data is null"));
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
}

TEST_F(ElementwiseLossApi, ExactAliasesAreInPlace) {
  // dpred may be pred or target itself; per_sample and none need no workspace.
  DeviceBuffer<float> pred = to_device(std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f});
  DeviceBuffer<float> target = to_device(std::vector<float>{0.0f, 0.0f, 1.0f, 1.0f});
  DeviceBuffer<float> loss = poisoned_buffer<float>(2);
  const MatrixView<float> p(pred.data(), 2, 2), t(target.data(), 2, 2);
  mse_loss<float>(p, t, {MatrixView<float>(loss.data(), 2, 1), t}, Workspace{},
                  {Reduction::per_sample});
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(loss.to_host(), (std::vector<float>{2.5f, 6.5f}));
  // Gradient of per_sample: 2 d / cols = d, written over the target.
  EXPECT_EQ(target.to_host(), (std::vector<float>{1.0f, 2.0f, 2.0f, 3.0f}));
}

}  // namespace
}  // namespace warpfuse::test
