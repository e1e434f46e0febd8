// Tests of kernels/common/: warp and block reductions, packs, dtype conversion, math wrappers.
// One body, compiled into the emulated and the GPU test binaries (see test_util.h).
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "host/cuda/launch.h"
#include "kernels/common/convert.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"
#include "test_util.h"
#include "warpfuse/ref/reduce.h"

namespace warpfuse::test {
namespace {

using detail::LaunchConfig;

// --- kernels under test ------------------------------------------------------------------------

/// 1-D grid, any whole number of warps per block; thread i reduces in[i] over its Width-group.
template <int Width, class T, class Op>
__global__ void warp_reduce_kernel(const T* in, T* out, Op op) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = detail::warp_all_reduce<Width>(in[i], op);
}

/// One block per segment of `n` elements; every thread stores the block's result, so the test sees
/// whether all threads got it. Two back-to-back reductions (sum then max) share the shared slots.
template <class T>
__global__ void block_reduce_kernel(const T* in, std::int64_t n, T* sums, T* maxima) {
  const T* segment = in + blockIdx.x * n;
  T sum = T(0);
  T best = detail::MaxOp::identity<T>();
  for (std::int64_t i = detail::linear_thread_index(); i < n; i += detail::threads_per_block()) {
    sum = sum + segment[i];
    best = detail::MaxOp{}(best, segment[i]);
  }
  sum = detail::block_all_reduce_sum(sum);
  best = detail::block_all_reduce_max(best);
  const std::int64_t slot = static_cast<std::int64_t>(blockIdx.x) * detail::threads_per_block() +
                            detail::linear_thread_index();
  sums[slot] = sum;
  maxima[slot] = best;
}

/// Copies n elements: a scalar head up to pack alignment, whole 16-byte packs, a scalar tail; all
/// scalar when source and destination are not aligned alike. Grid-stride over packs.
template <class T>
__global__ void pack_copy_kernel(const T* src, T* dst, std::int64_t n) {
  constexpr int N = detail::kPackElements<T>;
  const std::int64_t thread = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const detail::PackSplit src_split = detail::split_for_packs<N>(src, n);
  const detail::PackSplit dst_split = detail::split_for_packs<N>(dst, n);
  if (src_split.head != dst_split.head || src_split.packs == 0) {
    for (std::int64_t i = thread; i < n; i += stride) dst[i] = src[i];
    return;
  }
  const std::int64_t head = src_split.head;
  for (std::int64_t i = thread; i < head; i += stride) dst[i] = src[i];
  for (std::int64_t p = thread; p < src_split.packs; p += stride) {
    detail::store_pack<N>(dst + head + p * N, detail::load_pack<N>(src + head + p * N));
  }
  const std::int64_t tail_start = head + src_split.packs * N;
  for (std::int64_t i = tail_start + thread; i < n; i += stride) dst[i] = src[i];
}

template <class T>
__global__ void convert_kernel(const float* in, T* narrowed, float* widened, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    const T value = detail::from_float<T>(in[i]);
    narrowed[i] = value;
    widened[i] = detail::to_float(value);
  }
}

/// out[5 * i + k] = k-th wrapper applied to in[i].
__global__ void math_kernel(const float* in, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    const float x = in[i];
    out[5 * i + 0] = detail::exact_exp(x);
    out[5 * i + 1] = detail::fast_exp(x);
    out[5 * i + 2] = detail::exact_log(std::fabs(x) + 0.5f);
    out[5 * i + 3] = detail::fast_div(x, 1.0f + x * x);
    out[5 * i + 4] = detail::fast_rsqrt(x * x + 0.25f);
  }
}

// --- warp reductions ---------------------------------------------------------------------------

class WarpReduce : public DeviceTest {
 protected:
  /// The host model: each aligned group of `width` lanes gets the group's reduction.
  template <class T, class Op>
  static std::vector<T> expected(const std::vector<T>& in, int width, Op op) {
    std::vector<T> out(in.size());
    for (std::size_t start = 0; start < in.size(); start += width) {
      T acc = in[start];
      for (int k = 1; k < width; ++k) acc = op(acc, in[start + k]);
      for (int k = 0; k < width; ++k) out[start + k] = acc;
    }
    return out;
  }

