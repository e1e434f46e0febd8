// Tests of the fused cross-entropy (include/warpfuse/cross_entropy.h) against the double
// reference. One body, in the emulated and the GPU binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/ref/cross_entropy.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

/// One cross-entropy case.
struct CeCase {
  std::int64_t rows;
  std::int64_t classes;
  SoftmaxStrategy strategy = SoftmaxStrategy::automatic;
  CrossEntropyReduction reduction = CrossEntropyReduction::mean;
  float smoothing = 0.0f;
  float z_loss = 0.0f;
  bool weights = false;
  bool probabilities = false;  // probability targets instead of class indices
  int ignored_every = 0;       // every n-th row (n > 0) gets ignore_index
  bool gradient = true;
  bool in_place = false;    // dlogits == logits
  std::int64_t ld_pad = 0;  // extra elements per row
  float grad_scale = 1.0f;
  float softcap = 0.0f;         // options.logit_softcap
  float logit_scale = 1.0f;     // options.logit_scale
  bool extras = false;          // z_loss_term, correct (index targets) and entropy outputs
  bool argmax_targets = false;  // odd rows target their first maximum, even rows a later tie

  std::string name() const {
    return std::to_string(rows) + "x" + std::to_string(classes) + " " + to_string(strategy) + " " +
           to_string(reduction) + " smoothing " + std::to_string(smoothing) + " z " +
           std::to_string(z_loss) + (weights ? " weighted" : "") +
           (probabilities ? " probabilities" : " indices") +
           (ignored_every ? " ignore/" + std::to_string(ignored_every) : "") +
           (gradient ? "" : " no-grad") + (in_place ? " in-place" : "") + " ld+" +
           std::to_string(ld_pad) + " cap " + std::to_string(softcap) + " scale " +
           std::to_string(logit_scale) + (extras ? " extras" : "") +
           (argmax_targets ? " argmax-targets" : "");
  }
};

/// Device memory for a workspace sized for `rows`.
struct ScratchBuffer {
  explicit ScratchBuffer(std::int64_t rows) : buffer(cross_entropy_workspace_bytes(rows)) {}
  Workspace get() { return Workspace{buffer.data(), buffer.size()}; }
  DeviceBuffer<unsigned char> buffer;
};

