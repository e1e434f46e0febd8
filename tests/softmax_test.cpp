// Tests of softmax, log_softmax and their backwards (include/warpfuse/softmax.h) against the
// double-precision reference. One body, in the emulated and the GPU binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"
#include "warpfuse/ref/softmax.h"
#include "warpfuse/softmax.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

enum class Op { softmax, log_softmax, softmax_backward, log_softmax_backward };

const char* op_name(Op op) {
  switch (op) {
    case Op::softmax:
      return "softmax";
    case Op::log_softmax:
      return "log_softmax";
    case Op::softmax_backward:
      return "softmax_backward";
    case Op::log_softmax_backward:
      return "log_softmax_backward";
  }
  return "?";
}

bool is_backward(Op op) {
  return op == Op::softmax_backward || op == Op::log_softmax_backward;
}

/// One case: the matrix shape, its layout in memory and the options.
struct Case {
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld;      // row stride of every matrix in the case
  std::int64_t offset;  // elements between the allocation's start and the matrix
  float scale = 1.0f;
  SoftmaxStrategy strategy = SoftmaxStrategy::automatic;
  bool in_place = false;  // forward: y = x; backward: dx = dy

  std::string name() const {
    return std::to_string(rows) + "x" + std::to_string(cols) + " ld " + std::to_string(ld) +
           " offset " + std::to_string(offset) + " scale " + std::to_string(scale) + " " +
           to_string(strategy) + (in_place ? " in place" : "");
  }
  std::int64_t span() const { return offset + (rows == 0 ? 0 : (rows - 1) * ld + cols) + 5; }
  std::size_t at(std::int64_t row, std::int64_t col) const {
    return static_cast<std::size_t>(offset + row * ld + col);
  }
};

/// A matrix laid out as `c` says, filled with seeded random values everywhere (the gaps between
/// rows included, so a kernel reading them would produce garbage).
template <class T>
std::vector<T> random_matrix(const Case& c, std::uint64_t seed, double low, double high) {
  return random_values<T>(static_cast<std::size_t>(c.span()), seed, low, high);
}

/// The matrix's elements, as doubles, packed densely (rows x cols).
template <class T>
std::vector<double> dense(const std::vector<T>& storage, const Case& c) {
  std::vector<double> out(static_cast<std::size_t>(c.rows * c.cols));
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t col = 0; col < c.cols; ++col)
      out[r * c.cols + col] = to_double(storage[c.at(r, col)]);
  return out;
}

template <class T>
MatrixView<T> view_of(DeviceBuffer<T>& buffer, const Case& c) {
  return MatrixView<T>(buffer.data() + c.offset, c.rows, c.cols, c.ld);
}

template <class T>
void call(Op op, const Case& c, DeviceBuffer<T>& a, DeviceBuffer<T>& b, DeviceBuffer<T>& out) {
  const SoftmaxOptions options{c.scale, c.strategy};
  switch (op) {
    case Op::softmax:
      softmax(view_of(a, c), view_of(out, c), options);
      break;
    case Op::log_softmax:
      log_softmax(view_of(a, c), view_of(out, c), options);
      break;
    case Op::softmax_backward:
      softmax_backward(view_of(a, c), view_of(b, c), view_of(out, c), options);
      break;
    case Op::log_softmax_backward:
      log_softmax_backward(view_of(a, c), view_of(b, c), view_of(out, c), options);
      break;
  }
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
}

