// Tests of the training bookkeeping ops (include/warpfuse/training.h: accumulate_metrics,
// reset_training_totals, gather_rows) against the CPU reference (include/warpfuse/ref/training.h),
// for every accuracy kind, dtype and label type, batches spanning several blocks, strided
// outputs, NaN and non-finite losses, the device cursor, bad indices, determinism and the
// argument checks. One body, in the emulated and the GPU binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"
#include "warpfuse/ref/training.h"
#include "warpfuse/training.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

TrainingTotals read_totals(const DeviceBuffer<TrainingTotals>& buffer) {
  return buffer.to_host()[0];
}

void expect_totals_near(const TrainingTotals& got, const TrainingTotals& want,
                        const std::string& what) {
  const auto near = [&](double a, double b, const char* name) {
    if (!std::isfinite(b)) {  // NaN meets NaN, an infinity the same infinity
      EXPECT_TRUE(std::isnan(b) ? std::isnan(a) : a == b)
          << what << ": " << name << " = " << a << ", expected " << b;
      return;
    }
    EXPECT_NEAR(a, b, 1e-9 * std::max(1.0, std::fabs(b))) << what << ": " << name;
  };
  near(got.loss_sum, want.loss_sum, "loss_sum");
  EXPECT_EQ(got.samples, want.samples) << what;
  EXPECT_EQ(got.correct, want.correct) << what;  // counts: exact
  EXPECT_EQ(got.accuracy_count, want.accuracy_count) << what;
  near(got.abs_error_sum, want.abs_error_sum, "abs_error_sum");
  near(got.squared_error_sum, want.squared_error_sum, "squared_error_sum");
  EXPECT_EQ(got.elements, want.elements) << what;
  EXPECT_EQ(got.first_nonfinite_step, want.first_nonfinite_step) << what;
  EXPECT_EQ(got.steps, want.steps) << what;
  EXPECT_EQ(got.cursor, want.cursor) << what;
  EXPECT_EQ(got.global_step, want.global_step) << what;
}

template <class T>
class Metrics : public DeviceTest {};
using StorageTypes = ::testing::Types<float, __half, __nv_bfloat16>;
struct StorageNames {
  template <class T>
  static std::string GetName(int) {
    return type_name<T>();
  }
};
TYPED_TEST_SUITE(Metrics, StorageTypes, StorageNames);

/// Several batches of every accuracy kind (with errors and advancing) into one totals struct,
/// against the reference; rows across several partial blocks, strided outputs, int32 and int64
/// labels, and one NaN output row.
template <class T, class L>
void check_every_kind() {
  for (AccuracyKind kind : {AccuracyKind::none, AccuracyKind::argmax_index,
                            AccuracyKind::argmax_onehot, AccuracyKind::threshold}) {
    for (std::int64_t cols : {std::int64_t{1}, std::int64_t{10}, std::int64_t{37}}) {
      DeviceBuffer<TrainingTotals> totals(1);
      reset_training_totals(totals.data(), false);
      TrainingTotals want = empty_training_totals();
      MetricOptions options;
      options.accuracy = kind;
      options.errors = kind != AccuracyKind::argmax_index;
      options.advance = true;
      options.threshold = 0.1f;
      std::uint64_t seed = 700 + static_cast<std::uint64_t>(kind) * 10 + cols;
      for (std::int64_t rows :
           {std::int64_t{3000}, std::int64_t{1}, std::int64_t{0}, std::int64_t{1025}}) {
        const std::int64_t ld = cols + 3;
        std::vector<T> out = random_values<T>(static_cast<std::size_t>(rows * ld + 1), seed++);
        std::vector<T> target =
            random_values<T>(static_cast<std::size_t>(rows * cols + 1), seed++, 0.0, 1.0);
        std::vector<L> labels = random_values<L>(static_cast<std::size_t>(rows + 1), seed++, 0,
                                                 static_cast<double>(cols - 1));
        if (rows > 7) out[7 * ld] = from_double<T>(std::nan(""));  // a NaN leading row 7
        const float loss = rows == 1 ? std::numeric_limits<float>::infinity() : 0.25f;
        auto d_out = to_device(out);
        auto d_target = to_device(target);
        auto d_labels = to_device(labels);
        auto d_loss = to_device(std::vector<float>{loss});
        DeviceBuffer<unsigned char> workspace(metrics_workspace_bytes(rows));
        MetricInputs<T, L> inputs;
        inputs.outputs = MatrixView<const T>(d_out.data(), rows, cols, ld);
        inputs.targets = MatrixView<const T>(d_target.data(), rows, cols, cols);
        inputs.labels = VectorView<const L>(d_labels.data(), rows);
        inputs.batch_loss = d_loss.data();
        accumulate_metrics(inputs, options, totals.data(),
                           Workspace{workspace.data(), workspace.size()});
        const std::vector<double> out_d = to_double(out), target_d = to_double(target);
        const double loss_d = loss;
        ref::accumulate_metrics<double, L>(MatrixView<const double>(out_d.data(), rows, cols, ld),
                                           MatrixView<const double>(target_d.data(), rows, cols),
                                           VectorView<const L>(labels.data(), rows), &loss_d,
                                           options, want);
      }
      expect_totals_near(
          read_totals(totals), want,
          "kind " + std::to_string(static_cast<int>(kind)) + " cols " + std::to_string(cols));
      EXPECT_EQ(want.first_nonfinite_step, 1);  // the second batch's loss was infinite
      EXPECT_EQ(want.cursor, 3000 + 1 + 0 + 1025);
    }
  }
}