template <class T, class Index>
void check_ce(const CeCase& c, std::uint64_t seed) {
  SCOPED_TRACE(c.name() + " " + type_name<T>() + " " + type_name<Index>());
  const std::int64_t ld = c.classes + c.ld_pad;
  const std::size_t span = static_cast<std::size_t>(c.rows * ld);
  const std::vector<T> logits_host = random_values<T>(span, seed, -3.0, 3.0);
  std::vector<double> logits(static_cast<std::size_t>(c.rows * c.classes));
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t k = 0; k < c.classes; ++k)
      logits[r * c.classes + k] = to_double(logits_host[r * ld + k]);

  // Targets: row 0 at class 0, row 1 at class C - 1, the rest random; some ignored.
  std::vector<std::int64_t> targets(static_cast<std::size_t>(c.rows));
  const auto draws = random_values<std::int64_t>(targets.size(), seed + 1, 0, c.classes - 1);
  for (std::int64_t r = 0; r < c.rows; ++r) {
    targets[r] = r == 0 ? 0 : (r == 1 ? c.classes - 1 : draws[r]);
    if (c.ignored_every > 0 && r % c.ignored_every == c.ignored_every - 1) targets[r] = -100;
  }
  if (c.argmax_targets) {
    // The first maximum of the raw row (z' keeps the order and the ties), or on even rows the
    // last of a tie at the maximum when there is one (argmax == target is then false).
    for (std::int64_t r = 0; r < c.rows; ++r) {
      const double* row = logits.data() + r * c.classes;
      std::int64_t first = 0, last = 0;
      for (std::int64_t k = 1; k < c.classes; ++k) {
        if (row[k] > row[first])
          first = last = k;
        else if (row[k] == row[first])
          last = k;
      }
      targets[r] = r % 2 == 1 ? first : last;
    }
  }
  std::vector<Index> targets_typed(targets.begin(), targets.end());
  // Soft probability targets: positive draws normalised per row (rounded to T afterwards).
  std::vector<T> probs_host(span, from_double<T>(0.0));
  std::vector<double> probs(logits.size());
  if (c.probabilities) {
    const auto raw = random_values<double>(logits.size(), seed + 2, 0.0, 1.0);
    for (std::int64_t r = 0; r < c.rows; ++r) {
      double total = 0.0;
      for (std::int64_t k = 0; k < c.classes; ++k) total += raw[r * c.classes + k];
      for (std::int64_t k = 0; k < c.classes; ++k) {
        probs_host[r * ld + k] = from_double<T>(raw[r * c.classes + k] / total);
        probs[r * c.classes + k] = to_double(probs_host[r * ld + k]);
      }
    }
  }
  std::vector<float> weight_host;
  std::vector<double> weight;
  if (c.weights) {
    weight_host = random_values<float>(static_cast<std::size_t>(c.classes), seed + 3, 0.5, 2.0);
    weight.assign(weight_host.begin(), weight_host.end());
  }

  DeviceBuffer<T> d_logits = to_device(logits_host);
  DeviceBuffer<Index> d_targets = to_device(targets_typed);
  DeviceBuffer<T> d_probs = to_device(probs_host);
  DeviceBuffer<float> d_weight = to_device(weight_host);
  const std::size_t loss_count = c.reduction == CrossEntropyReduction::none ? c.rows : 1;
  DeviceBuffer<float> d_loss = poisoned_buffer<float>(loss_count);
  DeviceBuffer<float> d_lse = poisoned_buffer<float>(static_cast<std::size_t>(c.rows));
  DeviceBuffer<float> d_z_term = poisoned_buffer<float>(static_cast<std::size_t>(c.rows));
  DeviceBuffer<float> d_correct = poisoned_buffer<float>(static_cast<std::size_t>(c.rows));
  DeviceBuffer<float> d_entropy = poisoned_buffer<float>(static_cast<std::size_t>(c.rows));
  DeviceBuffer<T> d_grad_separate = poisoned_buffer<T>(span);
  DeviceBuffer<T>& d_grad = c.in_place ? d_logits : d_grad_separate;
  ScratchBuffer workspace(c.rows);

  CrossEntropyOptions options = cross_entropy_options_of(c, c.grad_scale);
  CrossEntropyOutputs<T> outputs;
  outputs.loss = VectorView<float>(d_loss.data(), static_cast<std::int64_t>(loss_count));
  outputs.logsumexp = VectorView<float>(d_lse.data(), c.rows);
  if (c.extras) {
    outputs.z_loss_term = VectorView<float>(d_z_term.data(), c.rows);
    if (!c.probabilities) outputs.correct = VectorView<float>(d_correct.data(), c.rows);
    outputs.entropy = VectorView<float>(d_entropy.data(), c.rows);
  }
  if (c.gradient) outputs.dlogits = MatrixView<T>(d_grad.data(), c.rows, c.classes, ld);
  const MatrixView<const T> logits_view(d_logits.data(), c.rows, c.classes, ld);
  const VectorView<const float> weight_view(c.weights ? d_weight.data() : nullptr,
                                            c.weights ? c.classes : 0);
  if (c.probabilities) {
    cross_entropy(logits_view, MatrixView<const T>(d_probs.data(), c.rows, c.classes, ld), outputs,
                  workspace.get(), options, weight_view);
  } else {
    cross_entropy(logits_view, VectorView<const Index>(d_targets.data(), c.rows), outputs,
                  workspace.get(), options, weight_view);
  }
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(read_loss_status(workspace.get()).bad_rows, 0);

  // Reference.
  ref::CrossEntropyParams params;
  params.label_smoothing = c.smoothing;
  params.z_loss = c.z_loss;
  params.weight = c.weights ? weight.data() : nullptr;
  params.logit_softcap = c.softcap;
  params.logit_scale = c.logit_scale;
  std::vector<double> row_loss(c.rows), lse(c.rows), row_grad(logits.size());
  std::vector<double> z_term(c.rows), correct(c.rows), entropy(c.rows);
  ref::CrossEntropyRowExtras extras{
      VectorView<double>(z_term.data(), c.rows),
      c.probabilities ? VectorView<double>() : VectorView<double>(correct.data(), c.rows),
      VectorView<double>(entropy.data(), c.rows)};
  if (c.probabilities) {
    ref::cross_entropy(MatrixView<const double>(logits.data(), c.rows, c.classes),
                       MatrixView<const double>(probs.data(), c.rows, c.classes), params,
                       VectorView<double>(row_loss.data(), c.rows),
                       VectorView<double>(lse.data(), c.rows),
                       MatrixView<double>(row_grad.data(), c.rows, c.classes), extras);
  } else {
    ref::cross_entropy(MatrixView<const double>(logits.data(), c.rows, c.classes),
                       VectorView<const std::int64_t>(targets.data(), c.rows), params,
                       VectorView<double>(row_loss.data(), c.rows),
                       VectorView<double>(lse.data(), c.rows),
                       MatrixView<double>(row_grad.data(), c.rows, c.classes), extras);
  }
  double divisor = 1.0;
  if (c.reduction == CrossEntropyReduction::mean) {
    divisor = c.probabilities
                  ? static_cast<double>(c.rows)
                  : ref::cross_entropy_mean_denominator(
                        VectorView<const std::int64_t>(targets.data(), c.rows), c.classes, params);
  }
  // Loss: fp32 sums over C exponentials and over rows; error grows with both.
  const double loss_rtol = 2e-5 * std::sqrt(static_cast<double>(c.classes) + c.rows);
  std::vector<double> expected_loss;
  double magnitude = 0.0;
  for (double v : row_loss) magnitude += std::fabs(v);
  if (c.reduction == CrossEntropyReduction::none) {
    expected_loss = row_loss;
  } else {
    double total = 0.0;
    for (double v : row_loss) total += v;
    expected_loss = {divisor == 0.0 ? 0.0 : total / divisor};
    magnitude = divisor == 0.0 ? 0.0 : magnitude / divisor;
  }
  EXPECT_TRUE(all_close(
      d_loss.to_host(), expected_loss,
      Tolerance{1e-5 + loss_rtol * (c.reduction == CrossEntropyReduction::none ? 0.0 : magnitude),
                loss_rtol}));
  EXPECT_TRUE(all_close(d_lse.to_host(), lse, Tolerance{1e-5, loss_rtol}));
  if (c.extras) {
    EXPECT_TRUE(all_close(d_z_term.to_host(), z_term, Tolerance{1e-6, 3 * loss_rtol}));
    // The entropy is a difference of two fp32 row sums' logs: absolute error grows with both.
    EXPECT_TRUE(all_close(d_entropy.to_host(), entropy, Tolerance{1e-5 + loss_rtol, loss_rtol}));
    if (!c.probabilities) {
      // Exact: ties in the storage type stay ties in z', distinct values stay ordered.
      const std::vector<float> got = d_correct.to_host();
      std::int64_t hits = 0;
      for (std::int64_t r = 0; r < c.rows; ++r) {
        EXPECT_EQ(got[r], correct[r]) << "correct, row " << r << " target " << targets[r];
        hits += correct[r] == 1.0 ? 1 : 0;
      }
      if (c.argmax_targets && c.rows > 1) {
        EXPECT_GT(hits, 0) << "no row exercised a hit";
      }
    }
  }

  if (!c.gradient) return;
  const double g = c.grad_scale * (divisor == 0.0 ? 0.0 : 1.0 / divisor);
  const std::vector<T> grad_storage = d_grad.to_host();
  std::vector<T> grad_dense(logits.size());
  std::vector<double> expected_grad(logits.size()), term_scale(logits.size());
  for (std::int64_t r = 0; r < c.rows; ++r) {
    for (std::int64_t k = 0; k < c.classes; ++k) {
      const std::size_t i = r * c.classes + k;
      grad_dense[i] = grad_storage[r * ld + k];
      expected_grad[i] = g * row_grad[i];
      // p_c * factor and the target mass cancel near the target: scale by the terms (each times
      // dz'/dz under a softcap or scale).
      const double z_prime = ref::cross_entropy_logit(logits[i], params);
      const double slope = ref::cross_entropy_logit_slope(logits[i], params);
      term_scale[i] = 4.0 * std::fabs(g) *
                      (std::exp(z_prime - lse[r]) * (1.0 + 2.0 * c.z_loss * std::fabs(lse[r])) *
                           (c.weights ? 2.0 : 1.0) * slope +
                       std::fabs(row_grad[i]));
    }
  }
  EXPECT_TRUE(all_close_scaled(grad_dense, rounded_to<T>(expected_grad), term_scale,
                               tolerance_for<T>(), c.classes));
  // The row gaps: poison still there, or (in place) the logits untouched.
  EXPECT_EQ(written_outside(grad_storage, c.in_place ? logits_host : poisoned_host<T>(span), 0,
                            c.rows, c.classes, ld),
            0u)
      << "dlogits elements outside the matrix were written";
}