  template <int Width>
  void check_width() {
    SCOPED_TRACE("width " + std::to_string(Width));
    constexpr int kThreads = 4096;
    const LaunchConfig config{dim3(kThreads / 128), dim3(128)};
    // Integers: exact, whatever the combination order.
    const auto ints = random_values<int>(kThreads, 11 + Width, -1000, 1000);
    auto ints_in = to_device(ints);
    auto ints_out = poisoned_buffer<int>(kThreads);
    detail::launch(config, "warp_reduce_kernel", warp_reduce_kernel<Width, int, detail::SumOp>,
                   ints_in.data(), ints_out.data(), detail::SumOp{});
    EXPECT_TRUE(bitwise_equal(ints_out.to_host(), expected(ints, Width, detail::SumOp{})));
    // Float maximum: exact too (no rounding in max), including negative values only.
    const auto floats = random_values<float>(kThreads, 23 + Width, -50.0, -1.0);
    auto floats_in = to_device(floats);
    auto floats_out = poisoned_buffer<float>(kThreads);
    detail::launch(config, "warp_reduce_kernel", warp_reduce_kernel<Width, float, detail::MaxOp>,
                   floats_in.data(), floats_out.data(), detail::MaxOp{});
    EXPECT_TRUE(bitwise_equal(floats_out.to_host(), expected(floats, Width, detail::MaxOp{})));
    // Float sum: within tolerance of the double reference, identical in every lane of a group.
    detail::launch(config, "warp_reduce_kernel", warp_reduce_kernel<Width, float, detail::SumOp>,
                   floats_in.data(), floats_out.data(), detail::SumOp{});
    const auto sums = floats_out.to_host();
    std::vector<double> reference(kThreads);
    for (int start = 0; start < kThreads; start += Width) {
      const double total = ref::sum(floats.data() + start, Width);
      for (int k = 0; k < Width; ++k) {
        reference[start + k] = total;
        ASSERT_EQ(sums[start], sums[start + k]) << "lanes of one group disagree at " << start + k;
      }
    }
    EXPECT_TRUE(all_close(sums, reference, tolerance_for<float>()));
  }
};

TEST_F(WarpReduce, EveryWidthMatchesTheHostModel) {
  check_width<1>();
  check_width<2>();
  check_width<4>();
  check_width<8>();
  check_width<16>();
  check_width<32>();
}

// --- block reductions --------------------------------------------------------------------------

class BlockReduce : public DeviceTest {};

TEST_F(BlockReduce, IntegersExactForEveryBlockSize) {
  constexpr int kBlocks = 3;
  for (int threads = 32; threads <= 1024; threads += 32) {
    SCOPED_TRACE("block size " + std::to_string(threads));
    const std::int64_t n = 3 * threads + 7;  // uneven work per thread
    const auto in = random_values<int>(kBlocks * n, 100 + threads, -5000, 5000);
    auto device_in = to_device(in);
    auto sums = poisoned_buffer<int>(kBlocks * threads);
    auto maxima = poisoned_buffer<int>(kBlocks * threads);
    detail::launch(LaunchConfig{dim3(kBlocks), dim3(threads)}, "block_reduce_kernel",
                   block_reduce_kernel<int>, device_in.data(), n, sums.data(), maxima.data());
    const auto got_sums = sums.to_host();
    const auto got_maxima = maxima.to_host();
    for (int block = 0; block < kBlocks; ++block) {
      const int* segment = in.data() + block * n;
      const int sum = static_cast<int>(ref::sum(segment, n));
      const int best = static_cast<int>(ref::max(segment, n));
      for (int t = 0; t < threads; ++t) {
        ASSERT_EQ(got_sums[block * threads + t], sum) << "block " << block << " thread " << t;
        ASSERT_EQ(got_maxima[block * threads + t], best) << "block " << block << " thread " << t;
      }
    }
  }
}

TEST_F(BlockReduce, FloatsWithinToleranceAndDeterministic) {
  constexpr int kBlocks = 4;
  for (int threads : {32, 64, 96, 256, 544, 1024}) {
    SCOPED_TRACE("block size " + std::to_string(threads));
    const std::int64_t n = 5000;
    const auto in = random_values<float>(kBlocks * n, 7 + threads, -3.0, 2.0);
    auto device_in = to_device(in);
    auto sums = poisoned_buffer<float>(kBlocks * threads);
    auto maxima = poisoned_buffer<float>(kBlocks * threads);
    std::vector<float> first_sums;
    for_each_schedule([&](const std::string& schedule) {
      SCOPED_TRACE("schedule " + schedule);
      sums.fill_bytes(0xFF);
      detail::launch(LaunchConfig{dim3(kBlocks), dim3(threads)}, "block_reduce_kernel",
                     block_reduce_kernel<float>, device_in.data(), n, sums.data(), maxima.data());
      const auto got = sums.to_host();
      const auto got_max = maxima.to_host();
      std::vector<double> expected_sums(got.size());
      std::vector<double> expected_max(got.size());
      for (int block = 0; block < kBlocks; ++block) {
        for (int t = 0; t < threads; ++t) {
          expected_sums[block * threads + t] = ref::sum(in.data() + block * n, n);
          expected_max[block * threads + t] = ref::max(in.data() + block * n, n);
        }
      }
      // n additions of values below 3 in fp32: a few ulps of the running sum per step.
      EXPECT_TRUE(all_close(got, expected_sums, Tolerance{1e-3, 1e-5}, threads));
      EXPECT_TRUE(all_close(got_max, expected_max, Tolerance{0.0, 0.0}, threads));
      if (first_sums.empty()) {
        first_sums = got;
      } else {
        EXPECT_TRUE(bitwise_equal(got, first_sums, threads)) << "not deterministic";
      }
    });
  }
}

