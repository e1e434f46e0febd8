// Rows past 2^31 elements (#16 item 5): three rows with a leading dimension of 2^30 + 7, so the
// last row starts at element 2^31 + 14, through softmax, log_softmax, their backwards,
// cross-entropy (index targets, gradient in place; and in vocabulary-parallel shards), activations
// forward and backward (with the bias gradient's column sums) and every elementwise loss
// (per-element loss and gradient, and a mean) and chunked linear + cross-entropy, checked row by
// row against the reference; on a GPU
// also PyTorch issue 90793's shape (18423 x 131072 bf16 cross-entropy in place, rows sampled).
// Any 32-bit index arithmetic in a kernel or a launcher reads or writes the wrong row (or outside
// the allocation) here. The emulator's cudaMalloc reserves such a matrix as address space and
// only the touched rows take memory; on a GPU it is 12 GiB per matrix.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "test_util.h"
#include "warpfuse/activation.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/cross_entropy_shard.h"
#include "warpfuse/elementwise_loss.h"
#include "warpfuse/gemm.h"
#include "warpfuse/linear_cross_entropy.h"
#include "warpfuse/ref/activation.h"
#include "warpfuse/ref/cross_entropy.h"
#include "warpfuse/ref/elementwise_loss.h"
#include "warpfuse/ref/linear_cross_entropy.h"
#include "warpfuse/ref/softmax.h"
#include "warpfuse/softmax.h"

#if defined(WARPFUSE_SIMT)
#include "simt/observer.h"
#endif

namespace warpfuse {
namespace {

using test::DeviceTest;
using test::random_values;

constexpr std::int64_t kRows = 3;
constexpr std::int64_t kLd = (std::int64_t{1} << 30) + 7;

/// A rows x ld float matrix on the device of which only [0, cols) of each row is used.
class FarMatrix {
 public:
  explicit FarMatrix(std::int64_t cols) : cols_(cols) {
    const std::size_t bytes = static_cast<std::size_t>(kRows * kLd) * sizeof(float);
    if (cudaMalloc(reinterpret_cast<void**>(&data_), bytes) != cudaSuccess) {
      data_ = nullptr;
      static_cast<void>(cudaGetLastError());  // not sticky: clear it for the next checks
    }
  }
  ~FarMatrix() {
    if (data_ != nullptr) static_cast<void>(cudaFree(data_));
  }
  FarMatrix(const FarMatrix&) = delete;
  FarMatrix& operator=(const FarMatrix&) = delete;
  bool ok() const { return data_ != nullptr; }
  float* row(std::int64_t r) { return data_ + r * kLd; }
  void set(const std::vector<float>& host) {  // kRows x cols, dense
    for (std::int64_t r = 0; r < kRows; ++r) {
      ASSERT_EQ(cudaMemcpy(row(r), host.data() + r * cols_, cols_ * sizeof(float),
                           cudaMemcpyHostToDevice),
                cudaSuccess);
    }
  }
  std::vector<float> get() {
    std::vector<float> host(static_cast<std::size_t>(kRows * cols_));
    for (std::int64_t r = 0; r < kRows; ++r) {
      EXPECT_EQ(cudaMemcpy(host.data() + r * cols_, row(r), cols_ * sizeof(float),
                           cudaMemcpyDeviceToHost),
                cudaSuccess);
    }
    return host;
  }
  MatrixView<float> view() { return MatrixView<float>(data_, kRows, cols_, kLd); }
  MatrixView<const float> cview() { return MatrixView<const float>(data_, kRows, cols_, kLd); }