template <class T>
class CrossEntropy : public DeviceTest {};
using StorageTypes = ::testing::Types<float, __half, __nv_bfloat16>;
TYPED_TEST_SUITE(CrossEntropy, StorageTypes);

std::vector<SoftmaxStrategy> strategies_for(std::int64_t classes, std::size_t element_bytes) {
  std::vector<SoftmaxStrategy> result;
  if (classes <= kSoftmaxWarpMaxCols) result.push_back(SoftmaxStrategy::warp);
  const DType dtype = element_bytes == 4 ? DType::f32 : DType::f16;
  if (classes <= cross_entropy_block_max_cols(dtype)) result.push_back(SoftmaxStrategy::block);
  result.push_back(SoftmaxStrategy::online);
  if (device_info().compute_major >= 9) result.push_back(SoftmaxStrategy::cluster);
  return result;
}

/// Fewer rows for the widest rows under the emulator.
std::int64_t rows_for(std::int64_t classes) {
#if defined(WARPFUSE_SIMT)
  if (classes >= 32000) return 2;
  if (classes >= 1000) return 9;
#endif
  return classes >= 32000 ? 8 : 37;
}

TYPED_TEST(CrossEntropy, EveryClassCountAndStrategyMatchesTheReference) {
  using T = TypeParam;
  std::uint64_t seed = 100;
  for (std::int64_t classes : {1, 2, 10, 1000, 32000, 50257, 131072}) {
    for (SoftmaxStrategy strategy : strategies_for(classes, sizeof(T))) {
      CeCase c{rows_for(classes), classes, strategy};
      check_ce<T, std::int64_t>(c, ++seed);
      c.reduction = CrossEntropyReduction::sum;
      c.smoothing = 0.1f;
      c.weights = true;
      c.ignored_every = 3;
      check_ce<T, std::int32_t>(c, ++seed);
    }
  }
}