TYPED_TEST(Metrics, EveryAccuracyKindMatchesTheReference) {
  check_every_kind<TypeParam, std::int32_t>();
  check_every_kind<TypeParam, std::int64_t>();
}

TYPED_TEST(Metrics, ResetKeepsTheGlobalStepWhenAsked) {
  using T = TypeParam;
  DeviceBuffer<TrainingTotals> totals(1);
  reset_training_totals(totals.data(), false);
  const std::vector<T> out = random_values<T>(40, 1);
  auto d_out = to_device(out);
  DeviceBuffer<unsigned char> workspace(metrics_workspace_bytes(4));
  MetricInputs<T> inputs;
  inputs.outputs = MatrixView<const T>(d_out.data(), 4, 10);
  MetricOptions options;
  options.advance = true;
  for (int i = 0; i < 3; ++i) {
    accumulate_metrics(inputs, options, totals.data(),
                       Workspace{workspace.data(), workspace.size()});
  }
  reset_training_totals(totals.data(), true);
  TrainingTotals t = read_totals(totals);
  EXPECT_EQ(t.global_step, 3);
  EXPECT_EQ(t.steps, 0);
  EXPECT_EQ(t.cursor, 0);
  EXPECT_EQ(t.samples, 0.0);
  EXPECT_EQ(t.first_nonfinite_step, -1);
  reset_training_totals(totals.data(), false);
  EXPECT_EQ(read_totals(totals).global_step, 0);
}

TYPED_TEST(Metrics, BitwiseReproducibleUnderEverySchedule) {
  using T = TypeParam;
  const std::int64_t rows = 2500, cols = 13;
  const std::vector<T> out = random_values<T>(static_cast<std::size_t>(rows * cols), 2);
  const std::vector<T> target = random_values<T>(static_cast<std::size_t>(rows * cols), 3);
  auto d_out = to_device(out);
  auto d_target = to_device(target);
  DeviceBuffer<unsigned char> workspace(metrics_workspace_bytes(rows));
  std::vector<TrainingTotals> seen;
  for_each_schedule([&](const std::string&) {
    DeviceBuffer<TrainingTotals> totals(1);
    reset_training_totals(totals.data(), false);
    MetricInputs<T> inputs;
    inputs.outputs = MatrixView<const T>(d_out.data(), rows, cols);
    inputs.targets = MatrixView<const T>(d_target.data(), rows, cols);
    MetricOptions options;
    options.errors = true;
    accumulate_metrics(inputs, options, totals.data(),
                       Workspace{workspace.data(), workspace.size()});
    seen.push_back(read_totals(totals));
  });
  for (const TrainingTotals& t : seen) {
    EXPECT_EQ(std::memcmp(&t, &seen.front(), sizeof t), 0);
  }
}

class TrainingErrors : public DeviceTest {};

TEST_F(TrainingErrors, MetricArgumentsAreCheckedAndNamed) {
  DeviceBuffer<float> out(40), target(40);
  DeviceBuffer<std::int32_t> labels(4);
  DeviceBuffer<TrainingTotals> totals(1);
  DeviceBuffer<unsigned char> workspace(metrics_workspace_bytes(4));
  const Workspace ws{workspace.data(), workspace.size()};
  MetricInputs<float> inputs;
  inputs.outputs = MatrixView<const float>(out.data(), 4, 10);
  MetricOptions onehot;
  onehot.accuracy = AccuracyKind::argmax_onehot;
  expect_invalid([&] { accumulate_metrics(inputs, onehot, totals.data(), ws); },
                 "accumulate_metrics", "inputs.targets");
  MetricOptions sparse;
  sparse.accuracy = AccuracyKind::argmax_index;
  inputs.labels = VectorView<const std::int32_t>(labels.data(), 3);
  EXPECT_THAT(expect_invalid([&] { accumulate_metrics(inputs, sparse, totals.data(), ws); },
                             "accumulate_metrics", "inputs.labels"),
              HasSubstr("4 labels"));
  expect_invalid([&] { accumulate_metrics(inputs, MetricOptions{}, nullptr, ws); },
                 "accumulate_metrics", "totals");
  expect_invalid([&] { accumulate_metrics(inputs, MetricOptions{}, totals.data(), Workspace{}); },
                 "accumulate_metrics", "workspace");
  MetricOptions bad;
  bad.threshold = std::nanf("");
  expect_invalid([&] { accumulate_metrics(inputs, bad, totals.data(), ws); }, "accumulate_metrics",
                 "options.threshold");
  // The totals inside the workspace.
  expect_invalid(
      [&] {
        accumulate_metrics(inputs, MetricOptions{},
                           reinterpret_cast<TrainingTotals*>(workspace.data()), ws);
      },
      "accumulate_metrics", "totals");
  expect_invalid([&] { reset_training_totals(nullptr, true); }, "reset_training_totals", "totals");
}