 private:
  float* data_ = nullptr;
  std::int64_t cols_;
};

class LargeOffsets : public DeviceTest {
 protected:
  void SetUp() override {
    DeviceTest::SetUp();
    if (IsSkipped()) return;  // no device (the GPU binary on a machine without one)
#if defined(WARPFUSE_SIMT)
    // The observer keeps per-byte state for each allocation: it tracks no 12 GiB matrix (the
    // emulated and ASan binaries run these).
    if (simt::observing()) GTEST_SKIP() << "not under the access observer";
#endif
  }
};

// Four 12 GiB matrices: the emulator reserves them as address space and must succeed; a GPU with
// less memory skips.
#if defined(WARPFUSE_SIMT)
#define WF_REQUIRE_ALLOCATED(condition) ASSERT_TRUE(condition) << "lazy cudaMalloc failed"
#else
#define WF_REQUIRE_ALLOCATED(condition) \
  if (!(condition)) GTEST_SKIP() << "not enough device memory for 12 GiB matrices"
#endif

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(static_cast<double>(got[i]) - want[i]) <= tol * (1.0 + std::fabs(want[i])))) {
      if (++bad <= 3)
        ADD_FAILURE() << what << " element " << i << ": " << got[i] << " vs " << want[i];
    }
  }
}

// Row lengths that take different strategies: a warp per row, a block per row, and a row longer
// than a block holds (online / multi-pass).
const std::int64_t kCols[] = {700, 6000, 70000};

TEST_F(LargeOffsets, SoftmaxFamilyPast2To31Elements) {
  for (const std::int64_t cols : kCols) {
    SCOPED_TRACE(cols);
    FarMatrix x(cols), y(cols), dy(cols), dx(cols);
    WF_REQUIRE_ALLOCATED(x.ok() && y.ok() && dy.ok() && dx.ok());
    const std::vector<float> hx = random_values<float>(kRows * cols, 11 + cols, -4.0, 4.0);
    const std::vector<float> hdy = random_values<float>(kRows * cols, 13 + cols, -1.0, 1.0);
    x.set(hx);
    dy.set(hdy);
    for (const bool log : {false, true}) {
      std::vector<float> want(hx.size()), want_dx(hx.size());
      const MatrixView<const float> hxv(hx.data(), kRows, cols, cols);
      const MatrixView<float> wv(want.data(), kRows, cols, cols);
      if (log) {
        ref::log_softmax<float>(hxv, wv);
        log_softmax<float>(x.cview(), y.view());
      } else {
        ref::softmax<float>(hxv, wv);
        softmax<float>(x.cview(), y.view());
      }
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      expect_close(y.get(), want, 1e-5, log ? "log_softmax" : "softmax");
      const MatrixView<const float> wcv(want.data(), kRows, cols, cols);
      const MatrixView<const float> hdyv(hdy.data(), kRows, cols, cols);
      const MatrixView<float> dxv(want_dx.data(), kRows, cols, cols);
      y.set(want);  // the backward reads the reference forward
      if (log) {
        ref::log_softmax_backward<float>(wcv, hdyv, dxv);
        log_softmax_backward<float>(y.cview(), dy.cview(), dx.view());
      } else {
        ref::softmax_backward<float>(wcv, hdyv, dxv);
        softmax_backward<float>(y.cview(), dy.cview(), dx.view());
      }
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      expect_close(dx.get(), want_dx, 1e-4, log ? "log_softmax_backward" : "softmax_backward");
    }
  }
}