/// The shapes the row engine was built for: GPT-2's 50257 vocabulary (rows off 16-byte
/// boundaries) beside the padded 50304, in place and with probability targets; MoE-router rows of
/// 8 and 10 classes (many rows per warp, whole packs; 1M rows on a GPU).
TYPED_TEST(CrossEntropy, VocabularyAndRouterShapes) {
  using T = TypeParam;
  std::uint64_t seed = 900;
#if defined(WARPFUSE_SIMT)
  const std::int64_t vocab_rows = 3, router_rows = 5003;
#else
  const std::int64_t vocab_rows = 41, router_rows = 1 << 20;
#endif
  for (std::int64_t classes : {50257, 50304}) {
    for (SoftmaxStrategy strategy : strategies_for(classes, sizeof(T))) {
      CeCase c{vocab_rows, classes, strategy};
      check_ce<T, std::int64_t>(c, ++seed);
      c.in_place = true;
      c.smoothing = 0.1f;
      check_ce<T, std::int32_t>(c, ++seed);
      const bool block_holds_two =
          classes <=
          cross_entropy_block_max_cols(dtype_of<T>(), CrossEntropyTargets::probabilities);
      if (strategy != SoftmaxStrategy::block || block_holds_two) {
        CeCase p{vocab_rows, classes, strategy, CrossEntropyReduction::sum};
        p.probabilities = true;
        p.ld_pad = 3;
        check_ce<T, std::int32_t>(p, ++seed);
      }
    }
  }
  for (std::int64_t classes : {8, 10}) {
    CeCase c{router_rows, classes};
    c.ignored_every = 7;
    check_ce<T, std::int32_t>(c, ++seed);
    CeCase p{router_rows / 4, classes, SoftmaxStrategy::warp, CrossEntropyReduction::none};
    p.probabilities = true;
    p.in_place = true;
    p.ld_pad = 1;
    check_ce<T, std::int64_t>(p, ++seed);
  }
}

/// The cluster strategy on long vocabularies (fused forward and backward, in place, smoothing,
/// weights, ignored rows, probability targets), every dtype.
TYPED_TEST(CrossEntropy, ClusterLongRows) {
  using T = TypeParam;
  if (device_info().compute_major < 9) GTEST_SKIP() << "no thread-block clusters on this device";
  std::uint64_t seed = 1300;
#if defined(WARPFUSE_SIMT)
  const std::int64_t rows = 2;
#else
  const std::int64_t rows = 19;
#endif
  for (std::int64_t classes : {65536, 100003, 131072, 262144}) {
    CeCase c{rows, classes, SoftmaxStrategy::cluster};
    check_ce<T, std::int64_t>(c, ++seed);
    if (classes > 131072) continue;
    c.in_place = true;
    c.smoothing = 0.1f;
    c.weights = true;
    c.ignored_every = 2;
    c.reduction = CrossEntropyReduction::mean;
    check_ce<T, std::int32_t>(c, ++seed);
    CeCase p{rows, classes, SoftmaxStrategy::cluster, CrossEntropyReduction::sum};
    p.probabilities = true;
    p.ld_pad = 3;
    check_ce<T, std::int32_t>(p, ++seed);
  }
}

