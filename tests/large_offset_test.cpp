// Rows past 2^31 elements (#16 item 5): three rows with a leading dimension of 2^30 + 7, so the
// last row starts at element 2^31 + 14, through softmax, log_softmax, their backwards,
// cross-entropy (index targets, gradient in place), an activation (gelu) and an elementwise loss
// (mse, per-element loss and gradient), checked row by row against the reference.
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
#include "warpfuse/elementwise_loss.h"
#include "warpfuse/ref/activation.h"
#include "warpfuse/ref/cross_entropy.h"
#include "warpfuse/ref/elementwise_loss.h"
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
    if (cudaMalloc(&data_, bytes) != cudaSuccess) {
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

}  // namespace
}  // namespace warpfuse