TEST_F(LargeOffsets, CrossEntropyInPlacePast2To31Elements) {
  for (const std::int64_t cols : kCols) {
    SCOPED_TRACE(cols);
    FarMatrix logits(cols);
    WF_REQUIRE_ALLOCATED(logits.ok());
    const std::vector<float> hx = random_values<float>(kRows * cols, 17 + cols, -4.0, 4.0);
    logits.set(hx);
    const std::vector<std::int32_t> targets = {0, static_cast<std::int32_t>(cols - 1),
                                               static_cast<std::int32_t>(cols / 2)};
    DeviceBuffer<std::int32_t> d_targets = to_device(targets);
    DeviceBuffer<float> loss(kRows), lse(kRows);
    DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(kRows));
    CrossEntropyOptions options;
    options.reduction = CrossEntropyReduction::none;
    CrossEntropyOutputs<float> outputs;
    outputs.loss = loss.vector();
    outputs.logsumexp = lse.vector();
    outputs.dlogits = logits.view();  // in place
    cross_entropy<float>(logits.cview(), d_targets.vector(), outputs,
                         Workspace{workspace.data(), workspace.size()}, options);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    // The reference in double on the same logits and targets.
    const std::vector<double> dx(hx.begin(), hx.end());
    const std::vector<std::int64_t> t64(targets.begin(), targets.end());
    std::vector<double> want_loss(kRows), want_lse(kRows), want_grad_d(hx.size());
    ref::cross_entropy(MatrixView<const double>(dx.data(), kRows, cols),
                       VectorView<const std::int64_t>(t64.data(), kRows), ref::CrossEntropyParams{},
                       VectorView<double>(want_loss.data(), kRows),
                       VectorView<double>(want_lse.data(), kRows),
                       MatrixView<double>(want_grad_d.data(), kRows, cols));
    const std::vector<float> want_grad(want_grad_d.begin(), want_grad_d.end());
    const std::vector<float> got_loss = loss.to_host(), got_lse = lse.to_host();
    for (std::int64_t r = 0; r < kRows; ++r) {
      EXPECT_NEAR(got_loss[r], want_loss[r], 1e-4 * (1 + std::fabs(want_loss[r]))) << "row " << r;
      EXPECT_NEAR(got_lse[r], want_lse[r], 1e-4 * (1 + std::fabs(want_lse[r]))) << "row " << r;
    }
    expect_close(logits.get(), want_grad, 1e-4, "dlogits");
  }
}

TEST_F(LargeOffsets, ActivationAndElementwiseLossPast2To31Elements) {
  for (const std::int64_t cols : {std::int64_t{700}, std::int64_t{70000}}) {
    SCOPED_TRACE(cols);
    FarMatrix x(cols), y(cols), target(cols), grad(cols);
    WF_REQUIRE_ALLOCATED(x.ok() && y.ok() && target.ok() && grad.ok());
    const std::vector<float> hx = random_values<float>(kRows * cols, 19 + cols, -3.0, 3.0);
    const std::vector<float> ht = random_values<float>(kRows * cols, 23 + cols, -1.0, 1.0);
    x.set(hx);
    target.set(ht);
    const MatrixView<const float> hxv(hx.data(), kRows, cols, cols);
    const MatrixView<const float> htv(ht.data(), kRows, cols, cols);

    ActivationParams gelu;
    gelu.kind = Activation::gelu;
    activation_forward<float>(x.cview(), y.view(), gelu);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> want(hx.size());
    ref::activation_forward<float>(hxv, {}, {}, MatrixView<float>(want.data(), kRows, cols, cols),
                                   {}, gelu);
    expect_close(y.get(), want, 1e-5, "gelu");

    // mse, reduction none: the per-element loss into y, the gradient into grad.
    DeviceBuffer<unsigned char> workspace(1 << 16);
    ElementwiseLossOptions none;
    none.reduction = Reduction::none;
    ElementwiseLossOutputs<float> outputs;
    outputs.loss = y.view();
    outputs.dpred = grad.view();
    mse_loss<float>(x.cview(), target.cview(), outputs,
                    Workspace{workspace.data(), workspace.size()}, none);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> want_loss(hx.size()), want_grad(hx.size());
    ref::mse_loss<float>(hxv, htv, MatrixView<float>(want_loss.data(), kRows, cols, cols),
                         MatrixView<float>(want_grad.data(), kRows, cols, cols));
    expect_close(y.get(), want_loss, 1e-5, "mse loss");
    expect_close(grad.get(), want_grad, 1e-5, "mse gradient");
  }
}

