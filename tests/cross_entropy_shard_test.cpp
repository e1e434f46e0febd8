// Tests of vocabulary-parallel cross-entropy (include/warpfuse/cross_entropy_shard.h): one matrix
// split into 1, 2, 3 and 7 uneven shards (views of one allocation and separate copies, in place),
// stats -> gather -> combine -> finish, against the unsharded cross_entropy (bitwise with one
// shard where the math allows, within tolerance otherwise) and the double reference. One body, in
// the emulated and the GPU binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/cross_entropy_shard.h"
#include "warpfuse/ref/cross_entropy.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

struct ShardCase {
  std::int64_t rows;
  std::int64_t vocab;
  int shards;
  CrossEntropyReduction reduction = CrossEntropyReduction::mean;
  float smoothing = 0.0f;
  float z_loss = 0.0f;
  bool weights = false;
  int ignored_every = 0;
  float softcap = 0.0f;
  float logit_scale = 1.0f;
  bool separate = false;  // each shard its own allocation (else views of the full matrix)
  bool in_place = false;  // finish writes dlogits over the shard's logits (separate only)
  RowStrategy strategy = RowStrategy::automatic;

  std::string name() const {
    return std::to_string(rows) + "x" + std::to_string(vocab) + " in " + std::to_string(shards) +
           " shards " + to_string(reduction) + " smoothing " + std::to_string(smoothing) + " z " +
           std::to_string(z_loss) + (weights ? " weighted" : "") +
           (ignored_every ? " ignore/" + std::to_string(ignored_every) : "") + " cap " +
           std::to_string(softcap) + " scale " + std::to_string(logit_scale) +
           (separate ? " separate" : " views") + (in_place ? " in-place" : "") + " " +
           to_string(strategy);
  }
};

/// Uneven split points: shard s gets about vocab / shards columns, the first ones fewer, the last
/// the rest (every shard at least one column).
std::vector<std::int64_t> split_points(std::int64_t vocab, int shards) {
  std::vector<std::int64_t> points{0};
  for (int s = 1; s < shards; ++s) {
    const std::int64_t even = vocab * s / shards;
    const std::int64_t jitter = (s % 2 == 1 ? -1 : 1) * (vocab / (3 * shards));
    std::int64_t p =
        std::clamp<std::int64_t>(even + jitter, points.back() + 1, vocab - (shards - s));
    points.push_back(p);
  }
  points.push_back(vocab);
  return points;
}