/// Runs `op` on the case and checks every element of the output allocation: the matrix against the
/// reference, everything around it untouched.
template <class T>
void check_case(Op op, const Case& c, std::uint64_t seed) {
  SCOPED_TRACE(std::string(op_name(op)) + " " + c.name());
  const std::size_t span = static_cast<std::size_t>(c.span());
  // Forward: a = x. Backward: a = y, a genuine (log-)softmax output of the rounded storage type,
  // and b = dy.
  std::vector<T> a_host = random_matrix<T>(c, seed, -4.0, 4.0);
  std::vector<T> b_host = random_matrix<T>(c, seed + 1, -1.0, 1.0);
  if (is_backward(op)) {
    std::vector<double> x = dense(a_host, c), y(x.size());
    if (op == Op::softmax_backward) {
      ref::softmax(MatrixView<const double>(x.data(), c.rows, c.cols, c.cols),
                   MatrixView<double>(y.data(), c.rows, c.cols, c.cols), c.scale);
    } else {
      ref::log_softmax(MatrixView<const double>(x.data(), c.rows, c.cols, c.cols),
                       MatrixView<double>(y.data(), c.rows, c.cols, c.cols), c.scale);
    }
    for (std::int64_t r = 0; r < c.rows; ++r)
      for (std::int64_t col = 0; col < c.cols; ++col)
        a_host[c.at(r, col)] = from_double<T>(y[r * c.cols + col]);
  }
  DeviceBuffer<T> a = to_device(a_host);
  DeviceBuffer<T> b = to_device(b_host);
  DeviceBuffer<T> separate_out = poisoned_buffer<T>(span);
  DeviceBuffer<T>& out = !c.in_place ? separate_out : (is_backward(op) ? b : a);
  call(op, c, a, b, out);
  const std::vector<T> got = out.to_host();

  // The reference, from the very values the device saw.
  const std::vector<double> a_dense = dense(a_host, c), b_dense = dense(b_host, c);
  std::vector<double> expected(a_dense.size()), term_scale(a_dense.size(), 0.0);
  switch (op) {
    case Op::softmax:
      ref::softmax(MatrixView<const double>(a_dense.data(), c.rows, c.cols, c.cols),
                   MatrixView<double>(expected.data(), c.rows, c.cols, c.cols), c.scale);
      break;
    case Op::log_softmax:
      ref::log_softmax(MatrixView<const double>(a_dense.data(), c.rows, c.cols, c.cols),
                       MatrixView<double>(expected.data(), c.rows, c.cols, c.cols), c.scale);
      break;
    case Op::softmax_backward:
    case Op::log_softmax_backward: {
      if (op == Op::softmax_backward) {
        ref::softmax_backward(MatrixView<const double>(a_dense.data(), c.rows, c.cols, c.cols),
                              MatrixView<const double>(b_dense.data(), c.rows, c.cols, c.cols),
                              MatrixView<double>(expected.data(), c.rows, c.cols, c.cols), c.scale);
      } else {
        ref::log_softmax_backward(MatrixView<const double>(a_dense.data(), c.rows, c.cols, c.cols),
                                  MatrixView<const double>(b_dense.data(), c.rows, c.cols, c.cols),
                                  MatrixView<double>(expected.data(), c.rows, c.cols, c.cols),
                                  c.scale);
      }
      // dx = s y (dy - sum) cancels: allow error relative to the terms, not just the result.
      for (std::int64_t r = 0; r < c.rows; ++r) {
        double sum = 0.0;
        for (std::int64_t col = 0; col < c.cols; ++col) {
          const std::size_t i = r * c.cols + col;
          sum += std::fabs(op == Op::softmax_backward ? a_dense[i] * b_dense[i] : b_dense[i]);
        }
        for (std::int64_t col = 0; col < c.cols; ++col) {
          const std::size_t i = r * c.cols + col;
          term_scale[i] =
              op == Op::softmax_backward
                  ? 4.0 * c.scale * std::fabs(a_dense[i]) * (std::fabs(b_dense[i]) + sum)
                  : 4.0 * c.scale * (std::fabs(b_dense[i]) + std::exp(a_dense[i]) * sum);
        }
      }
      break;
    }
  }
  EXPECT_TRUE(all_close_scaled(dense(got, c), rounded_to<T>(expected), term_scale,
                               tolerance_for<T>(), c.cols));

  // Outside the matrix: poison still there, or (in place) the input untouched.
  const std::vector<T> around =
      !c.in_place ? poisoned_host<T>(span) : (is_backward(op) ? b_host : a_host);
  const std::size_t written = written_outside(got, around, c.offset, c.rows, c.cols, c.ld);
  EXPECT_EQ(written, 0u) << "elements outside the matrix were written";
}