// --- packs -------------------------------------------------------------------------------------

template <class T>
class PackCopy : public DeviceTest {};
using StorageTypes = ::testing::Types<float, __half, __nv_bfloat16>;
TYPED_TEST_SUITE(PackCopy, StorageTypes);

TYPED_TEST(PackCopy, EveryOffsetAndLengthCopiesExactly) {
  using T = TypeParam;
  constexpr int kCapacity = 160;
  const auto source = random_values<T>(kCapacity, 5);
  auto device_source = to_device(source);
  auto device_dest = DeviceBuffer<T>(kCapacity);
  for (int src_offset = 0; src_offset < 9; ++src_offset) {
    for (int dst_offset : {src_offset, (src_offset + 1) % 9}) {
      for (int n : {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 140}) {
        SCOPED_TRACE("src offset " + std::to_string(src_offset) + " dst offset " +
                     std::to_string(dst_offset) + " n " + std::to_string(n));
        device_dest.fill_bytes(0xFF);
        detail::launch(LaunchConfig{dim3(2), dim3(32)}, "pack_copy_kernel", pack_copy_kernel<T>,
                       device_source.data() + src_offset, device_dest.data() + dst_offset,
                       static_cast<std::int64_t>(n));
        const auto got = device_dest.to_host();
        for (int i = 0; i < kCapacity; ++i) {
          const bool inside = i >= dst_offset && i < dst_offset + n;
          if (inside) {
            ASSERT_EQ(to_double(got[i]), to_double(source[src_offset + i - dst_offset]))
                << "element " << i;
          } else {
            ASSERT_TRUE(std::isnan(to_double(got[i]))) << "wrote outside the range at " << i;
          }
        }
      }
    }
  }
}

TEST(PackSplit, PartitionsEveryRange) {
  alignas(16) static float buffer[64];
  for (int offset = 0; offset < 8; ++offset) {
    for (std::int64_t n = 0; n < 40; ++n) {
      const auto split = detail::split_for_packs<4>(buffer + offset, n);
      EXPECT_EQ(split.head + 4 * split.packs + split.tail, n);
      EXPECT_GE(split.head, 0);
      EXPECT_LT(split.tail, 4 + (split.packs == 0 ? n : 0) + 1);
      if (split.packs > 0) {
        EXPECT_TRUE(detail::is_pack_aligned<4>(buffer + offset + split.head));
        EXPECT_LT(split.head, 4);
      }
    }
  }
  EXPECT_TRUE(detail::can_use_packs<4>(buffer, 8));
  EXPECT_FALSE(detail::can_use_packs<4>(buffer, 6));
  EXPECT_FALSE(detail::can_use_packs<4>(buffer + 1, 8));
}

// --- dtype conversion ----------------------------------------------------------------------------

template <class T>
class Convert : public DeviceTest {};
TYPED_TEST_SUITE(Convert, StorageTypes);

TYPED_TEST(Convert, RoundsToNearestEvenAndWidensExactly) {
  using T = TypeParam;
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> in = {0.0f,
                           -0.0f,
                           1.0f,
                           -2.5f,
                           65504.0f,
                           65520.0f,
                           1e-8f,
                           -3e38f,
                           inf,
                           -inf,
                           std::numeric_limits<float>::quiet_NaN(),
                           1.0f + 1.0f / 2048.0f,
                           1.0f + 1.0f / 256.0f,
                           6.1e-5f};
  const auto draws = random_values<float>(500, 99, -70000.0, 70000.0);
  in.insert(in.end(), draws.begin(), draws.end());
  const int n = static_cast<int>(in.size());
  auto device_in = to_device(in);
  auto narrowed = poisoned_buffer<T>(n);
  auto widened = poisoned_buffer<float>(n);
  detail::launch(LaunchConfig{dim3((n + 127) / 128), dim3(128)}, "convert_kernel",
                 convert_kernel<T>, device_in.data(), narrowed.data(), widened.data(), n);
  const auto got_narrow = narrowed.to_host();
  const auto got_wide = widened.to_host();
  for (int i = 0; i < n; ++i) {
    const T expected = from_double<T>(in[i]);  // the host's round-to-nearest-even conversion
    if (std::isnan(in[i])) {
      EXPECT_TRUE(std::isnan(to_double(got_narrow[i]))) << "element " << i;
      EXPECT_TRUE(std::isnan(got_wide[i])) << "element " << i;
      continue;
    }
    EXPECT_EQ(std::memcmp(&got_narrow[i], &expected, sizeof(T)), 0)
        << "element " << i << " = " << in[i] << ": got " << to_double(got_narrow[i])
        << ", expected " << to_double(expected);
    EXPECT_EQ(static_cast<double>(got_wide[i]), to_double(expected)) << "element " << i;
  }
}