template <class T, class Index>
void check_shards(const ShardCase& c, std::uint64_t seed) {
  SCOPED_TRACE(c.name() + " " + type_name<T>() + " " + type_name<Index>());
  const std::int64_t rows = c.rows, vocab = c.vocab, ld = vocab + 3;
  const std::vector<T> logits_host =
      random_values<T>(static_cast<std::size_t>(rows * ld), seed, -4.0, 4.0);
  std::vector<std::int64_t> targets(static_cast<std::size_t>(rows));
  const auto draws = random_values<std::int64_t>(targets.size(), seed + 1, 0, vocab - 1);
  for (std::int64_t r = 0; r < rows; ++r) {
    targets[r] = r == 0 ? 0 : (r == 1 ? vocab - 1 : draws[r]);
    if (c.ignored_every > 0 && r % c.ignored_every == c.ignored_every - 1) targets[r] = -100;
  }
  const std::vector<Index> targets_typed(targets.begin(), targets.end());
  std::vector<float> weight_host;
  if (c.weights) {
    weight_host = random_values<float>(static_cast<std::size_t>(vocab), seed + 2, 0.5, 2.0);
  }
  CrossEntropyOptions options = cross_entropy_options_of(c, 0.75f);

  DeviceBuffer<T> d_logits = to_device(logits_host);
  DeviceBuffer<Index> d_targets = to_device(targets_typed);
  DeviceBuffer<float> d_weight = to_device(weight_host);
  const std::size_t loss_count = c.reduction == CrossEntropyReduction::none ? rows : 1;

  // The unsharded op: the comparison.
  DeviceBuffer<float> u_loss = poisoned_buffer<float>(loss_count);
  DeviceBuffer<float> u_lse = poisoned_buffer<float>(rows);
  DeviceBuffer<float> u_z = poisoned_buffer<float>(rows);
  DeviceBuffer<float> u_entropy = poisoned_buffer<float>(rows);
  DeviceBuffer<T> u_grad = poisoned_buffer<T>(static_cast<std::size_t>(rows * vocab));
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(rows));
  const Workspace ws{workspace.data(), workspace.size()};
  {
    CrossEntropyOutputs<T> out;
    out.loss = VectorView<float>(u_loss.data(), static_cast<std::int64_t>(loss_count));
    out.logsumexp = u_lse.vector();
    out.z_loss_term = u_z.vector();
    out.entropy = u_entropy.vector();
    out.dlogits = MatrixView<T>(u_grad.data(), rows, vocab);
    CrossEntropyOptions whole = options;
    whole.strategy = RowStrategy::automatic;  // the shards' forced strategy may not hold the row
    cross_entropy(
        MatrixView<const T>(d_logits.data(), rows, vocab, ld),
        VectorView<const Index>(d_targets.data(), rows), out, ws, whole,
        VectorView<const float>(c.weights ? d_weight.data() : nullptr, c.weights ? vocab : 0));
  }

  // Sharded: stats into the shard's slot of the gathered matrix (an all-gather's layout).
  const std::vector<std::int64_t> points = split_points(vocab, c.shards);
  DeviceBuffer<float> gathered =
      poisoned_buffer<float>(static_cast<std::size_t>(c.shards * rows * kCrossEntropyShardStats));
  std::vector<DeviceBuffer<T>> copies;  // separate shards: each its own allocation, ld = cols
  const auto shard_logits = [&](int s) {
    const std::int64_t v0 = points[s], cols = points[s + 1] - v0;
    if (c.separate) return MatrixView<T>(copies[s].data(), rows, cols, cols);
    return MatrixView<T>(d_logits.data() + v0, rows, cols, ld);
  };
  for (int s = 0; s < c.shards; ++s) {
    if (!c.separate) continue;
    const std::int64_t v0 = points[s], cols = points[s + 1] - v0;
    std::vector<T> part(static_cast<std::size_t>(rows * cols));
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t k = 0; k < cols; ++k) part[r * cols + k] = logits_host[r * ld + v0 + k];
    }
    copies.push_back(to_device(part));
  }
  const auto shard_weight = [&](int s) {
    return VectorView<const float>(c.weights ? d_weight.data() + points[s] : nullptr,
                                   c.weights ? points[s + 1] - points[s] : 0);
  };
  for (int s = 0; s < c.shards; ++s) {
    const CrossEntropyShard shard{points[s], vocab};
    cross_entropy_shard_stats(
        MatrixView<const T>(shard_logits(s)), VectorView<const Index>(d_targets.data(), rows),
        shard,
        MatrixView<float>(gathered.data() + s * rows * kCrossEntropyShardStats, rows,
                          kCrossEntropyShardStats),
        options, shard_weight(s));
  }
  DeviceBuffer<float> combined =
      poisoned_buffer<float>(static_cast<std::size_t>(rows * kCrossEntropyShardStats));
  const MatrixView<float> combined_view(combined.data(), rows, kCrossEntropyShardStats);
  cross_entropy_shard_combine(
      MatrixView<const float>(gathered.data(), c.shards * rows, kCrossEntropyShardStats), c.shards,
      combined_view);
  // Finish on every shard: the same loss from each, the shard's columns of the gradient.
  DeviceBuffer<T> s_grad = poisoned_buffer<T>(static_cast<std::size_t>(rows * vocab));
  std::vector<float> first_loss, first_lse, first_z, first_entropy;
  for (int s = 0; s < c.shards; ++s) {
    SCOPED_TRACE("shard " + std::to_string(s));
    const std::int64_t v0 = points[s], cols = points[s + 1] - v0;
    DeviceBuffer<float> loss = poisoned_buffer<float>(loss_count);
    DeviceBuffer<float> lse = poisoned_buffer<float>(rows);
    DeviceBuffer<float> z_term = poisoned_buffer<float>(rows);
    DeviceBuffer<float> entropy = poisoned_buffer<float>(rows);
    CrossEntropyOutputs<T> out;
    out.loss = VectorView<float>(loss.data(), static_cast<std::int64_t>(loss_count));
    out.logsumexp = lse.vector();
    out.z_loss_term = z_term.vector();
    out.entropy = entropy.vector();
    out.dlogits =
        c.in_place ? shard_logits(s) : MatrixView<T>(s_grad.data() + v0, rows, cols, vocab);
    cross_entropy_shard_finish(MatrixView<const T>(shard_logits(s)),
                               VectorView<const Index>(d_targets.data(), rows),
                               CrossEntropyShard{v0, vocab}, MatrixView<const float>(combined_view),
                               out, ws, options, shard_weight(s));
    WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_EQ(read_loss_status(ws).bad_rows, 0);
    if (c.in_place) {  // the gradient replaced the shard's logits: into the full gradient
      const std::vector<T> g = copies[s].to_host();
      std::vector<T> full = s_grad.to_host();
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t k = 0; k < cols; ++k) full[r * vocab + v0 + k] = g[r * cols + k];
      }
      s_grad = to_device(full);
    }
    if (s == 0) {
      first_loss = loss.to_host();
      first_lse = lse.to_host();
      first_z = z_term.to_host();
      first_entropy = entropy.to_host();
    } else {  // every shard computes the same row values from the same combined statistics
      EXPECT_TRUE(bitwise_equal(loss.to_host(), first_loss));
      EXPECT_TRUE(bitwise_equal(lse.to_host(), first_lse));
      EXPECT_TRUE(bitwise_equal(entropy.to_host(), first_entropy));
    }
  }

  const bool bitwise = c.shards == 1 && !(c.smoothing > 0.0f && c.weights);
  const double loss_rtol = 2e-5 * std::sqrt(static_cast<double>(vocab) + rows) * c.shards;
  if (bitwise) {
    EXPECT_TRUE(bitwise_equal(first_loss, u_loss.to_host()));
    EXPECT_TRUE(bitwise_equal(first_lse, u_lse.to_host()));
    EXPECT_TRUE(bitwise_equal(first_z, u_z.to_host()));
    EXPECT_TRUE(bitwise_equal(first_entropy, u_entropy.to_host()));
  } else {
    EXPECT_TRUE(all_close(first_loss, to_double(u_loss.to_host()), Tolerance{1e-5, loss_rtol}));
    EXPECT_TRUE(all_close(first_lse, to_double(u_lse.to_host()), Tolerance{1e-5, loss_rtol}));
    EXPECT_TRUE(all_close(first_z, to_double(u_z.to_host()), Tolerance{1e-6, 3 * loss_rtol}));
    EXPECT_TRUE(all_close(first_entropy, to_double(u_entropy.to_host()),
                          Tolerance{1e-5 + loss_rtol, loss_rtol}));
  }
  const Tolerance grad_tol = tolerance_for<T>();
  EXPECT_TRUE(all_close(s_grad.to_host(), to_double(u_grad.to_host()),
                        Tolerance{grad_tol.atol, grad_tol.rtol}, vocab));

  // And the loss against the double reference directly.
  std::vector<double> logits(static_cast<std::size_t>(rows * vocab));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t k = 0; k < vocab; ++k)
      logits[r * vocab + k] = to_double(logits_host[r * ld + k]);
  const std::vector<double> weight(weight_host.begin(), weight_host.end());
  ref::CrossEntropyParams params;
  params.label_smoothing = c.smoothing;
  params.z_loss = c.z_loss;
  params.weight = c.weights ? weight.data() : nullptr;
  params.logit_softcap = c.softcap;
  params.logit_scale = c.logit_scale;
  std::vector<double> row_loss(rows);
  ref::cross_entropy(MatrixView<const double>(logits.data(), rows, vocab),
                     VectorView<const std::int64_t>(targets.data(), rows), params,
                     VectorView<double>(row_loss.data(), rows));
  std::vector<double> expected = row_loss;
  if (c.reduction != CrossEntropyReduction::none) {
    double total = 0.0;
    for (double v : row_loss) total += v;
    const double divisor =
        c.reduction == CrossEntropyReduction::mean
            ? ref::cross_entropy_mean_denominator(
                  VectorView<const std::int64_t>(targets.data(), rows), vocab, params)
            : 1.0;
    expected = {total / divisor};
  }
  EXPECT_TRUE(all_close(first_loss, expected, Tolerance{1e-4, loss_rtol}));
}