template <class T>
class Softmax : public DeviceTest {};
using StorageTypes = ::testing::Types<float, __half, __nv_bfloat16>;
TYPED_TEST_SUITE(Softmax, StorageTypes);

constexpr Op kOps[] = {Op::softmax, Op::log_softmax, Op::softmax_backward,
                       Op::log_softmax_backward};
constexpr SoftmaxStrategy kForcedStrategies[] = {SoftmaxStrategy::warp, SoftmaxStrategy::block,
                                                 SoftmaxStrategy::cluster, SoftmaxStrategy::online};

/// Fewer rows for the widest rows under the emulator, which runs every thread on one CPU core.
std::vector<std::int64_t> row_counts(std::int64_t cols) {
#if defined(WARPFUSE_SIMT)
  if (cols >= 2048) return {1, 3, 19};
#endif
  static_cast<void>(cols);
  return {1, 3, 257};
}

TYPED_TEST(Softmax, EveryStrategyAndShapeMatchesTheReference) {
  using T = TypeParam;
  std::uint64_t seed = 1000;
  for (std::int64_t cols :
       {1, 2, 3, 31, 32, 33, 127, 128, 129, 1000, 1023, 1024, 1025, 2048, 4097, 12345}) {
    for (std::int64_t rows : row_counts(cols)) {
      for (SoftmaxStrategy strategy : kForcedStrategies) {
        if (strategy == SoftmaxStrategy::warp && cols > kSoftmaxWarpMaxCols) continue;
        for (Op op : kOps) {
          check_case<T>(op, Case{rows, cols, cols, 0, 1.0f, strategy}, ++seed);
        }
      }
    }
  }
}

TYPED_TEST(Softmax, StridedUnalignedInPlaceAndScaled) {
  using T = TypeParam;
  std::uint64_t seed = 5000;
  for (std::int64_t cols : {1, 5, 33, 200, 1000, 1025, 4097}) {
    const std::int64_t aligned_ld = (cols + 7) / 8 * 8 + 8;  // packs with a partial last one
    for (SoftmaxStrategy strategy : kForcedStrategies) {
      if (strategy == SoftmaxStrategy::warp && cols > kSoftmaxWarpMaxCols) continue;
      for (Op op : kOps) {
        check_case<T>(op, Case{5, cols, aligned_ld, 0, 1.0f, strategy}, ++seed);
        check_case<T>(op, Case{5, cols, cols + 3, 1, 1.0f, strategy}, ++seed);
        check_case<T>(op, Case{4, cols, cols, 0, 1.0f, strategy, true}, ++seed);
        check_case<T>(op, Case{4, cols, aligned_ld, 8, 1.0f, strategy, true}, ++seed);
        check_case<T>(op, Case{3, cols, cols, 0, 0.37f, strategy}, ++seed);
      }
    }
  }
}

TYPED_TEST(Softmax, AutomaticStrategy) {
  using T = TypeParam;
  std::uint64_t seed = 9000;
  for (std::int64_t cols : {7, 512, 1024, 1025, 3000}) {
    for (Op op : kOps) check_case<T>(op, Case{9, cols, cols, 0, 1.0f}, ++seed);
  }
}