TYPED_TEST(CrossEntropy, OptionsReductionsAndLayouts) {
  using T = TypeParam;
  std::uint64_t seed = 500;
  for (std::int64_t classes : {3, 40, 777, 3000}) {
    for (SoftmaxStrategy strategy : strategies_for(classes, sizeof(T))) {
      for (CrossEntropyReduction reduction :
           {CrossEntropyReduction::none, CrossEntropyReduction::mean, CrossEntropyReduction::sum}) {
        CeCase c{23, classes, strategy, reduction};
        c.z_loss = 1e-3f;
        c.grad_scale = 0.5f;
        check_ce<T, std::int64_t>(c, ++seed);
        c.smoothing = 0.2f;
        c.weights = true;
        c.ignored_every = 4;
        c.ld_pad = 5;
        check_ce<T, std::int32_t>(c, ++seed);
        c.probabilities = true;
        c.ignored_every = 0;
        check_ce<T, std::int64_t>(c, ++seed);
        CeCase in_place{11, classes, strategy, reduction};
        in_place.in_place = true;
        in_place.ld_pad = 8;  // keeps 16-byte rows: the vectorised path in place
        check_ce<T, std::int64_t>(in_place, ++seed);
        in_place.gradient = false;
        check_ce<T, std::int64_t>(in_place, ++seed);
      }
    }
  }
}

/// Logit softcap and scale, and the extra per-row outputs, in every strategy: the warp, block
/// (the fp32 exponential cache, which keeps z' under a cap, and for 16-bit rows past its reach the
/// storage-type cache), cluster and online traversals; in place, smoothing, weights, ignored
/// rows, probability targets; targets at the first maximum and at later ties.
TYPED_TEST(CrossEntropy, SoftcapScaleAndExtraOutputs) {
  using T = TypeParam;
  std::uint64_t seed = 2100;
  std::vector<std::int64_t> class_counts = {1, 10, 1000, 5000, 50257};
  if (sizeof(T) == 2) class_counts.push_back(70000);  // block: the storage-type cache
  for (std::int64_t classes : class_counts) {
    for (SoftmaxStrategy strategy : strategies_for(classes, sizeof(T))) {
      const std::int64_t rows = std::min<std::int64_t>(rows_for(classes), 9);
      CeCase c{rows, classes, strategy, CrossEntropyReduction::none};
      c.softcap = 2.5f;  // inputs in [-3, 3]: well into tanh's bend
      c.extras = true;
      c.argmax_targets = true;
      check_ce<T, std::int64_t>(c, ++seed);
      CeCase s{rows, classes, strategy, CrossEntropyReduction::mean};
      s.logit_scale = 0.5f;
      s.z_loss = 1e-3f;
      s.extras = true;
      s.ignored_every = 3;
      check_ce<T, std::int32_t>(s, ++seed);
      CeCase w{rows, classes, strategy, CrossEntropyReduction::sum};
      w.softcap = 30.0f;
      w.logit_scale = 4.0f;
      w.smoothing = 0.1f;
      w.weights = true;
      w.in_place = true;
      w.z_loss = 1e-4f;
      w.extras = true;
      check_ce<T, std::int32_t>(w, ++seed);
      const bool block_holds_two =
          classes <=
          cross_entropy_block_max_cols(dtype_of<T>(), CrossEntropyTargets::probabilities);
      if (strategy != SoftmaxStrategy::block || block_holds_two) {
        CeCase p{rows, classes, strategy, CrossEntropyReduction::none};
        p.probabilities = true;
        p.softcap = 5.0f;
        p.extras = true;
        p.ld_pad = 3;
        check_ce<T, std::int64_t>(p, ++seed);
      }
    }
  }
}

// --- edge semantics ----------------------------------------------------------------------------

class CrossEntropyEdges : public DeviceTest {
 protected:
  // Allocated after DeviceTest::SetUp has skipped the test when there is no device.
  void SetUp() override {
    DeviceTest::SetUp();
    if (!IsSkipped()) workspace_storage_ = std::make_unique<ScratchBuffer>(64);
  }

  /// Runs float cross-entropy with index targets; returns per-row (none) losses and the gradient.
  void run(const std::vector<float>& logits, std::int64_t classes,
           const std::vector<std::int64_t>& targets, CrossEntropyReduction reduction,
           std::vector<float>* loss, std::vector<float>* grad,
           SoftmaxStrategy strategy = SoftmaxStrategy::automatic) {
    const auto rows = static_cast<std::int64_t>(targets.size());
    DeviceBuffer<float> d_logits = to_device(logits);
    DeviceBuffer<std::int64_t> d_targets = to_device(targets);
    DeviceBuffer<float> d_loss =
        poisoned_buffer<float>(reduction == CrossEntropyReduction::none ? targets.size() : 1);
    DeviceBuffer<float> d_grad = poisoned_buffer<float>(logits.size());
    CrossEntropyOptions options;
    options.reduction = reduction;
    options.strategy = strategy;
    CrossEntropyOutputs<float> outputs;
    outputs.loss = d_loss.vector();
    outputs.dlogits = d_grad.view(rows, classes);
    cross_entropy(d_logits.view(rows, classes), d_targets.vector(), outputs, workspace_.get(),
                  options);
    *loss = d_loss.to_host();
    *grad = d_grad.to_host();
  }
  struct WorkspaceRef {
    std::unique_ptr<ScratchBuffer>* owner;
    Workspace get() { return (*owner)->get(); }
  };
  std::unique_ptr<ScratchBuffer> workspace_storage_;
  WorkspaceRef workspace_{&workspace_storage_};
};