// --- math wrappers -------------------------------------------------------------------------------

class MathWrappers : public DeviceTest {};

TEST_F(MathWrappers, MatchDoublePrecision) {
  const int n = 2000;
  const auto in = random_values<float>(n, 3, -20.0, 20.0);
  auto device_in = to_device(in);
  auto out = poisoned_buffer<float>(5 * n);
  detail::launch(LaunchConfig{dim3((n + 255) / 256), dim3(256)}, "math_kernel", math_kernel,
                 device_in.data(), out.data(), n);
  const auto got = out.to_host();
  std::vector<double> expected(5 * n);
  for (int i = 0; i < n; ++i) {
    const double x = in[i];
    expected[5 * i + 0] = std::exp(x);
    expected[5 * i + 1] = std::exp(x);
    expected[5 * i + 2] = std::log(std::fabs(x) + 0.5);
    expected[5 * i + 3] = x / (1.0 + static_cast<double>(static_cast<float>(x * x)));
    expected[5 * i + 4] = 1.0 / std::sqrt(static_cast<double>(static_cast<float>(x * x)) + 0.25);
  }
  // __expf's error grows with |x| (2 + 1.16|x| ulp): at |x| = 20, about 25 ulp = 3e-6 relative.
  EXPECT_TRUE(all_close(got, expected, Tolerance{1e-6, 4e-6}, 5));
}

// --- the shared test helpers catch what they are for (planted faults) ----------------------------

TEST(TestHelpers, WrittenOutsideCountsEveryStrayWriteAndNothingElse) {
  // A 3 x 4 matrix at offset 2 with row stride 6 in a buffer of 24 floats.
  const std::vector<float> poison = poisoned_host<float>(24);
  std::vector<float> got = poison;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) got[2 + r * 6 + c] = 1.0f;  // the matrix itself: not counted
  EXPECT_EQ(written_outside(got, poison, 2, 3, 4, 6), 0u);
  got[2 + 4] = 0.0f;  // the gap after row 0
  got[1] = 0.0f;      // before the matrix
  got[23] = -0.0f;    // after it (bitwise, not by value)
  EXPECT_EQ(written_outside(got, poison, 2, 3, 4, 6), 3u);
  // In place: the surroundings must hold the input, not the poison.
  std::vector<float> input(24, 7.0f), out = input;
  out[2 + 6 + 3] = 0.5f;  // inside
  EXPECT_EQ(written_outside(out, input, 2, 3, 4, 6), 0u);
  out[2 + 6 + 4] = 0.5f;  // in the gap
  EXPECT_EQ(written_outside(out, input, 2, 3, 4, 6), 1u);
}

/// How many test failures `body` reports (intercepted: they do not fail this test).
template <class Body>
int failures_of(Body&& body) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    body();
  }
  return results.size();
}

TEST(TestHelpers, ErrorChecksFailOnTheWrongErrorOrNone) {
  // The right error passes and hands back its message.
  std::string message;
  EXPECT_EQ(failures_of([&] {
              message = expect_invalid([] { throw InvalidArgument("softmax", "x", "bad"); },
                                       "softmax", "x");
            }),
            0);
  EXPECT_NE(message.find("argument 'x': bad"), std::string::npos) << message;
  // Planted: no throw, another argument, another op, another kind: each must fail.
  EXPECT_GE(failures_of([] { expect_invalid([] {}, "softmax", "x"); }), 1);
  EXPECT_GE(failures_of([] {
              expect_invalid([] { throw InvalidArgument("softmax", "y", "bad"); }, "softmax", "x");
            }),
            1);
  EXPECT_GE(failures_of([] {
              expect_invalid([] { throw InvalidArgument("log_softmax", "x", "bad"); }, "softmax",
                             "x");
            }),
            1);
  EXPECT_GE(failures_of([] {
              expect_invalid([] { throw Unsupported("softmax", "too long"); }, "softmax", "x");
            }),
            1);
  EXPECT_GE(failures_of([] { error_message([] {}); }), 1);
  EXPECT_GE(failures_of([] { error_message([] { throw Unsupported("softmax", "too long"); }); }),
            1);
  EXPECT_EQ(failures_of([] {
              error_message([] { throw Unsupported("softmax", "too long"); },
                            ErrorKind::unsupported);
            }),
            0);
}

}  // namespace
}  // namespace warpfuse::test