TEST_F(LargeOffsets, ActivationBackwardAndEveryElementwiseLossPast2To31Elements) {
  for (const std::int64_t cols : {std::int64_t{700}, std::int64_t{70000}}) {
    SCOPED_TRACE(cols);
    FarMatrix x(cols), dy(cols), out(cols), grad(cols);
    WF_REQUIRE_ALLOCATED(x.ok() && dy.ok() && out.ok() && grad.ok());
    const std::vector<float> hx = random_values<float>(kRows * cols, 29 + cols, -3.0, 3.0);
    const std::vector<float> hd = random_values<float>(kRows * cols, 31 + cols, 0.05, 0.95);
    x.set(hx);
    dy.set(hd);
    const MatrixView<const float> hxv(hx.data(), kRows, cols, cols);
    const MatrixView<const float> hdv(hd.data(), kRows, cols, cols);
    const auto dense = [&](std::vector<float>& v) {
      v.assign(hx.size(), 0.0f);
      return MatrixView<float>(v.data(), kRows, cols, cols);
    };

    // silu backward from x; relu's fused backward with the bias gradient (column sums over the
    // three far rows).
    ActivationParams silu;
    silu.kind = Activation::silu;
    activation_backward<float>(x.cview(), dy.cview(), grad.view(), silu);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> want;
    ref::activation_backward<float>(hxv, hdv, {}, dense(want), {}, {}, silu);
    expect_close(grad.get(), want, 1e-5, "silu backward");
    ActivationParams relu;
    relu.kind = Activation::relu;
    DeviceBuffer<float> dbias(static_cast<std::size_t>(cols));
    DeviceBuffer<unsigned char> act_ws(
        bias_activation_backward_workspace_bytes(kRows, cols, Activation::relu));
    BiasActivationBackwardOutputs<float> act_out;
    act_out.dx = grad.view();
    act_out.dbias = dbias.vector();
    bias_activation_backward<float>(x.cview(), dy.cview(), act_out,
                                    Workspace{act_ws.data(), act_ws.size()}, relu);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<float> want_dbias(static_cast<std::size_t>(cols));
    ref::activation_backward<float>(hxv, hdv, {}, dense(want),
                                    VectorView<float>(want_dbias.data(), cols), {}, relu);
    expect_close(grad.get(), want, 1e-5, "relu backward");
    expect_close(dbias.to_host(), want_dbias, 1e-5, "relu dbias");

    // Every elementwise loss, reduction none: loss into `out`, gradient into `grad`; pred x (dy
    // as the probabilities of bce), targets dy.
    DeviceBuffer<unsigned char> workspace(elementwise_loss_workspace_bytes(kRows));
    const Workspace ws{workspace.data(), workspace.size()};
    ElementwiseLossOutputs<float> outputs;
    outputs.loss = out.view();
    outputs.dpred = grad.view();
    std::vector<float> want_loss, want_grad;
    ElementwiseLossOptions none;
    none.reduction = Reduction::none;
    binary_cross_entropy_with_logits<float>(x.cview(), dy.cview(), outputs, ws, none);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    ref::binary_cross_entropy_with_logits<float>(hxv, hdv, {}, dense(want_loss), dense(want_grad));
    expect_close(out.get(), want_loss, 1e-5, "bce with logits loss");
    expect_close(grad.get(), want_grad, 1e-5, "bce with logits gradient");
    BinaryCrossEntropyOptions bce;
    bce.reduction = Reduction::none;
    binary_cross_entropy<float>(dy.cview(), x.cview(), outputs, ws, bce);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    ref::binary_cross_entropy<float>(hdv, hxv, bce.eps, dense(want_loss), dense(want_grad));
    expect_close(out.get(), want_loss, 1e-5, "bce loss");
    expect_close(grad.get(), want_grad, 1e-5, "bce gradient");
    mae_loss<float>(x.cview(), dy.cview(), outputs, ws, none);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    ref::mae_loss<float>(hxv, hdv, dense(want_loss), dense(want_grad));
    expect_close(out.get(), want_loss, 1e-5, "mae loss");
    expect_close(grad.get(), want_grad, 1e-5, "mae gradient");
    HuberLossOptions huber;
    huber.reduction = Reduction::none;
    huber.delta = 0.5f;
    huber_loss<float>(x.cview(), dy.cview(), outputs, ws, huber);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    ref::huber_loss<float>(hxv, hdv, 0.5, dense(want_loss), dense(want_grad));
    expect_close(out.get(), want_loss, 1e-5, "huber loss");
    expect_close(grad.get(), want_grad, 1e-5, "huber gradient");
    // A mean over the far rows (the row partials and their reduction).
    DeviceBuffer<float> mean = test::poisoned_buffer<float>(1);
    ElementwiseLossOutputs<float> reduced;
    reduced.loss = MatrixView<float>(mean.data(), 1, 1);
    mae_loss<float>(x.cview(), dy.cview(), reduced, ws);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    ref::mae_loss<float>(hxv, hdv, dense(want_loss), {});
    double total = 0.0;
    for (float v : want_loss) total += v;
    expect_close(mean.to_host(),
                 {static_cast<float>(total / static_cast<double>(want_loss.size()))}, 1e-5,
                 "mae mean");
  }
}