template <class T>
class CrossEntropyShards : public DeviceTest {};
using StorageTypes = ::testing::Types<float, __half, __nv_bfloat16>;
TYPED_TEST_SUITE(CrossEntropyShards, StorageTypes);

TYPED_TEST(CrossEntropyShards, UnevenSplitsMatchTheUnshardedOp) {
  using T = TypeParam;
  std::uint64_t seed = 7100;
  for (std::int64_t vocab : {1, 33, 1000, 50257}) {
    for (int shards : {1, 2, 3, 7}) {
      if (shards > vocab) continue;
#if defined(WARPFUSE_SIMT)
      const std::int64_t rows = vocab >= 50000 ? 3 : 13;
#else
      const std::int64_t rows = vocab >= 50000 ? 64 : 513;
#endif
      ShardCase plain{rows, vocab, shards};
      check_shards<T, std::int64_t>(plain, ++seed);
      ShardCase rich{rows, vocab, shards, CrossEntropyReduction::sum, 0.1f, 1e-3f, true, 3};
      rich.softcap = 3.0f;
      rich.separate = true;
      rich.in_place = true;
      check_shards<T, std::int32_t>(rich, ++seed);
      ShardCase none{rows, vocab, shards, CrossEntropyReduction::none};
      none.logit_scale = 0.5f;
      none.weights = true;
      none.ignored_every = 2;
      check_shards<T, std::int32_t>(none, ++seed);
    }
  }
}

