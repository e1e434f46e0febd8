// Traffic budgets (observed build only): what each op family's kernels move, per allocation,
// against the op's minimum (every input read once, every output written once), and the share of
// its row-array bytes moved by 128-bit accesses. The no-GPU counterpart of the benchmarks'
// copy-bandwidth fraction: a kernel that reads a row twice where its strategy promises once, or
// falls back to narrow accesses on an aligned row, fails here. The table is printed at the end
// (scripts/test shows it).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "simt/observer.h"
#include "warpfuse/activation.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/cross_entropy_shard.h"
#include "warpfuse/elementwise_loss.h"
#include "warpfuse/gemm.h"
#include "warpfuse/linear_cross_entropy.h"
#include "warpfuse/memory.h"
#include "warpfuse/softmax.h"

namespace warpfuse {
namespace {

/// Everything the launches of one op moved.
struct Moved {
  std::map<const void*, std::uint64_t> read;
  std::map<const void*, std::uint64_t> written;
  /// Bytes moved by 128-bit accesses and by all accesses, per allocation.
  std::map<const void*, std::uint64_t> vector_bytes;
  std::map<const void*, std::uint64_t> all_bytes;
  std::vector<std::string> kernels;
};

template <class F>
Moved measure(F&& op) {
  const std::size_t first = simt::observed_launches();
  op();
  Moved moved;
  for (const simt::LaunchTraffic& launch : simt::traffic_since(first)) {
    moved.kernels.push_back(launch.kernel);
    for (const simt::AllocationTraffic& a : launch.allocations) {
      moved.read[a.base] += a.bytes_read;
      moved.written[a.base] += a.bytes_written;
      moved.vector_bytes[a.base] += 16 * (a.loads[0] + a.stores[0]);
      for (int w = 0; w < simt::kAccessWidths; ++w) {
        moved.all_bytes[a.base] +=
            static_cast<std::uint64_t>(simt::kAccessBits[w] / 8) * (a.loads[w] + a.stores[w]);
      }
    }
  }
  return moved;
}

struct Row {
  std::string op, strategy, dtype, shape;
  double read_ratio, write_ratio, vector_share;
};
std::vector<Row>& table() {
  static std::vector<Row> rows;
  return rows;
}

template <class T>
const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>) return "f32";
  if constexpr (std::is_same_v<T, __half>) return "f16";
  return "bf16";
}