/// Vocabulary-parallel cross-entropy over far rows: two shards of one far matrix (views at column
/// offsets), statistics, combine, finish with the gradient in place.
TEST_F(LargeOffsets, CrossEntropyShardsPast2To31Elements) {
  const std::int64_t cols = 70000, split = 30011;
  FarMatrix logits(cols);
  WF_REQUIRE_ALLOCATED(logits.ok());
  const std::vector<float> hz = random_values<float>(kRows * cols, 41, -4.0, 4.0);
  logits.set(hz);
  const std::vector<std::int64_t> targets = {5, 40000, cols - 1};
  DeviceBuffer<std::int64_t> d_targets = to_device(targets);
  DeviceBuffer<float> gathered(2 * kRows * kCrossEntropyShardStats);
  DeviceBuffer<float> combined(kRows * kCrossEntropyShardStats);
  CrossEntropyOptions options;
  options.reduction = CrossEntropyReduction::none;
  options.logit_softcap = 5.0f;
  const auto shard_view = [&](int s) {
    const std::int64_t v0 = s == 0 ? 0 : split;
    return MatrixView<float>(logits.row(0) + v0, kRows, s == 0 ? split : cols - split, kLd);
  };
  for (int s = 0; s < 2; ++s) {
    cross_entropy_shard_stats(
        shard_view(s), d_targets.vector(), CrossEntropyShard{s == 0 ? 0 : split, cols},
        MatrixView<float>(gathered.data() + s * kRows * 8, kRows, 8), options);
  }
  cross_entropy_shard_combine(MatrixView<const float>(gathered.data(), 2 * kRows, 8), 2,
                              MatrixView<float>(combined.data(), kRows, 8));
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(kRows));
  std::vector<float> loss_of_shard[2];
  for (int s = 0; s < 2; ++s) {
    DeviceBuffer<float> loss = test::poisoned_buffer<float>(kRows);
    CrossEntropyOutputs<float> out;
    out.loss = loss.vector();
    out.dlogits = shard_view(s);
    cross_entropy_shard_finish(MatrixView<const float>(shard_view(s)), d_targets.vector(),
                               CrossEntropyShard{s == 0 ? 0 : split, cols},
                               MatrixView<const float>(combined.data(), kRows, 8), out,
                               Workspace{workspace.data(), workspace.size()}, options);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    loss_of_shard[s] = loss.to_host();
  }
  std::vector<double> z(hz.begin(), hz.end());
  std::vector<double> row_loss(kRows), row_grad(z.size());
  ref::CrossEntropyParams params;
  params.logit_softcap = 5.0;
  ref::cross_entropy(MatrixView<const double>(z.data(), kRows, cols),
                     VectorView<const std::int64_t>(targets.data(), kRows), params,
                     VectorView<double>(row_loss.data(), kRows), {},
                     MatrixView<double>(row_grad.data(), kRows, cols));
  const std::vector<float> want_loss(row_loss.begin(), row_loss.end());
  const std::vector<float> want_grad(row_grad.begin(), row_grad.end());
  expect_close(loss_of_shard[0], want_loss, 1e-4, "shard 0 loss");
  expect_close(loss_of_shard[1], want_loss, 1e-4, "shard 1 loss");
  expect_close(logits.get(), want_grad, 1e-4, "sharded dlogits");
}