/// The shapes the row engine was built for, every strategy that holds them: GPT-2's vocabulary
/// (50257: every row but the first starts off a 16-byte boundary) beside its padded 50304, one
/// of 262144 (online), MoE-router rows of 8 and 10 columns (many rows per warp, whole packs), and
/// views one element into the allocation.
TYPED_TEST(Softmax, VocabularyAndRouterShapes) {
  using T = TypeParam;
  std::uint64_t seed = 7000;
#if defined(WARPFUSE_SIMT)
  const std::int64_t vocab_rows = 2, router_rows = 4099;
#else
  const std::int64_t vocab_rows = 37, router_rows = 1 << 20;
#endif
  for (std::int64_t cols : {50257, 50304}) {
    for (SoftmaxStrategy strategy : {SoftmaxStrategy::block, SoftmaxStrategy::online}) {
      for (Op op : kOps) {
        const bool backward = is_backward(op);
        const std::int64_t limit = softmax_block_max_cols(
            dtype_of<T>(), backward ? SoftmaxPass::backward : SoftmaxPass::forward);
        if (strategy == SoftmaxStrategy::block && cols > limit) continue;
        check_case<T>(op, Case{vocab_rows, cols, cols, 0, 1.0f, strategy}, ++seed);
        check_case<T>(op, Case{vocab_rows, cols, cols, 1, 1.0f, strategy, true}, ++seed);
      }
    }
  }
  for (Op op : kOps) {
    check_case<T>(op, Case{1, 262144, 262144, 3, 1.0f, SoftmaxStrategy::online}, ++seed);
  }
  for (std::int64_t cols : {8, 10}) {
    for (Op op : kOps) {
      check_case<T>(op, Case{router_rows, cols, cols, 0, 1.0f, SoftmaxStrategy::automatic}, ++seed);
      check_case<T>(op, Case{257, cols, cols, 1, 0.5f, SoftmaxStrategy::warp, true}, ++seed);
    }
  }
}

/// The cluster strategy on the long rows it was built for: power-of-two vocabularies, an odd one
/// (100003: every row but the first off a 16-byte boundary), strided and in place, every op and
/// dtype; the same bodies as every other strategy.
TYPED_TEST(Softmax, ClusterLongRows) {
  using T = TypeParam;
  std::uint64_t seed = 7700;
#if defined(WARPFUSE_SIMT)
  const std::int64_t rows = 2;
#else
  const std::int64_t rows = 67;
#endif
  for (std::int64_t cols : {65536, 100003, 131072, 262144}) {
#if defined(WARPFUSE_SIMT)
    simt::LaunchRecord before{};
    simt::last_launch("softmax row_cluster_kernel", &before);
#endif
    for (Op op : kOps) {
      const std::int64_t r = cols > 131072 ? 1 : rows;
      check_case<T>(op, Case{r, cols, cols, 0, 1.0f, SoftmaxStrategy::cluster}, ++seed);
      if (cols <= 131072) {
        check_case<T>(op, Case{r, cols, cols + 5, 1, 1.0f, SoftmaxStrategy::cluster}, ++seed);
        check_case<T>(op, Case{r, cols, cols, 0, 0.5f, SoftmaxStrategy::cluster, true}, ++seed);
      }
    }
#if defined(WARPFUSE_SIMT)
    // The cases ran as clusters: launches of the cluster kernel, grids of whole clusters.
    simt::LaunchRecord after{};
    ASSERT_TRUE(simt::last_launch("softmax row_cluster_kernel", &after));
    EXPECT_GT(after.count, before.count) << cols;
    EXPECT_EQ(after.grid.x % 2, 0u) << cols;
#endif
  }
}

TEST(SoftmaxOnline, VocabularySizedRow) {
  if (const auto reason = device_unavailable()) GTEST_SKIP() << "no CUDA device: " << *reason;
  for (Op op : kOps) {
    check_case<float>(op, Case{1, 131072, 131072, 0, 1.0f, SoftmaxStrategy::online}, 77);
  }
  check_case<__half>(Op::softmax, Case{2, 131072, 131072, 0, 1.0f, SoftmaxStrategy::online}, 78);
}

// --- special values
// --------------------------------------------------------------------------------