TEST_F(CrossEntropyEdges, BadTargetsAreCountedReportedAndHarmless) {
  for (SoftmaxStrategy strategy : {SoftmaxStrategy::warp, SoftmaxStrategy::block,
                                   SoftmaxStrategy::online, SoftmaxStrategy::cluster}) {
    SCOPED_TRACE(to_string(strategy));
    const std::int64_t classes = 5;
    const std::vector<float> logits = random_values<float>(6 * classes, 9, -2.0, 2.0);
    const std::vector<std::int64_t> targets = {1, 7, 0, -1, -100, 4};
    std::vector<float> loss, grad;
    run(logits, classes, targets, CrossEntropyReduction::none, &loss, &grad, strategy);
    const LossStatus status = read_loss_status(workspace_.get());
    EXPECT_EQ(status.bad_rows, 2);
    EXPECT_EQ(status.first_bad_row, 1);
    for (std::int64_t r : {1, 3}) {
      EXPECT_TRUE(std::isnan(loss[r])) << "row " << r;
      for (std::int64_t k = 0; k < classes; ++k) EXPECT_EQ(grad[r * classes + k], 0.0f);
    }
    EXPECT_EQ(loss[4], 0.0f);  // ignored
    for (std::int64_t r : {0, 2, 5}) EXPECT_TRUE(std::isfinite(loss[r]) && loss[r] > 0.0f);
    DeviceBuffer<std::int64_t> d_targets = to_device(targets);
    try {
      check_cross_entropy_targets(workspace_.get(), d_targets.vector(), classes);
      ADD_FAILURE() << "bad targets were not reported";
    } catch (const InvalidArgument& error) {
      EXPECT_THAT(std::string(error.what()),
                  HasSubstr("warpfuse::cross_entropy: argument 'targets': 2 row(s) have a class "
                            "index outside [0, 5) that is not ignore_index; the first is row 1 "
                            "with target 7"));
    }
    // The mean is NaN; later launches with good targets are unaffected and the status clears.
    run(logits, classes, targets, CrossEntropyReduction::mean, &loss, &grad, strategy);
    EXPECT_TRUE(std::isnan(loss[0]));
    const std::vector<std::int64_t> good = {1, 2, 0, 3, 4, 4};
    run(logits, classes, good, CrossEntropyReduction::mean, &loss, &grad, strategy);
    EXPECT_TRUE(std::isfinite(loss[0]));
    EXPECT_EQ(read_loss_status(workspace_.get()).bad_rows, 0);
    DeviceBuffer<std::int64_t> d_good = to_device(good);
    check_cross_entropy_targets(workspace_.get(), d_good.vector(), classes);
  }
}

TEST_F(CrossEntropyEdges, AllRowsIgnoredWithMeanGivesZeroNotNan) {
  const std::vector<float> logits = random_values<float>(3 * 4, 4, -1.0, 1.0);
  std::vector<float> loss, grad;
  run(logits, 4, {-100, -100, -100}, CrossEntropyReduction::mean, &loss, &grad);
  EXPECT_EQ(loss[0], 0.0f);
  for (float g : grad) EXPECT_EQ(g, 0.0f);
}