// Chunked linear + cross-entropy with hidden and dhidden rows 2^30 + 7 apart (the last row at
// element 2^31 + 14), one row per chunk so the third chunk's GEMMs start past 2^31 elements.
TEST_F(LargeOffsets, LinearCrossEntropyPast2To31Elements) {
  const std::int64_t d = 24, vocab = 300;
  FarMatrix hidden(d), dhidden(d);
  WF_REQUIRE_ALLOCATED(hidden.ok() && dhidden.ok());
  const std::vector<float> hh = random_values<float>(kRows * d, 41, -1.0, 1.0);
  const std::vector<float> hw = random_values<float>(vocab * d, 42, -0.5, 0.5);
  hidden.set(hh);
  const std::vector<std::int64_t> targets{3, vocab - 1, 117};
  DeviceBuffer<float> d_weight = to_device(hw);
  DeviceBuffer<std::int64_t> d_targets = to_device(targets);
  DeviceBuffer<float> loss(kRows), dweight(vocab * d);
  Blas blas;
  DeviceBuffer<unsigned char> workspace(
      linear_cross_entropy_workspace_bytes(kRows, vocab, DType::f32, 1));
  LinearCrossEntropyOutputs<float> out;
  out.loss = loss.vector();
  out.dhidden = dhidden.view();
  out.dweight = MatrixView<float>(dweight.data(), vocab, d);
  LinearCrossEntropyOptions options;
  options.cross_entropy.reduction = CrossEntropyReduction::none;
  options.chunk_rows = 1;
  linear_cross_entropy(blas, hidden.cview(), MatrixView<const float>(d_weight.data(), vocab, d),
                       VectorView<const float>{}, d_targets.vector(), out,
                       Workspace{workspace.data(), workspace.size()}, options);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<double> h64(hh.begin(), hh.end()), w64(hw.begin(), hw.end());
  std::vector<double> row_loss(kRows), want_dh(kRows * d), want_dw(vocab * d);
  ref::LinearCrossEntropyGrads grads;
  grads.dhidden = MatrixView<double>(want_dh.data(), kRows, d);
  grads.dweight = MatrixView<double>(want_dw.data(), vocab, d);
  ref::linear_cross_entropy(MatrixView<const double>(h64.data(), kRows, d),
                            MatrixView<const double>(w64.data(), vocab, d), {},
                            VectorView<const std::int64_t>(targets.data(), kRows), {}, 1.0,
                            VectorView<double>(row_loss.data(), kRows), grads);
  expect_close(loss.to_host(), std::vector<float>(row_loss.begin(), row_loss.end()), 1e-4,
               "linear + CE loss");
  expect_close(dhidden.get(), std::vector<float>(want_dh.begin(), want_dh.end()), 1e-4,
               "linear + CE dhidden");
  expect_close(dweight.to_host(), std::vector<float>(want_dw.begin(), want_dw.end()), 1e-4,
               "linear + CE dweight");
}