template <class T>
DeviceBuffer<T> random_buffer(std::size_t n, std::uint32_t seed, float low = -4.0f,
                              float high = 4.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<T> host(n);
  for (T& value : host) value = static_cast<T>(dist(rng));
  DeviceBuffer<T> buffer(n);
  WARPFUSE_CUDA_CHECK(
      cudaMemcpy(buffer.data(), host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  return buffer;
}

/// Records the row and checks reads == reads_min * reads_factor exactly per input (plus
/// `extra_first_read` bytes of the first), writes == minimum per output, and the share of the row
/// arrays' bytes (inputs and outputs) moved by 128-bit accesses at least `min_vector_share` (1 for
/// aligned rows without heads or tails).
void check(const std::string& op, const std::string& strategy, const std::string& dtype,
           const std::string& shape, const Moved& moved,
           const std::vector<std::pair<const void*, std::uint64_t>>& inputs,
           const std::vector<std::pair<const void*, std::uint64_t>>& outputs, double reads_factor,
           double min_vector_share, std::uint64_t extra_first_read = 0) {
  std::uint64_t min_read = 0, min_written = 0, read = 0, written = 0, vector = 0, all = 0;
  std::map<const void*, bool> counted;
  const auto count_widths = [&](const void* base) {
    if (counted[base]) return;
    counted[base] = true;
    vector += moved.vector_bytes.count(base) ? moved.vector_bytes.at(base) : 0;
    all += moved.all_bytes.count(base) ? moved.all_bytes.at(base) : 0;
  };
  for (const auto& [base, bytes] : inputs) {
    min_read += bytes;
    const std::uint64_t got = moved.read.count(base) ? moved.read.at(base) : 0;
    read += got;
    count_widths(base);
    const std::uint64_t extra = base == inputs.front().first ? extra_first_read : 0;
    EXPECT_EQ(static_cast<double>(got),
              reads_factor * static_cast<double>(bytes) + static_cast<double>(extra))
        << op << " " << strategy << " " << dtype << " " << shape << ": bytes read of an input";
  }
  for (const auto& [base, bytes] : outputs) {
    min_written += bytes;
    const std::uint64_t got = moved.written.count(base) ? moved.written.at(base) : 0;
    written += got;
    count_widths(base);
    EXPECT_EQ(got, bytes) << op << " " << strategy << " " << dtype << " " << shape
                          << ": bytes written of an output";
  }
  const double share = static_cast<double>(vector) / static_cast<double>(all);
  EXPECT_GE(share, min_vector_share) << op << " " << strategy << " " << dtype << " " << shape
                                     << ": share of bytes moved by 128-bit accesses";
  table().push_back(Row{op, strategy, dtype, shape,
                        static_cast<double>(read) / static_cast<double>(min_read),
                        static_cast<double>(written) / static_cast<double>(min_written), share});
}

std::string shape_of(std::int64_t rows, std::int64_t cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

// --- softmax -------------------------------------------------------------------------------------

/// The share of a row's bytes its body moves (the rest is the scalar head and tail): the rows of a
/// matrix at element `offset` of a 16-byte aligned allocation with row stride ld, every array of
/// the op laid out alike.
template <class T>
double body_share(std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t offset) {
  constexpr std::int64_t kPack = 16 / sizeof(T);
  std::int64_t body = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t start = offset + r * ld;
    std::int64_t head = (kPack - start % kPack) % kPack;
    if (head > cols) head = cols;
    body += (cols - head) / kPack * kPack;
  }
  return static_cast<double>(body) / static_cast<double>(rows * cols);
}

template <class T>
void softmax_case(std::int64_t rows, std::int64_t cols, SoftmaxStrategy strategy,
                  std::int64_t ld = 0, std::int64_t offset = 0) {
  if (ld == 0) ld = cols;
  const std::size_t n = static_cast<std::size_t>(offset + rows * ld);
  DeviceBuffer<T> x = random_buffer<T>(n, 1), y(n), dy = random_buffer<T>(n, 2), dx(n);
  SoftmaxOptions options;
  options.strategy = strategy;
  const std::uint64_t bytes = static_cast<std::uint64_t>(rows * cols) * sizeof(T);
  const double passes = strategy == SoftmaxStrategy::online ? 2.0 : 1.0;
  const double share = body_share<T>(rows, cols, ld, offset) - 1e-9;
  std::string shape = shape_of(rows, cols);
  if (ld != cols || offset != 0)
    shape += " ld " + std::to_string(ld) + " +" + std::to_string(offset);
  const Moved forward = measure([&] {
    softmax(MatrixView<const T>(x.data() + offset, rows, cols, ld),
            MatrixView<T>(y.data() + offset, rows, cols, ld), options);
  });
  check("softmax", to_string(strategy), dtype_name<T>(), shape, forward, {{x.data(), bytes}},
        {{y.data(), bytes}}, passes, share);
  const Moved backward = measure([&] {
    softmax_backward(MatrixView<const T>(y.data() + offset, rows, cols, ld),
                     MatrixView<const T>(dy.data() + offset, rows, cols, ld),
                     MatrixView<T>(dx.data() + offset, rows, cols, ld), options);
  });
  // The online backward reads y and dy for the row's dot product, then both again for dx.
  check("softmax_backward", to_string(strategy), dtype_name<T>(), shape, backward,
        {{y.data(), bytes}, {dy.data(), bytes}}, {{dx.data(), bytes}}, passes, share);
}

TEST(Traffic, SoftmaxReadsOnceWritesOnce) {
  ASSERT_TRUE(simt::observing());
  softmax_case<float>(64, 1024, SoftmaxStrategy::warp);
  softmax_case<float>(16, 4096, SoftmaxStrategy::block);
  softmax_case<float>(16, 4096, SoftmaxStrategy::online);
  softmax_case<__nv_bfloat16>(64, 1024, SoftmaxStrategy::warp);
  softmax_case<__nv_bfloat16>(16, 4096, SoftmaxStrategy::block);
  softmax_case<__nv_bfloat16>(16, 4096, SoftmaxStrategy::online);
}

/// The cluster strategy: each block of a row's cluster reads its slice once and writes it once,
/// the exchange goes through distributed shared memory (racechecked here across the blocks).
TEST(Traffic, SoftmaxClusterReadsOnceWritesOnce) {
  softmax_case<float>(3, 65536, SoftmaxStrategy::cluster);
  softmax_case<__nv_bfloat16>(2, 100003, SoftmaxStrategy::cluster);
  softmax_case<__half>(4, 20000, SoftmaxStrategy::cluster, 20003, 1);
}

/// Rows whose start is not 16-byte aligned (odd ld, a view one element in, GPT-2's 50257
/// vocabulary) keep 128-bit accesses for every row's body; short rows move whole packs.
TEST(Traffic, SoftmaxAnyAlignmentAndShortRowsKeepTheVectorPath) {
  softmax_case<__nv_bfloat16>(6, 50257, SoftmaxStrategy::block);  // the backward caches two rows
  softmax_case<float>(6, 50257, SoftmaxStrategy::online);
  softmax_case<float>(16, 1000, SoftmaxStrategy::warp, 1003, 1);
  softmax_case<__half>(16, 777, SoftmaxStrategy::warp, 777, 3);
  softmax_case<__nv_bfloat16>(256, 8, SoftmaxStrategy::warp);  // one pack per row
  softmax_case<float>(256, 10, SoftmaxStrategy::warp);         // 1M x 10 in miniature: 80% body
  softmax_case<float>(8, 4099, SoftmaxStrategy::block, 4099, 2);
}

// --- cross-entropy -------------------------------------------------------------------------------

template <class T>
void cross_entropy_case(std::int64_t rows, std::int64_t cols, SoftmaxStrategy strategy,
                        bool in_place, std::int64_t ld = 0, std::int64_t offset = 0,
                        float softcap = 0.0f) {
  if (ld == 0) ld = cols;
  const std::size_t n = static_cast<std::size_t>(offset + rows * ld);
  DeviceBuffer<T> logits = random_buffer<T>(n, 3), grad(n);
  std::vector<int> host_targets(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r)
    host_targets[static_cast<std::size_t>(r)] = static_cast<int>((r * 7) % cols);
  DeviceBuffer<int> targets(host_targets.size());
  WARPFUSE_CUDA_CHECK(cudaMemcpy(targets.data(), host_targets.data(),
                                 host_targets.size() * sizeof(int), cudaMemcpyHostToDevice));
  DeviceBuffer<float> loss(1);
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(rows));
  CrossEntropyOptions options;
  options.strategy = strategy;
  options.logit_softcap = softcap;
  CrossEntropyOutputs<T> outputs;
  outputs.loss = VectorView<float>(loss.data(), 1);
  T* dlogits = (in_place ? logits.data() : grad.data()) + offset;
  outputs.dlogits = MatrixView<T>(dlogits, rows, cols, ld);
  const Moved moved = measure([&] {
    cross_entropy(MatrixView<const T>(logits.data() + offset, rows, cols, ld),
                  VectorView<const int>(targets.data(), rows), outputs,
                  Workspace{workspace.data(), workspace.size()}, options);
  });
  const std::uint64_t bytes = static_cast<std::uint64_t>(rows * cols) * sizeof(T);
  const bool online = strategy == SoftmaxStrategy::online;
  const double passes = online ? 2.0 : 1.0;
  // The targets (one index per row) and the workspace's per-row partials are the other traffic;
  // in place, the logits' allocation is read once and written once. The online strategy's row
  // leader reads the target logit once per row (the others pick it up from the row as it passes).
  std::string shape = shape_of(rows, cols);
  if (ld != cols || offset != 0)
    shape += " ld " + std::to_string(ld) + " +" + std::to_string(offset);
  const std::uint64_t extra = online ? static_cast<std::uint64_t>(rows) * sizeof(T) : 0;
  // Bytes of the row arrays' accesses (reads of every pass, the write), for the scalar target
  // reads' dilution of the 128-bit share.
  const double moved_bytes = (passes + 1.0) * static_cast<double>(bytes);
  const std::string op = std::string(softcap > 0.0f ? "cross_entropy_softcap" : "cross_entropy") +
                         (in_place ? " (in place)" : "");
  check(op, to_string(strategy), dtype_name<T>(), shape, moved, {{logits.data(), bytes}},
        {{in_place ? logits.data() : grad.data(), bytes}}, passes,
        body_share<T>(rows, cols, ld, offset) * moved_bytes / (moved_bytes + extra) - 1e-9, extra);
}

/// Probability targets are the engine's second input: read once (twice online) by 128-bit
/// accesses like the logits.
template <class T>
void cross_entropy_probability_case(std::int64_t rows, std::int64_t cols,
                                    SoftmaxStrategy strategy) {
  const std::size_t n = static_cast<std::size_t>(rows * cols);
  DeviceBuffer<T> logits = random_buffer<T>(n, 11), probs = random_buffer<T>(n, 12, 0.0f, 1.0f),
                  grad(n);
  DeviceBuffer<float> loss(1);
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(rows));
  CrossEntropyOptions options;
  options.strategy = strategy;
  CrossEntropyOutputs<T> outputs;
  outputs.loss = VectorView<float>(loss.data(), 1);
  outputs.dlogits = MatrixView<T>(grad.data(), rows, cols);
  const Moved moved = measure([&] {
    cross_entropy(MatrixView<const T>(logits.data(), rows, cols),
                  MatrixView<const T>(probs.data(), rows, cols), outputs,
                  Workspace{workspace.data(), workspace.size()}, options);
  });
  const std::uint64_t bytes = n * sizeof(T);
  check("cross_entropy (probabilities)", to_string(strategy), dtype_name<T>(), shape_of(rows, cols),
        moved, {{logits.data(), bytes}, {probs.data(), bytes}}, {{grad.data(), bytes}},
        strategy == SoftmaxStrategy::online ? 2.0 : 1.0, 1.0);
}