/// Runs forward `op` with `strategy` on explicit rows and compares against the reference, which
/// implements the documented special-value semantics.
template <class T>
void check_rows(Op op, SoftmaxStrategy strategy, const std::vector<std::vector<double>>& rows) {
  const std::int64_t cols = static_cast<std::int64_t>(rows[0].size());
  const Case c{static_cast<std::int64_t>(rows.size()), cols, cols, 0, 1.0f, strategy};
  SCOPED_TRACE(std::string(op_name(op)) + " " + c.name());
  std::vector<T> host(static_cast<std::size_t>(c.span()), from_double<T>(0.5));
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::int64_t col = 0; col < cols; ++col) host[c.at(r, col)] = from_double<T>(rows[r][col]);
  DeviceBuffer<T> x = to_device(host);
  DeviceBuffer<T> y = poisoned_buffer<T>(host.size());
  call(op, c, x, x, y);
  const std::vector<double> in = dense(host, c);
  std::vector<double> expected(in.size());
  if (op == Op::softmax) {
    ref::softmax(MatrixView<const double>(in.data(), c.rows, cols, cols),
                 MatrixView<double>(expected.data(), c.rows, cols, cols), 1.0);
  } else {
    ref::log_softmax(MatrixView<const double>(in.data(), c.rows, cols, cols),
                     MatrixView<double>(expected.data(), c.rows, cols, cols), 1.0);
  }
  EXPECT_TRUE(all_close(dense(y.to_host(), c), rounded_to<T>(expected), tolerance_for<T>(), cols));
}

TYPED_TEST(Softmax, SpecialValues) {
  using T = TypeParam;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double big = std::is_same_v<T, __half> ? 65504.0 : 1e30;
  for (std::int64_t cols : {5, 40, 1500}) {
    std::vector<std::vector<double>> rows(8, std::vector<double>(cols));
    for (std::int64_t col = 0; col < cols; ++col) {
      const double v = 0.25 * static_cast<double>(col % 7) - 0.5;
      rows[0][col] = -inf;                       // all -inf: zeros / -inf
      rows[1][col] = col == 2 ? nan : v;         // a NaN: the whole row NaN
      rows[2][col] = col == 1 ? inf : v;         // +inf: the whole row NaN
      rows[3][col] = col % 2 ? -inf : v;         // some -inf: exactly 0 / -inf there
      rows[4][col] = col % 3 == 0 ? big : -big;  // huge magnitudes stay finite
      rows[5][col] = 3.0;                        // all equal: uniform
      rows[6][col] = col == 0 ? big : v;         // one dominant entry: one-hot
      rows[7][col] = -big + v;                   // all hugely negative but finite
    }
    for (SoftmaxStrategy strategy : kForcedStrategies) {
      if (strategy == SoftmaxStrategy::warp && cols > kSoftmaxWarpMaxCols) continue;
      check_rows<T>(Op::softmax, strategy, rows);
      check_rows<T>(Op::log_softmax, strategy, rows);
    }
  }
}

// --- determinism
// -----------------------------------------------------------------------------------

TYPED_TEST(Softmax, RunsAreBitwiseIdentical) {
  using T = TypeParam;
  for (SoftmaxStrategy strategy : kForcedStrategies) {
    const std::int64_t cols = strategy == SoftmaxStrategy::warp ? 777 : 5000;
    const Case c{6, cols, cols, 0, 1.0f, strategy};
    DeviceBuffer<T> x = to_device(random_matrix<T>(c, 31, -6.0, 6.0));
    DeviceBuffer<T> dy = to_device(random_matrix<T>(c, 32, -1.0, 1.0));
    DeviceBuffer<T> first = poisoned_buffer<T>(static_cast<std::size_t>(c.span()));
    DeviceBuffer<T> second = poisoned_buffer<T>(static_cast<std::size_t>(c.span()));
    for (Op op : kOps) {
      std::vector<T> reference_run;
      for_each_schedule([&](const std::string& schedule) {
        call(op, c, x, dy, first);
        call(op, c, x, dy, second);
        EXPECT_TRUE(bitwise_equal(first.to_host(), second.to_host()))
            << op_name(op) << " " << to_string(strategy) << " " << schedule;
        if (reference_run.empty()) {
          reference_run = first.to_host();
        } else {
          EXPECT_TRUE(bitwise_equal(first.to_host(), reference_run))
              << op_name(op) << " " << to_string(strategy) << " differs under " << schedule;
        }
      });
    }
  }
}

// --- strategy choice and bad input
// ------------------------------------------------------------------