#if !defined(WARPFUSE_SIMT)
/// PyTorch issue 90793: cross-entropy over 18423 x 131072 bf16 logits (2.4 G elements, rows past
/// 2^31 elements from row 16385 on) ended in an illegal memory access. In place, mean reduction;
/// rows 0, 16384, 16385 and 18422 checked against the reference (every row is computed). GPU only
/// (the emulator would take hours over 2.4 G elements; the far-row tests above cover the same
/// offsets there).
TEST_F(LargeOffsets, PyTorch90793ShapeOnTheGpu) {
  const std::int64_t rows = 18423, cols = 131072;
  const std::size_t elements = static_cast<std::size_t>(rows * cols);
  __nv_bfloat16* data = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&data), elements * sizeof(__nv_bfloat16)) !=
      cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    GTEST_SKIP() << "not enough device memory for 4.5 GiB of logits";
  }
  const std::int64_t sampled[] = {0, 16384, 16385, rows - 1};
  std::vector<std::vector<__nv_bfloat16>> host_rows;
  ASSERT_EQ(cudaMemset(data, 0, elements * sizeof(__nv_bfloat16)), cudaSuccess);
  for (std::int64_t r : sampled) {
    host_rows.push_back(test::random_values<__nv_bfloat16>(cols, 53 + r, -5.0, 5.0));
    ASSERT_EQ(
        cudaMemcpy(data + r * cols, host_rows.back().data(), cols * 2, cudaMemcpyHostToDevice),
        cudaSuccess);
  }
  std::vector<std::int32_t> targets(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) targets[r] = static_cast<std::int32_t>((r * 7919) % cols);
  DeviceBuffer<std::int32_t> d_targets = to_device(targets);
  DeviceBuffer<float> loss(static_cast<std::size_t>(rows));
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(rows));
  CrossEntropyOptions options;
  options.reduction = CrossEntropyReduction::none;
  CrossEntropyOutputs<__nv_bfloat16> out;
  out.loss = loss.vector();
  out.dlogits = MatrixView<__nv_bfloat16>(data, rows, cols);
  cross_entropy<__nv_bfloat16>(MatrixView<const __nv_bfloat16>(data, rows, cols),
                               d_targets.vector(), out,
                               Workspace{workspace.data(), workspace.size()}, options);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> got_loss = loss.to_host();
  for (std::size_t i = 0; i < host_rows.size(); ++i) {
    const std::int64_t r = sampled[i];
    SCOPED_TRACE("row " + std::to_string(r));
    std::vector<double> z(host_rows[i].size());
    for (std::size_t k = 0; k < z.size(); ++k) z[k] = test::to_double(host_rows[i][k]);
    const std::int64_t target = targets[r];
    double row_loss = 0.0;
    std::vector<double> grad(z.size());
    ref::cross_entropy(
        MatrixView<const double>(z.data(), 1, cols), VectorView<const std::int64_t>(&target, 1), {},
        VectorView<double>(&row_loss, 1), {}, MatrixView<double>(grad.data(), 1, cols));
    EXPECT_NEAR(got_loss[r], row_loss, 1e-3 * (1.0 + row_loss));
    std::vector<__nv_bfloat16> got(static_cast<std::size_t>(cols));
    ASSERT_EQ(cudaMemcpy(got.data(), data + r * cols, cols * 2, cudaMemcpyDeviceToHost),
              cudaSuccess);
    int bad = 0;
    for (std::int64_t k = 0; k < cols; ++k) {
      const double g = test::to_double(got[k]);
      if (!(std::fabs(g - grad[k]) <= 1e-3 + 1.6e-2 * std::fabs(grad[k])) && ++bad <= 3) {
        ADD_FAILURE() << "dlogits[" << r << ", " << k << "] = " << g << ", want " << grad[k];
      }
    }
  }
  // A zero row (every other row): loss log(131072), the uniform gradient.
  EXPECT_NEAR(got_loss[1], std::log(131072.0), 1e-3);
  static_cast<void>(cudaFree(data));
}
#endif

}  // namespace
}  // namespace warpfuse