TEST(Traffic, CrossEntropyReadsTheLogitsOnceAndWritesTheGradientOnce) {
  cross_entropy_case<float>(64, 1024, SoftmaxStrategy::warp, false);
  cross_entropy_case<float>(16, 4096, SoftmaxStrategy::block, false);
  cross_entropy_case<float>(16, 4096, SoftmaxStrategy::block, true);
  cross_entropy_case<float>(16, 4096, SoftmaxStrategy::online, false);
  cross_entropy_case<__nv_bfloat16>(64, 1024, SoftmaxStrategy::warp, true);
  cross_entropy_case<__nv_bfloat16>(16, 8192, SoftmaxStrategy::block, false);
  cross_entropy_case<__nv_bfloat16>(16, 8192, SoftmaxStrategy::online, true);
  cross_entropy_probability_case<float>(32, 1024, SoftmaxStrategy::warp);
  cross_entropy_probability_case<__nv_bfloat16>(8, 4096, SoftmaxStrategy::block);
  cross_entropy_probability_case<__half>(8, 4096, SoftmaxStrategy::online);
}

TEST(Traffic, CrossEntropyClusterReadsTheLogitsOnceAndWritesTheGradientOnce) {
  cross_entropy_case<__nv_bfloat16>(2, 131072, SoftmaxStrategy::cluster, true);
  cross_entropy_case<float>(3, 65536, SoftmaxStrategy::cluster, false);
  cross_entropy_case<__half>(2, 50257, SoftmaxStrategy::cluster, true);
  cross_entropy_probability_case<__nv_bfloat16>(2, 65536, SoftmaxStrategy::cluster);
}