class SoftmaxApi : public DeviceTest {};

TEST_F(SoftmaxApi, AutomaticStrategyThresholds) {
  EXPECT_EQ(softmax_strategy_for(1, DType::f32), SoftmaxStrategy::warp);
  EXPECT_EQ(softmax_strategy_for(kSoftmaxWarpMaxCols, DType::bf16), SoftmaxStrategy::warp);
  EXPECT_EQ(softmax_strategy_for(kSoftmaxWarpMaxCols + 1, DType::f32), SoftmaxStrategy::block);
  const std::int64_t f32_limit = softmax_block_max_cols(DType::f32);
  const std::int64_t f16_limit = softmax_block_max_cols(DType::f16);
  EXPECT_GT(f32_limit, 10000);
  EXPECT_EQ(f16_limit / 2, f32_limit);
  EXPECT_EQ(softmax_strategy_for(f32_limit, DType::f32), SoftmaxStrategy::block);
  // Past the block limit: a cluster per row on compute capability 9.0 (the emulator's, and any
  // Hopper), the online pass elsewhere.
  const bool hopper = device_info().compute_major >= 9;
  const SoftmaxStrategy past_block = hopper ? SoftmaxStrategy::cluster : SoftmaxStrategy::online;
  EXPECT_EQ(softmax_strategy_for(f32_limit + 1, DType::f32), past_block);
  EXPECT_EQ(softmax_strategy_for(262144, DType::bf16), past_block);
  EXPECT_EQ(softmax_strategy_for(4 << 20, DType::bf16), SoftmaxStrategy::online)
      << "longer than 16 blocks' shared memory";
  // A few long rows that a block holds: a cluster each when they cannot fill the SMs.
  const std::int64_t sms = device_info().multiprocessors;
  EXPECT_EQ(softmax_strategy_for(32768, DType::f32, SoftmaxPass::forward, sms / 2),
            hopper ? SoftmaxStrategy::cluster : SoftmaxStrategy::block);
  EXPECT_EQ(softmax_strategy_for(32768, DType::f32, SoftmaxPass::forward, sms),
            SoftmaxStrategy::block);
  EXPECT_EQ(softmax_strategy_for(8192, DType::f32, SoftmaxPass::forward, 1), SoftmaxStrategy::block)
      << "shorter than kClusterMinCols";
  EXPECT_STREQ(to_string(SoftmaxStrategy::cluster), "cluster");
  EXPECT_EQ(softmax_strategy_for(f32_limit + 1, DType::f16), SoftmaxStrategy::block);
  EXPECT_STREQ(to_string(SoftmaxStrategy::online), "online");
  // The backward caches y and dy: half the forward's block limit, and its automatic choice follows.
  const std::int64_t f32_backward = softmax_block_max_cols(DType::f32, SoftmaxPass::backward);
  EXPECT_LE(f32_backward, f32_limit / 2);
  EXPECT_GT(f32_backward, f32_limit / 2 - 8);
  EXPECT_EQ(softmax_strategy_for(f32_backward, DType::f32, SoftmaxPass::backward),
            SoftmaxStrategy::block);
  EXPECT_EQ(softmax_strategy_for(f32_backward + 1, DType::f32, SoftmaxPass::backward), past_block);
  EXPECT_EQ(softmax_strategy_for(f32_backward + 1, DType::f32), SoftmaxStrategy::block);
}