TEST_F(CrossEntropyEdges, InfinitiesAndHugeLogits) {
  const float inf = std::numeric_limits<float>::infinity();
  for (SoftmaxStrategy strategy : {SoftmaxStrategy::warp, SoftmaxStrategy::block,
                                   SoftmaxStrategy::online, SoftmaxStrategy::cluster}) {
    SCOPED_TRACE(to_string(strategy));
    const std::vector<float> logits = {
        -inf,  1.0f,  2.0f,  0.5f,    // row 0: -inf at the target (0): +inf loss
        -inf,  1.0f,  -inf,  0.5f,    // row 1: -inf elsewhere, target 1: finite
        1e4f,  -1e4f, 1e4f,  0.0f,    // row 2: huge magnitudes, target 3: finite
        -1e4f, -1e4f, -1e4f, -1e4f};  // row 3: all equal and huge negative: log 4
    std::vector<float> loss, grad;
    run(logits, 4, {0, 1, 3, 2}, CrossEntropyReduction::none, &loss, &grad, strategy);
    EXPECT_EQ(loss[0], inf);
    EXPECT_TRUE(std::isfinite(loss[1]));
    EXPECT_NEAR(loss[1], std::log(std::exp(1.0) + std::exp(0.5)) - 1.0, 1e-5);
    EXPECT_NEAR(loss[2], 1e4 + std::log(2.0), 1.0);
    EXPECT_NEAR(loss[3], std::log(4.0), 1e-5);
    for (std::size_t i = 4; i < grad.size(); ++i) EXPECT_TRUE(std::isfinite(grad[i])) << i;
    EXPECT_EQ(grad[4], 0.0f);  // p = 0 at the -inf logit
  }
}

// Past kReduceItemsPerBlock (4096) rows the mean's denominator and the final reduction take two
// stages (first-stage blocks over fixed chunks of rows, kernels/loss.cuh): just past it, and many
// blocks with a short last chunk, with weights and ignored rows in the denominator.
TYPED_TEST(CrossEntropy, ManyRowsTakeTheTwoStageReductions) {
  using T = TypeParam;
  CeCase just_past{4097, 10, SoftmaxStrategy::automatic, CrossEntropyReduction::sum};
  check_ce<T, std::int32_t>(just_past, 700);
  CeCase many{70001, 10, SoftmaxStrategy::automatic, CrossEntropyReduction::mean};
  many.weights = true;
  many.ignored_every = 3;
  check_ce<T, std::int64_t>(many, 701);
  many.probabilities = true;
  many.ignored_every = 0;
  many.rows = 9000;
  check_ce<T, std::int64_t>(many, 702);
}

TYPED_TEST(CrossEntropy, MeanLossIsBitwiseReproducible) {
  using T = TypeParam;
  // 96 x 1500: one-stage reductions; 5000 x 40: the mean's denominator and the loss both take
  // the two-stage reductions.
  for (const auto& [rows, classes] :
       {std::pair<std::int64_t, std::int64_t>{96, 1500}, {5000, 40}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(classes));
    DeviceBuffer<T> logits = to_device(random_values<T>(rows * classes, 77, -4.0, 4.0));
    DeviceBuffer<std::int32_t> targets =
        to_device(random_values<std::int32_t>(rows, 78, 0, classes - 1));
    DeviceBuffer<float> loss(1);
    DeviceBuffer<T> grad(rows * classes);
    ScratchBuffer workspace(rows);
    std::vector<float> first;
    std::vector<T> first_grad;
    for_each_schedule([&](const std::string& schedule) {
      for (int repeat = 0; repeat < 2; ++repeat) {
        CrossEntropyOutputs<T> outputs;
        outputs.loss = VectorView<float>(loss.data(), 1);
        outputs.dlogits = grad.view(rows, classes);
        CrossEntropyOptions options;
        options.label_smoothing = 0.05f;
        cross_entropy(logits.view(rows, classes), targets.vector(), outputs, workspace.get(),
                      options);
        if (first.empty()) {
          first = loss.to_host();
          first_grad = grad.to_host();
        } else {
          EXPECT_TRUE(bitwise_equal(loss.to_host(), first)) << schedule;
          EXPECT_TRUE(bitwise_equal(grad.to_host(), first_grad)) << schedule;
        }
      }
    });
  }
}

// --- bad arguments -------------------------------------------------------------------------------