TEST(Traffic, CrossEntropyAnyAlignmentAndShortRowsKeepTheVectorPath) {
  cross_entropy_case<__nv_bfloat16>(4, 50257, SoftmaxStrategy::block, true);
  cross_entropy_case<float>(4, 50257, SoftmaxStrategy::block, false);
  cross_entropy_case<__nv_bfloat16>(3, 50257, SoftmaxStrategy::online, false);
  cross_entropy_case<float>(512, 10, SoftmaxStrategy::warp, false);  // 1M x 10 in miniature
  cross_entropy_case<__nv_bfloat16>(512, 8, SoftmaxStrategy::warp, true);
  cross_entropy_case<__half>(16, 999, SoftmaxStrategy::warp, true, 1001, 5);
}

/// The softcap rides on the same pass: the same bytes as without it, in every strategy (the
/// block strategy's fp32 cache keeps z' instead of the exponentials; nothing more is read).
TEST(Traffic, CrossEntropySoftcapMovesWhatCrossEntropyMoves) {
  cross_entropy_case<__nv_bfloat16>(64, 1024, SoftmaxStrategy::warp, true, 0, 0, 30.0f);
  cross_entropy_case<__nv_bfloat16>(16, 8192, SoftmaxStrategy::block, true, 0, 0, 30.0f);
  cross_entropy_case<float>(16, 4096, SoftmaxStrategy::block, false, 0, 0, 30.0f);
  cross_entropy_case<__nv_bfloat16>(16, 8192, SoftmaxStrategy::online, true, 0, 0, 30.0f);
  cross_entropy_case<__nv_bfloat16>(2, 131072, SoftmaxStrategy::cluster, true, 0, 0, 30.0f);
}