TEST_F(SoftmaxApi, BadArgumentsAreTypedErrorsNamingOpAndArgument) {
  DeviceBuffer<float> buffer(4096);
  float* p = buffer.data();
  const auto invalid = ErrorKind::invalid_argument;
  EXPECT_THAT(error_message(
                  [&] { softmax(MatrixView<const float>(p, -1, 4), MatrixView<float>(p, -1, 4)); },
                  invalid),
              HasSubstr("warpfuse::softmax: argument 'x': rows = -1 is negative"));
  EXPECT_THAT(error_message(
                  [&] {
                    log_softmax(MatrixView<const float>(p, 2, 8, 4),
                                MatrixView<float>(p + 100, 2, 8));
                  },
                  invalid),
              HasSubstr("warpfuse::log_softmax: argument 'x': ld = 4 is less than cols = 8"));
  EXPECT_THAT(
      error_message(
          [&] { softmax(MatrixView<const float>(nullptr, 2, 8), MatrixView<float>(p, 2, 8)); },
          invalid),
      HasSubstr("argument 'x': data is null"));
  EXPECT_THAT(
      error_message(
          [&] { softmax(MatrixView<const float>(p, 2, 8), MatrixView<float>(p + 100, 2, 9)); },
          invalid),
      HasSubstr("argument 'y': shape 2 x 9 does not match x's 2 x 8"));
  EXPECT_THAT(
      error_message(
          [&] { softmax(MatrixView<const float>(p, 2, 8), MatrixView<float>(p + 3, 2, 8)); },
          invalid),
      HasSubstr("argument 'y': overlaps 'x'"));
  EXPECT_THAT(error_message(
                  [&] {
                    softmax_backward(MatrixView<const float>(p, 2, 8),
                                     MatrixView<const float>(p + 100, 3, 8),
                                     MatrixView<float>(p + 200, 2, 8));
                  },
                  invalid),
              HasSubstr("warpfuse::softmax_backward: argument 'dy': shape 3 x 8"));
  EXPECT_THAT(error_message(
                  [&] {
                    log_softmax_backward(MatrixView<const float>(p, 2, 8),
                                         MatrixView<const float>(p + 100, 2, 8),
                                         MatrixView<float>(p + 200, 2, 7));
                  },
                  invalid),
              HasSubstr("warpfuse::log_softmax_backward: argument 'dx'"));
  EXPECT_THAT(error_message(
                  [&] {
                    softmax(MatrixView<const float>(p, 2, 8), MatrixView<float>(p + 100, 2, 8),
                            SoftmaxOptions{0.0f});
                  },
                  invalid),
              HasSubstr("argument 'options.scale': scale = 0"));
  EXPECT_THAT(error_message(
                  [&] {
                    softmax(MatrixView<const float>(p, 2, 8), MatrixView<float>(p + 100, 2, 8),
                            SoftmaxOptions{std::numeric_limits<float>::quiet_NaN()});
                  },
                  invalid),
              HasSubstr("'options.scale'"));
  EXPECT_THAT(error_message(
                  [&] {
                    softmax(MatrixView<const float>(p, 1, 2000),
                            MatrixView<float>(p + 2000, 1, 2000),
                            SoftmaxOptions{1.0f, SoftmaxStrategy::warp});
                  },
                  ErrorKind::unsupported),
              HasSubstr("warpfuse::softmax: unsupported: strategy warp holds rows of at most 1024 "
                        "columns; cols = 2000"));
  const std::int64_t too_long = softmax_block_max_cols(DType::f32) + 8;
  DeviceBuffer<float> wide(static_cast<std::size_t>(too_long));
  EXPECT_THAT(error_message(
                  [&] {
                    softmax(MatrixView<const float>(wide.data(), 1, too_long),
                            MatrixView<float>(wide.data(), 1, too_long),
                            SoftmaxOptions{1.0f, SoftmaxStrategy::block});
                  },
                  ErrorKind::unsupported),
              HasSubstr("strategy block caches rows of at most"));
}

TEST_F(SoftmaxApi, EmptyMatricesAreNoOps) {
  DeviceBuffer<float> y = poisoned_buffer<float>(8);
  softmax(MatrixView<const float>(nullptr, 0, 8), MatrixView<float>(nullptr, 0, 8));
  log_softmax(MatrixView<const float>(nullptr, 4, 0), MatrixView<float>(nullptr, 4, 0));
  softmax_backward(MatrixView<const float>(nullptr, 0, 3), MatrixView<const float>(nullptr, 0, 3),
                   MatrixView<float>(nullptr, 0, 3));
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
  for (float v : y.to_host()) EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

}  // namespace
}  // namespace warpfuse::test
