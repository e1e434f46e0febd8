// Tests of DeviceBuffer and the views' argument check (include/warpfuse/memory.h, view.h).
// One body, in the emulated and the GPU binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "test_util.h"
#include "warpfuse/memory.h"
#include "warpfuse/view.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

static_assert(!std::is_copy_constructible_v<DeviceBuffer<float>>);
static_assert(!std::is_copy_assignable_v<DeviceBuffer<float>>);
static_assert(std::is_nothrow_move_constructible_v<DeviceBuffer<float>>);
static_assert(std::is_convertible_v<MatrixView<float>, MatrixView<const float>>);
static_assert(!std::is_convertible_v<MatrixView<const float>, MatrixView<float>>);

/// The InvalidArgument message of check_view on `view`, or "" if it passes.
template <class T>
std::string check(const MatrixView<T>& view) {
  try {
    detail::check_view("softmax", "x", view);
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.op(), "softmax");
    EXPECT_EQ(error.argument(), "x");
    return error.what();
  }
  return "";
}

TEST(CheckView, AcceptsValidAndEmptyViews) {
  float storage[64];
  EXPECT_EQ(check(MatrixView<float>(storage, 4, 8)), "");
  EXPECT_EQ(check(MatrixView<float>(storage, 4, 8, 16)), "");
  EXPECT_EQ(check(MatrixView<float>(nullptr, 0, 8)), "");
  EXPECT_EQ(check(MatrixView<float>(nullptr, 5, 0)), "");
  EXPECT_EQ(check(MatrixView<const float>(nullptr, 0, 0, 0)), "");
}

TEST(CheckView, RejectsEachBadFieldWithItsValue) {
  float storage[64];
  EXPECT_EQ(check(MatrixView<float>(storage, -1, 8)),
            "warpfuse::softmax: argument 'x': rows = -1 is negative");
  EXPECT_EQ(check(MatrixView<float>(storage, 2, -3, 4)),
            "warpfuse::softmax: argument 'x': cols = -3 is negative");
  EXPECT_THAT(check(MatrixView<float>(storage, 2, 8, 7)),
              HasSubstr("ld = 7 is less than cols = 8"));
  EXPECT_THAT(check(MatrixView<float>(nullptr, 2, 8)), HasSubstr("data is null"));
  const std::int64_t huge = std::numeric_limits<std::int64_t>::max() / 2;
  EXPECT_THAT(check(MatrixView<float>(storage, 4, huge)), HasSubstr("overflows 64-bit indexing"));
}

TEST(CheckView, SameShapeAndVectors) {
  float storage[64];
  const MatrixView<const float> x(storage, 4, 8);
  const MatrixView<float> y(storage, 4, 7, 8);
  try {
    detail::check_same_shape("softmax", "y", y, "x", x);
    FAIL() << "no exception";
  } catch (const InvalidArgument& error) {
    EXPECT_STREQ(error.what(),
                 "warpfuse::softmax: argument 'y': shape 4 x 7 does not match x's 4 x 8");
  }
  detail::check_same_shape("softmax", "y", MatrixView<float>(storage, 4, 8, 9), "x", x);
  EXPECT_THROW(detail::check_view("prelu", "slope", VectorView<const float>(nullptr, 3)),
               InvalidArgument);
  EXPECT_THROW(detail::check_view("prelu", "slope", VectorView<const float>(storage, -2)),
               InvalidArgument);
  detail::check_view("prelu", "slope", VectorView<const float>(nullptr, 0));
}

class Buffers : public DeviceTest {};

TEST_F(Buffers, RoundTripMoveAndReset) {
  const auto host = random_values<float>(1000, 42);
  DeviceBuffer<float> buffer = to_device(host);
  EXPECT_EQ(buffer.size(), 1000u);
  EXPECT_EQ(buffer.bytes(), 4000u);
  EXPECT_TRUE(bitwise_equal(buffer.to_host(), host));

  DeviceBuffer<float> moved(std::move(buffer));
  EXPECT_EQ(buffer.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_TRUE(bitwise_equal(moved.to_host(), host));

  DeviceBuffer<float> assigned(10);
  assigned = std::move(moved);
  EXPECT_EQ(assigned.size(), 1000u);
  EXPECT_TRUE(bitwise_equal(assigned.to_host(), host));
  assigned.reset();
  EXPECT_TRUE(assigned.empty());
  EXPECT_EQ(DeviceBuffer<__half>(0).data(), nullptr);
}

TEST_F(Buffers, PoisonMakesEveryFloatTypeNan) {
  auto f = poisoned_buffer<float>(3).to_host();
  auto h = poisoned_buffer<__half>(3).to_host();
  auto b = poisoned_buffer<__nv_bfloat16>(3).to_host();
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(std::isnan(f[i]));
    EXPECT_TRUE(std::isnan(to_double(h[i])));
    EXPECT_TRUE(std::isnan(to_double(b[i])));
  }
}

TEST_F(Buffers, ViewsAreCheckedAgainstTheBuffer) {
  DeviceBuffer<float> buffer(100);
  const auto view = buffer.view(10, 8, 10);
  EXPECT_EQ(view.rows, 10);
  EXPECT_EQ(view.cols, 8);
  EXPECT_EQ(view.ld, 10);
  EXPECT_EQ(buffer.view(10, 10).ld, 10);
  EXPECT_EQ(buffer.view(11, 9, 9).rows, 11);  // (11 - 1) * 9 + 9 = 99 elements
  try {
    buffer.view(11, 10);
    FAIL() << "no exception";
  } catch (const InvalidArgument& error) {
    EXPECT_THAT(std::string(error.what()),
                HasSubstr("needs 110 elements but the buffer holds 100"));
  }
  EXPECT_THROW(buffer.copy_from_host(std::vector<float>(101)), InvalidArgument);
  std::vector<float> small(200);
  EXPECT_THROW(buffer.copy_to_host(small.data(), 101), InvalidArgument);
}

}  // namespace
}  // namespace warpfuse::test