/// Vocabulary-parallel cross-entropy: the statistics pass reads the shard's logits once (online:
/// once more for the entropy's moment, and the row leaders' target reads are none here: the target
/// is compared as the row passes); the finish's gradient pass reads them once and writes dlogits
/// once in every strategy (nothing to normalise: the online traversal's first pass is gone).
template <class T>
void shard_case(std::int64_t rows, std::int64_t cols, SoftmaxStrategy strategy, bool in_place) {
  const std::size_t n = static_cast<std::size_t>(rows * cols);
  DeviceBuffer<T> logits = random_buffer<T>(n, 6), grad(n);
  std::vector<std::int64_t> host_targets(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) host_targets[r] = 1000 + (r * 7) % cols;
  DeviceBuffer<std::int64_t> targets(host_targets.size());
  WARPFUSE_CUDA_CHECK(cudaMemcpy(targets.data(), host_targets.data(),
                                 host_targets.size() * sizeof(std::int64_t),
                                 cudaMemcpyHostToDevice));
  DeviceBuffer<float> stats(static_cast<std::size_t>(rows * kCrossEntropyShardStats));
  DeviceBuffer<float> combined(static_cast<std::size_t>(rows * kCrossEntropyShardStats));
  DeviceBuffer<float> loss(1);
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(rows));
  CrossEntropyOptions options;
  options.strategy = strategy;
  options.logit_softcap = 20.0f;
  const CrossEntropyShard shard{1000, 1000 + cols + 17};  // a middle shard of a larger vocabulary
  const MatrixView<const T> view(logits.data(), rows, cols);
  const MatrixView<float> stats_view(stats.data(), rows, kCrossEntropyShardStats);
  const VectorView<const std::int64_t> target_view(targets.data(), rows);
  const Moved first =
      measure([&] { cross_entropy_shard_stats(view, target_view, shard, stats_view, options); });
  const std::uint64_t bytes = n * sizeof(T);
  const bool online = strategy == SoftmaxStrategy::online;
  const double passes = online ? 2.0 : 1.0;
  // The statistics are 8 floats per row stored one by one by the row's leader: the logits move by
  // 128-bit accesses only.
  const auto stats_bytes = static_cast<std::uint64_t>(rows * kCrossEntropyShardStats) * 4;
  const double logits_moved = passes * static_cast<double>(bytes);
  check("cross_entropy_shard_stats", to_string(strategy), dtype_name<T>(), shape_of(rows, cols),
        first, {{logits.data(), bytes}}, {{stats.data(), stats_bytes}}, passes,
        logits_moved / (logits_moved + static_cast<double>(stats_bytes)) - 1e-9);
  cross_entropy_shard_combine(MatrixView<const float>(stats_view), 1,
                              MatrixView<float>(combined.data(), rows, kCrossEntropyShardStats));
  CrossEntropyOutputs<T> outputs;
  outputs.loss = VectorView<float>(loss.data(), 1);
  outputs.dlogits = MatrixView<T>(in_place ? logits.data() : grad.data(), rows, cols);
  const Moved second = measure([&] {
    cross_entropy_shard_finish(
        view, target_view, shard,
        MatrixView<const float>(combined.data(), rows, kCrossEntropyShardStats), outputs,
        Workspace{workspace.data(), workspace.size()}, options);
  });
  check(in_place ? "cross_entropy_shard_finish (in place)" : "cross_entropy_shard_finish",
        to_string(strategy), dtype_name<T>(), shape_of(rows, cols), second,
        {{logits.data(), bytes}}, {{in_place ? logits.data() : grad.data(), bytes}}, 1.0, 1.0);
}