/// Every traversal of the statistics and the gradient (forced strategies) on a few shapes.
TYPED_TEST(CrossEntropyShards, EveryStrategy) {
  using T = TypeParam;
  std::uint64_t seed = 7600;
  for (RowStrategy strategy :
       {RowStrategy::warp, RowStrategy::block, RowStrategy::online, RowStrategy::cluster}) {
    if (strategy == RowStrategy::cluster && device_info().compute_major < 9) continue;
    const std::int64_t vocab = strategy == RowStrategy::warp ? 1500 : 30000;
    ShardCase c{5, vocab, 3, CrossEntropyReduction::mean, 0.05f, 1e-4f, true, 4};
    c.softcap = 10.0f;
    c.strategy = strategy;
    check_shards<T, std::int64_t>(c, ++seed);
  }
}

class CrossEntropyShardEdges : public DeviceTest {};

/// A target no shard holds: NaN loss for that row, zero gradient, counted in the status; the
/// other rows unaffected; all rows ignored with mean gives 0.
TEST_F(CrossEntropyShardEdges, BadAndIgnoredTargets) {
  const std::int64_t rows = 3, vocab = 10;
  const std::vector<float> logits = random_values<float>(rows * vocab, 5, -2.0, 2.0);
  DeviceBuffer<float> d_logits = to_device(logits);
  DeviceBuffer<std::int64_t> d_targets = to_device(std::vector<std::int64_t>{4, 10, -100});
  DeviceBuffer<float> gathered(2 * rows * kCrossEntropyShardStats);
  DeviceBuffer<float> combined(rows * kCrossEntropyShardStats);
  const std::int64_t split = 6;
  CrossEntropyOptions options;
  options.reduction = CrossEntropyReduction::none;
  for (int s = 0; s < 2; ++s) {
    const std::int64_t v0 = s == 0 ? 0 : split, cols = s == 0 ? split : vocab - split;
    cross_entropy_shard_stats(
        MatrixView<const float>(d_logits.data() + v0, rows, cols, vocab), d_targets.vector(),
        CrossEntropyShard{v0, vocab},
        MatrixView<float>(gathered.data() + s * rows * kCrossEntropyShardStats, rows,
                          kCrossEntropyShardStats),
        options);
  }
  cross_entropy_shard_combine(MatrixView<const float>(gathered.data(), 2 * rows, 8), 2,
                              MatrixView<float>(combined.data(), rows, 8));
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(rows));
  const Workspace ws{workspace.data(), workspace.size()};
  DeviceBuffer<float> loss = poisoned_buffer<float>(rows);
  DeviceBuffer<float> grad = poisoned_buffer<float>(rows * split);
  CrossEntropyOutputs<float> out;
  out.loss = loss.vector();
  out.dlogits = MatrixView<float>(grad.data(), rows, split);
  cross_entropy_shard_finish(MatrixView<const float>(d_logits.data(), rows, split, vocab),
                             d_targets.vector(), CrossEntropyShard{0, vocab},
                             MatrixView<const float>(combined.data(), rows, 8), out, ws, options);
  const LossStatus status = read_loss_status(ws);
  EXPECT_EQ(status.bad_rows, 1);
  EXPECT_EQ(status.first_bad_row, 1);
  const std::vector<float> got = loss.to_host();
  EXPECT_TRUE(std::isfinite(got[0]) && got[0] > 0.0f);
  EXPECT_TRUE(std::isnan(got[1]));
  EXPECT_EQ(got[2], 0.0f);
  const std::vector<float> g = grad.to_host();
  for (std::int64_t k = 0; k < split; ++k) {
    EXPECT_EQ(g[1 * split + k], 0.0f);
    EXPECT_EQ(g[2 * split + k], 0.0f);
  }
  EXPECT_NE(g[0 * split + 4], 0.0f);
  // Every row ignored, mean: 0, not NaN.
  DeviceBuffer<std::int64_t> ignored = to_device(std::vector<std::int64_t>{-100, -100, -100});
  DeviceBuffer<float> mean_loss = poisoned_buffer<float>(1);
  CrossEntropyOptions mean;
  CrossEntropyOutputs<float> mean_out;
  mean_out.loss = mean_loss.vector();
  mean_out.dlogits = MatrixView<float>(grad.data(), rows, split);
  cross_entropy_shard_finish(MatrixView<const float>(d_logits.data(), rows, split, vocab),
                             ignored.vector(), CrossEntropyShard{0, vocab},
                             MatrixView<const float>(combined.data(), rows, 8), mean_out, ws, mean);
  EXPECT_EQ(mean_loss.to_host()[0], 0.0f);
  for (float v : grad.to_host()) EXPECT_EQ(v, 0.0f);
}