// --- gather_rows ----------------------------------------------------------------------------

template <class T>
class Gather : public DeviceTest {};
using GatherTypes = ::testing::Types<float, __half, __nv_bfloat16, std::int32_t, std::int64_t>;
TYPED_TEST_SUITE(Gather, GatherTypes, StorageNames);

/// The reference's copy for T: the test compares bytes, so double stands in for the 16-bit types
/// only through their bit patterns; gather is a copy, so compare raw rows.
template <class T>
std::vector<T> expected_gather(const std::vector<T>& src, std::int64_t src_rows, std::int64_t cols,
                               std::int64_t src_ld, const std::vector<std::int64_t>& indices,
                               std::int64_t offset, std::int64_t dst_rows, std::int64_t dst_ld,
                               const std::vector<T>& dst_before) {
  std::vector<T> dst = dst_before;
  for (std::int64_t i = 0; i < dst_rows; ++i) {
    const std::int64_t position = offset + i;
    const std::int64_t source =
        position >= 0 && position < static_cast<std::int64_t>(indices.size()) ? indices[position]
                                                                              : -1;
    T* row = dst.data() + i * dst_ld;
    if (source >= 0 && source < src_rows) {
      std::memcpy(static_cast<void*>(row), src.data() + source * src_ld, cols * sizeof(T));
    } else {
      std::memset(static_cast<void*>(row), 0xFF, cols * sizeof(T));
    }
  }
  return dst;
}

TYPED_TEST(Gather, RowsByIndexAtADeviceOffset) {
  using T = TypeParam;
  // (cols, ld): 16-byte rows (the word path for every T at cols 16) and unaligned strided rows.
  for (const auto& [cols, ld] : {std::pair<std::int64_t, std::int64_t>{16, 16}, {5, 7}, {1, 1}}) {
    const std::int64_t src_rows = 50, dst_rows = 9;
    const std::vector<T> src =
        random_values<T>(static_cast<std::size_t>(src_rows * ld), 11 + cols, 0, 100);
    std::vector<std::int64_t> indices = {3, 49, 0, 17, 17, 60, -2, 8, 22, 5, 1};  // 60, -2 bad
    auto d_src = to_device(src);
    auto d_indices = to_device(indices);
    const std::vector<T> before = poisoned_host<T>(static_cast<std::size_t>(dst_rows * ld));
    for (std::int64_t offset : {std::int64_t{0}, std::int64_t{4}}) {  // 4: runs past the end
      DeviceBuffer<T> dst = poisoned_buffer<T>(before.size());
      auto d_offset = to_device(std::vector<std::int64_t>{offset});
      gather_rows<T>(MatrixView<const T>(d_src.data(), src_rows, cols, ld),
                     VectorView<const std::int64_t>(d_indices.data(),
                                                    static_cast<std::int64_t>(indices.size())),
                     d_offset.data(), MatrixView<T>(dst.data(), dst_rows, cols, ld));
      const std::vector<T> want =
          expected_gather(src, src_rows, cols, ld, indices, offset, dst_rows, ld, before);
      const std::vector<T> got = dst.to_host();
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(T)), 0)
          << "cols " << cols << " ld " << ld << " offset " << offset;
      // The reference agrees (for the types it is instantiated for).
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, std::int32_t> ||
                    std::is_same_v<T, std::int64_t>) {
        std::vector<T> ref_dst = before;
        ref::gather_rows<T>(MatrixView<const T>(src.data(), src_rows, cols, ld),
                            VectorView<const std::int64_t>(
                                indices.data(), static_cast<std::int64_t>(indices.size())),
                            offset, MatrixView<T>(ref_dst.data(), dst_rows, cols, ld));
        EXPECT_EQ(std::memcmp(ref_dst.data(), want.data(), want.size() * sizeof(T)), 0);
      }
    }
  }
}

TEST_F(TrainingErrors, GatherArgumentsAreCheckedAndNamed) {
  DeviceBuffer<float> src(40), dst(40);
  DeviceBuffer<std::int64_t> indices(4);
  const VectorView<const std::int64_t> index_view(indices.data(), 4);
  expect_invalid(
      [&] {
        gather_rows<float>(MatrixView<const float>(src.data(), 4, 10), index_view, nullptr,
                           MatrixView<float>(dst.data(), 4, 9));
      },
      "gather_rows", "dst");
  expect_invalid(
      [&] {
        gather_rows<float>(MatrixView<const float>(src.data(), 4, 10), index_view, nullptr,
                           MatrixView<float>(src.data() + 5, 2, 10));
      },
      "gather_rows", "dst");
  expect_invalid(
      [&] {
        gather_rows<float>(MatrixView<const float>(src.data(), 4, 10),
                           VectorView<const std::int64_t>(nullptr, 3), nullptr,
                           MatrixView<float>(dst.data(), 4, 10));
      },
      "gather_rows", "indices");
}

}  // namespace
}  // namespace warpfuse::test