TEST(Traffic, CrossEntropyShardsReadTheShardOnceAndWriteItsGradientOnce) {
  shard_case<__nv_bfloat16>(64, 1024, SoftmaxStrategy::warp, true);
  shard_case<float>(16, 4096, SoftmaxStrategy::block, false);
  shard_case<__nv_bfloat16>(16, 8192, SoftmaxStrategy::online, true);
  shard_case<__half>(2, 65536, SoftmaxStrategy::cluster, false);
}

/// Chunked linear + cross-entropy: its GEMMs are cuBLAS's (host work here, not kernel traffic);
/// its own kernels are cross-entropy's row engine over each chunk's logits in the workspace (the
/// budgets above) and the T copies of the fp32 gradients, which must read each fp32 gradient once
/// and write its copy once, by 128-bit accesses where the rows are aligned.
template <class T>
void linear_copies_case(std::int64_t rows, std::int64_t d, std::int64_t vocab) {
  DeviceBuffer<T> hidden = random_buffer<T>(static_cast<std::size_t>(rows * d), 7, -1.0f, 1.0f);
  DeviceBuffer<T> weight = random_buffer<T>(static_cast<std::size_t>(vocab * d), 8, -0.5f, 0.5f);
  DeviceBuffer<T> bias = random_buffer<T>(static_cast<std::size_t>(vocab), 9);
  std::vector<std::int64_t> host_targets(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) host_targets[r] = (r * 13) % vocab;
  DeviceBuffer<std::int64_t> targets = to_device(host_targets);
  DeviceBuffer<float> loss(1), dh(static_cast<std::size_t>(rows * d)),
      dw(static_cast<std::size_t>(vocab * d)), db(static_cast<std::size_t>(vocab));
  DeviceBuffer<T> dh16(dh.size()), dw16(dw.size()), db16(db.size());
  DeviceBuffer<unsigned char> workspace(
      linear_cross_entropy_workspace_bytes(rows, vocab, dtype_of<T>(), 8));
  LinearCrossEntropyOutputs<T> out;
  out.loss = loss.vector();
  out.dhidden = MatrixView<float>(dh.data(), rows, d);
  out.dweight = MatrixView<float>(dw.data(), vocab, d);
  out.dbias = db.vector();
  out.dhidden_copy = MatrixView<T>(dh16.data(), rows, d);
  out.dweight_copy = MatrixView<T>(dw16.data(), vocab, d);
  out.dbias_copy = db16.vector();
  LinearCrossEntropyOptions options;
  options.chunk_rows = 8;
  Blas blas;
  const Moved moved = measure([&] {
    linear_cross_entropy(blas, MatrixView<const T>(hidden.data(), rows, d),
                         MatrixView<const T>(weight.data(), vocab, d),
                         VectorView<const T>(bias.data(), vocab),
                         VectorView<const std::int64_t>(targets.data(), rows), out,
                         Workspace{workspace.data(), workspace.size()}, options);
  });
  check("linear_cross_entropy copies", "-", dtype_name<T>(),
        shape_of(rows, d) + "," + std::to_string(vocab), moved,
        {{dh.data(), dh.bytes()}, {dw.data(), dw.bytes()}, {db.data(), db.bytes()}},
        {{dh16.data(), dh16.bytes()}, {dw16.data(), dw16.bytes()}, {db16.data(), db16.bytes()}},
        1.0, 1.0);
  // The inputs and the gradients' fp32 buffers are never touched by a kernel but the copies; the
  // logits live in the workspace.
  EXPECT_EQ(moved.read.count(hidden.data()) ? moved.read.at(hidden.data()) : 0, 0u);
  EXPECT_EQ(moved.written.count(dh.data()) ? moved.written.at(dh.data()) : 0, 0u);
}