TEST_F(CrossEntropyShardEdges, BadArgumentsAreTypedErrors) {
  DeviceBuffer<float> logits(40);
  DeviceBuffer<std::int64_t> targets(4);
  DeviceBuffer<float> stats(4 * 8);
  DeviceBuffer<float> stats2(8 * 8);
  DeviceBuffer<float> loss(4);
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(4));
  const Workspace ws{workspace.data(), workspace.size()};
  const auto x = logits.view(4, 10);
  const MatrixView<float> s(stats.data(), 4, 8);
  const auto message = [](auto&& body) { return error_message(body); };
  EXPECT_THAT(message([&] {
                cross_entropy_shard_stats(x, targets.vector(), CrossEntropyShard{95, 100}, s);
              }),
              HasSubstr("cross_entropy_shard_stats: argument 'shard.vocab_begin': columns [95, "
                        "95 + 10) do not lie in a vocabulary of 100"));
  EXPECT_THAT(message([&] {
                cross_entropy_shard_stats(x, targets.vector(), CrossEntropyShard{0, 0}, s);
              }),
              HasSubstr("argument 'shard.vocab_size'"));
  EXPECT_THAT(message([&] {
                cross_entropy_shard_stats(x, targets.vector(), CrossEntropyShard{0, 10},
                                          MatrixView<float>(stats.data(), 4, 7));
              }),
              HasSubstr("argument 'stats': shape 4 x 7 is not 4 x 8"));
  EXPECT_THAT(message([&] {
                cross_entropy_shard_stats(x, targets.vector(), CrossEntropyShard{0, 10},
                                          MatrixView<float>(logits.data(), 4, 8));
              }),
              HasSubstr("argument 'stats': overlaps 'logits'"));
  EXPECT_THAT(
      message([&] {
        CrossEntropyOptions options;
        options.logit_softcap = -1.0f;
        cross_entropy_shard_stats(x, targets.vector(), CrossEntropyShard{0, 10}, s, options);
      }),
      HasSubstr("argument 'options.logit_softcap'"));
  EXPECT_THAT(message([&] {
                cross_entropy_shard_combine(MatrixView<const float>(stats2.data(), 8, 8), 0, s);
              }),
              HasSubstr("argument 'shards': shards = 0 must be positive"));
  EXPECT_THAT(message([&] {
                cross_entropy_shard_combine(MatrixView<const float>(stats2.data(), 8, 8), 3, s);
              }),
              HasSubstr("argument 'gathered': shape 8 x 8 is not 12 x 8"));
  CrossEntropyOutputs<float> out;
  out.loss = VectorView<float>(loss.data(), 1);
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = out;
                bad.correct = loss.vector();
                cross_entropy_shard_finish(x, targets.vector(), CrossEntropyShard{0, 10},
                                           MatrixView<const float>(s), bad, ws);
              }),
              HasSubstr("argument 'outputs.correct': argmax == target is not available"));
  EXPECT_THAT(message([&] {
                cross_entropy_shard_finish(x, targets.vector(), CrossEntropyShard{0, 10},
                                           MatrixView<const float>(stats.data(), 3, 8), out, ws);
              }),
              HasSubstr("argument 'combined': shape 3 x 8 is not 4 x 8"));
  EXPECT_THAT(message([&] {
                CrossEntropyOutputs<float> bad = out;
                bad.dlogits = MatrixView<float>(stats.data(), 4, 8);
                cross_entropy_shard_finish(logits.view(4, 8), targets.vector(),
                                           CrossEntropyShard{0, 10}, MatrixView<const float>(s),
                                           bad, ws);
              }),
              HasSubstr("argument 'outputs.dlogits': overlaps 'combined'"));
}

}  // namespace
}  // namespace warpfuse::test