TEST_F(CrossEntropyEdges, BadArgumentsAreTypedErrors) {
  DeviceBuffer<float> logits(40);
  DeviceBuffer<std::int64_t> targets(4);
  DeviceBuffer<float> loss(4);
  DeviceBuffer<float> weight(10);
  CrossEntropyOutputs<float> outputs;
  outputs.loss = VectorView<float>(loss.data(), 1);
  const auto message = [](auto&& body) { return error_message(body); };
  const auto x = logits.view(4, 10);
  EXPECT_THAT(message([&] {
                cross_entropy(x, VectorView<const std::int64_t>(targets.data(), 3), outputs,
                              workspace_.get());
              }),
              HasSubstr("argument 'targets': size = 3 but logits have 4 rows"));
  EXPECT_THAT(message([&] {
                cross_entropy(x, targets.vector(), outputs, workspace_.get(), {},
                              VectorView<const float>(weight.data(), 9));
              }),
              HasSubstr("argument 'weight': size = 9 but logits have 10 classes"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = outputs;
                bad.dlogits = logits.view(4, 9);
                cross_entropy(x, targets.vector(), bad, workspace_.get());
              }),
              HasSubstr("argument 'outputs.dlogits': shape 4 x 9 does not match"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad;
                cross_entropy(x, targets.vector(), bad, workspace_.get());
              }),
              HasSubstr("argument 'outputs.loss': size = 0 is not the 1 that reduction mean "
                        "writes for 4 rows"));
  EXPECT_THAT(message([&] {
                CrossEntropyOptions options;
                options.reduction = CrossEntropyReduction::none;
                cross_entropy(x, targets.vector(), outputs, workspace_.get(), options);
              }),
              HasSubstr("argument 'outputs.loss': size = 1 is not the 4 that reduction none"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = outputs;
                bad.logsumexp = VectorView<float>(loss.data() + 1, 3);
                cross_entropy(x, targets.vector(), bad, workspace_.get());
              }),
              HasSubstr("argument 'outputs.logsumexp': size = 3 but logits have 4 rows"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = outputs;
                bad.logsumexp = loss.vector();
                cross_entropy(x, targets.vector(), bad, workspace_.get());
              }),
              HasSubstr("argument 'outputs.loss': overlaps 'outputs.logsumexp'"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = outputs;
                bad.loss = VectorView<float>(logits.data() + 3, 1);
                cross_entropy(x, targets.vector(), bad, workspace_.get());
              }),
              HasSubstr("argument 'outputs.loss': overlaps 'logits'"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = outputs;
                bad.loss = VectorView<float>(weight.data(), 1);
                cross_entropy(x, targets.vector(), bad, workspace_.get(), {}, weight.vector());
              }),
              HasSubstr("argument 'outputs.loss': overlaps 'weight'"));
  EXPECT_THAT(message([&] {
                cross_entropy(x, targets.vector(), outputs, Workspace{nullptr, 0});
              }),
              HasSubstr("argument 'workspace'"));
  EXPECT_THAT(message([&] {
                CrossEntropyOptions options;
                options.label_smoothing = 1.0f;
                cross_entropy(x, targets.vector(), outputs, workspace_.get(), options);
              }),
              HasSubstr("'options.label_smoothing'"));
  EXPECT_THAT(message([&] {
                CrossEntropyOptions options;
                options.reduction = static_cast<CrossEntropyReduction>(3);
                cross_entropy(x, targets.vector(), outputs, workspace_.get(), options);
              }),
              HasSubstr("'options.reduction': reduction = 3 is not a CrossEntropyReduction"));
  EXPECT_THAT(message([&] { cross_entropy(x, logits.view(4, 9), outputs, workspace_.get()); }),
              HasSubstr("argument 'target_probabilities': shape 4 x 9"));
  EXPECT_THAT(message([&] {
                cross_entropy(MatrixView<const float>(logits.data(), 4, 0), targets.vector(),
                              outputs, workspace_.get());
              }),
              HasSubstr("at least one class"));
  for (const float cap :
       {-1.0f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    EXPECT_THAT(message([&] {
                  CrossEntropyOptions options;
                  options.logit_softcap = cap;
                  cross_entropy(x, targets.vector(), outputs, workspace_.get(), options);
                }),
                HasSubstr("argument 'options.logit_softcap'"));
  }
  for (const float scale : {0.0f, -2.0f, std::numeric_limits<float>::infinity()}) {
    EXPECT_THAT(message([&] {
                  CrossEntropyOptions options;
                  options.logit_scale = scale;
                  cross_entropy(x, targets.vector(), outputs, workspace_.get(), options);
                }),
                HasSubstr("argument 'options.logit_scale'"));
  }
  DeviceBuffer<float> extra(8);
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = outputs;
                bad.entropy = VectorView<float>(extra.data(), 5);
                cross_entropy(x, targets.vector(), bad, workspace_.get());
              }),
              HasSubstr("argument 'outputs.entropy': size = 5 but logits have 4 rows"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = outputs;
                bad.z_loss_term = VectorView<float>(extra.data(), 4);
                bad.correct = VectorView<float>(extra.data() + 2, 4);
                cross_entropy(x, targets.vector(), bad, workspace_.get());
              }),
              HasSubstr("argument 'outputs.z_loss_term': overlaps 'outputs.correct'"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = outputs;
                bad.correct = VectorView<float>(extra.data(), 4);
                cross_entropy(x, logits.view(4, 10), bad, workspace_.get());
              }),
              HasSubstr("argument 'outputs.correct': argmax == target needs class-index targets"));
}

}  // namespace
}  // namespace warpfuse::test