TEST(Traffic, LinearCrossEntropyCopiesReadOnceWriteOnce) {
  linear_copies_case<__nv_bfloat16>(20, 64, 1000);
  linear_copies_case<float>(20, 32, 512);
}

// --- activations
// -----------------------------------------------------------------------------------

template <class T>
void bias_activation_case(std::int64_t rows, std::int64_t cols) {
  const std::size_t n = static_cast<std::size_t>(rows * cols);
  DeviceBuffer<T> x = random_buffer<T>(n, 4), y(n), pre(n);
  DeviceBuffer<T> bias = random_buffer<T>(static_cast<std::size_t>(cols), 5);
  ActivationParams params;
  params.kind = Activation::gelu;
  const Moved moved = measure([&] {
    bias_activation_forward(MatrixView<const T>(x.data(), rows, cols),
                            VectorView<const T>(bias.data(), cols),
                            BiasActivationOutputs<T>{MatrixView<T>(y.data(), rows, cols),
                                                     MatrixView<T>(pre.data(), rows, cols)},
                            params);
  });
  const std::uint64_t bytes = n * sizeof(T);
  check("bias_gelu_forward", "tiled", dtype_name<T>(), shape_of(rows, cols), moved,
        {{x.data(), bytes}}, {{y.data(), bytes}, {pre.data(), bytes}}, 1.0, 1.0);
  // The bias is read once per thread of a tile (8 per column and chunk of >= 64 rows), not once
  // per element of x as a flat traversal does: at most an eighth of x's bytes.
  const std::uint64_t bias_read = moved.read.count(bias.data()) ? moved.read.at(bias.data()) : 0;
  EXPECT_GT(bias_read, 0u);
  EXPECT_LE(bias_read, bytes / 8) << "bias read more than once per tile thread";
}

/// Rows that start one element past a 16-byte boundary: a scalar head and tail per row, 128-bit
/// accesses for the rest.
template <class T>
void unaligned_activation_case(std::int64_t rows, std::int64_t cols) {
  constexpr std::int64_t kPack = 16 / sizeof(T);
  const std::int64_t ld = cols + kPack;
  const std::size_t n = static_cast<std::size_t>(rows * ld + kPack);
  DeviceBuffer<T> x = random_buffer<T>(n, 8), y = random_buffer<T>(n, 9);
  ActivationParams params;
  params.kind = Activation::silu;
  const Moved moved = measure([&] {
    activation_forward(MatrixView<const T>(x.data() + 1, rows, cols, ld),
                       MatrixView<T>(y.data() + 1, rows, cols, ld), params);
  });
  const std::uint64_t bytes = static_cast<std::uint64_t>(rows * cols) * sizeof(T);
  // Head: kPack - 1 elements; tail: (cols - head) % kPack.
  const std::int64_t head = kPack - 1, tail = (cols - head) % kPack;
  const double narrow = static_cast<double>(head + tail) / static_cast<double>(cols);
  check("silu_forward (offset 1)", "flat", dtype_name<T>(), shape_of(rows, cols), moved,
        {{x.data(), bytes}}, {{y.data(), bytes}}, 1.0, 1.0 - narrow - 1e-9);
}

TEST(Traffic, BiasActivationReadsXOnceAndWritesYAndPreOnce) {
  bias_activation_case<float>(64, 1024);
  bias_activation_case<__nv_bfloat16>(64, 1024);
  unaligned_activation_case<float>(32, 1000);
  unaligned_activation_case<__nv_bfloat16>(32, 1000);
}

