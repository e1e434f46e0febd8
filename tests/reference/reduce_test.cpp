// Tests of the CPU reference reductions (include/warpfuse/ref/reduce.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "warpfuse/ref/reduce.h"

namespace {

TEST(RefReduce, SumAccumulatesInDouble) {
  // 1e8 + 1 + 1 + ... is lost in float accumulation but not in double.
  std::vector<float> values(1001, 1.0f);
  values[0] = 1e8f;
  EXPECT_EQ(warpfuse::ref::sum(values.data(), 1001), 1e8 + 1000.0);
  EXPECT_EQ(warpfuse::ref::sum(values.data(), 0), 0.0);
  const std::vector<std::int64_t> big = {std::int64_t{1} << 40, -3, 5};
  EXPECT_EQ(warpfuse::ref::sum(big.data(), 3), static_cast<double>((std::int64_t{1} << 40) + 2));
}

TEST(RefReduce, MaxIgnoresNanUnlessAllNan) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> mixed = {-3.0f, nan, -1.5f, -7.0f};
  EXPECT_EQ(warpfuse::ref::max(mixed.data(), 4), -1.5);
  const std::vector<float> all_nan = {nan, nan};
  EXPECT_TRUE(std::isnan(warpfuse::ref::max(all_nan.data(), 2)));
  EXPECT_EQ(warpfuse::ref::max(mixed.data(), 0), -std::numeric_limits<double>::infinity());
  const std::vector<std::int32_t> ints = {-5, 9, 2};
  EXPECT_EQ(warpfuse::ref::max(ints.data(), 3), 9.0);
}

}  // namespace