// --- elementwise losses
// ---------------------------------------------------------------------------

/// MSE over rows x cols at element `offset` with row stride ld (0: cols), every array alike: one
/// read of pred and target, one write of dpred and (reduction none) of the fp32 loss, the bodies
/// by 128-bit accesses whatever the alignment.
template <class T>
void mse_case(std::int64_t rows, std::int64_t cols, bool per_element = false, std::int64_t ld = 0,
              std::int64_t offset = 0) {
  if (ld == 0) ld = cols;
  const std::size_t n = static_cast<std::size_t>(offset + rows * ld);
  DeviceBuffer<T> pred = random_buffer<T>(n, 6), target = random_buffer<T>(n, 7), dpred(n);
  DeviceBuffer<float> loss(per_element ? n : 1);
  DeviceBuffer<unsigned char> workspace(elementwise_loss_workspace_bytes(rows));
  ElementwiseLossOutputs<T> outputs;
  outputs.loss = per_element ? MatrixView<float>(loss.data() + offset, rows, cols, ld)
                             : MatrixView<float>(loss.data(), 1, 1);
  outputs.dpred = MatrixView<T>(dpred.data() + offset, rows, cols, ld);
  ElementwiseLossOptions options;
  options.reduction = per_element ? Reduction::none : Reduction::mean;
  const Moved moved = measure([&] {
    mse_loss(MatrixView<const T>(pred.data() + offset, rows, cols, ld),
             MatrixView<const T>(target.data() + offset, rows, cols, ld), outputs,
             Workspace{workspace.data(), workspace.size()}, options);
  });
  const std::uint64_t bytes = static_cast<std::uint64_t>(rows * cols) * sizeof(T);
  std::vector<std::pair<const void*, std::uint64_t>> written = {{dpred.data(), bytes}};
  if (per_element) {
    written.push_back({loss.data(), static_cast<std::uint64_t>(rows * cols) * sizeof(float)});
  }
  std::string shape = shape_of(rows, cols) + (per_element ? " none" : " mean");
  if (ld != cols || offset != 0)
    shape += " ld " + std::to_string(ld) + " +" + std::to_string(offset);
  check("mse_loss", "stream", dtype_name<T>(), shape, moved,
        {{pred.data(), bytes}, {target.data(), bytes}}, written, 1.0,
        body_share<T>(rows, cols, ld, offset) - 1e-9);
}

TEST(Traffic, ElementwiseLossReadsBothInputsOnce) {
  mse_case<float>(64, 1024);
  mse_case<__nv_bfloat16>(16, 8192);
  mse_case<float>(64, 1024, true);
}

TEST(Traffic, ElementwiseLossAnyAlignmentAndShortRowsKeepTheVectorPath) {
  mse_case<float>(512, 10);  // 1M x 10 in miniature: rows share a warp, packs across row ends
  mse_case<__nv_bfloat16>(512, 8, true);      // one pack per row
  mse_case<float>(19, 300, true, 303, 1);     // odd ld, unaligned start: head, body, tail per row
  mse_case<__half>(7, 1500, false, 1501, 5);  // block per row
  mse_case<__nv_bfloat16>(3, 50257, true);    // GPT-2's vocabulary
}

/// Prints the table of ratios after the tests that filled it (ctest runs them one per process,
/// scripts/test all together).
class TrafficTable : public ::testing::Environment {
 public:
  void TearDown() override {
    if (table().empty()) return;
    std::printf("\n%-26s %-10s %-5s %-10s %10s %11s %14s\n", "op", "strategy", "dtype", "shape",
                "read/min", "written/min", "128-bit bytes");
    for (const Row& row : table()) {
      std::printf("%-26s %-10s %-5s %-10s %10.3f %11.3f %13.1f%%\n", row.op.c_str(),
                  row.strategy.c_str(), row.dtype.c_str(), row.shape.c_str(), row.read_ratio,
                  row.write_ratio, 100.0 * row.vector_share);
    }
  }
};
const ::testing::Environment* const kTrafficTable =
    ::testing::AddGlobalTestEnvironment(new TrafficTable);

}  // namespace
}  // namespace warpfuse
