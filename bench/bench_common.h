// warpfuse benchmarks — the harness every bench/<op>_bench.cu is built on (Google Benchmark).
//
// What a measurement is:
//   - Each benchmark is one (op, dtype, implementation, row length) case over a row-major matrix of
//     `rows` x `cols` elements, rows chosen so that one launch moves at least --min-mib (default
//     256 MiB): bytes moved = every input read once plus every output written once, the least any
//     implementation must move. GB/s = bytes moved / time, so an implementation that reads its
//     input three times (the naive baselines) shows as a lower effective bandwidth.
//   - Inputs are random and non-zero, generated on the device. The outputs of set 0 are poisoned
//     (NaN bytes), the implementation runs once, and sampled rows (the first, the last and some in
//     between) are compared against the double-precision CPU reference (warpfuse::ref) before any
//     timing; a mismatch skips the case with the first wrong element in the error message.
//   - Timing: CUDA events around each launch on the harness's stream (one repeat = one launch,
//     synchronised), after warm-up launches. Repeats rotate over `sets` copies of the inputs and
//     outputs, enough that the other sets together exceed twice the L2, so no repeat finds its
//     data in cache. The reported figure is the median of the repeats.
//   - The copy-bandwidth reference is measured in the same process the same way: a large
//     device-to-device cudaMemcpyAsync, counting the bytes read plus the bytes written. Every case
//     reports its median GB/s as a fraction of it (`copy_fraction`), a ratio that holds across
//     GPUs.
//
// Names: "<op>/<dtype>/<impl>/<cols>" (Google Benchmark appends "/iterations:N/manual_time").
// Counters of every case: rows, cols, sets, bytes (moved per launch), GBps (median), copy_fraction,
// median_us, min_us. JSON context fields: see record_context() in bench_common.cu.
//
// Without a CUDA device, bench_main prints why and returns 0, so build machines can run every
// bench binary (scripts/test does).
//
// Adding an op family (bench/<op>_bench.cu, picked up by bench/CMakeLists.txt, which also builds it
// against the SIMT emulator for the bench.emulated.<op>_bench test): for each case, add_case(
// case_name(op, dtype, impl, cols), body) where body sizes the matrix with rows_for, allocates
// RotatingTensors, fills inputs with fill_uniform, poisons and runs the output of set 0, checks
// sample_rows/copy_rows against warpfuse::ref with compare_rows (SkipWithError on a mismatch), sets
// the rows/cols/sets counters and ends with time_case; main returns bench_main(argc, argv,
// "<op>_bench", register_cases). softmax_bench.cu is the worked example, naive baseline included.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "host/cuda/launch.h"
#include "kernels/common/convert.cuh"
#include "tests/tolerance.h"
#include "warpfuse/device.h"
#include "warpfuse/dtype.h"
#include "warpfuse/error.h"

namespace warpfuse::bench {

// --- settings --------------------------------------------------------------------------------

/// The harness's settings, from its own command-line flags (bench_main strips them before Google
/// Benchmark sees the rest):
///   --quick          2 warm-ups and 10 repeats per case (the defaults are 5 and 50)
///   --repeats=N      timed launches per case; the median is reported
///   --warmup=N       untimed launches before the repeats
///   --min-mib=X      each launch moves at least X MiB (default 256; fractions allowed)
///   --sets=N         rotate over N copies of the data (default: enough to exceed twice the L2;
///                    --sets=1 measures with whatever the L2 still holds)
///   --rows-sweep     register only the rows x cols sweep of the long-row ops (rows_sweep_shapes)
///   --sweep-cols=A,B,...  --sweep-rows=A,B,...   that sweep's axes (defaults below)
struct Config {
  int warmup = 5;
  int repeats = 50;
  std::size_t min_bytes = std::size_t{256} << 20;
  int sets = 0;  ///< 0: rotation_sets() decides
  bool quick = false;
  bool rows_sweep = false;
  std::vector<std::int64_t> sweep_cols;  ///< empty: kRowsSweepCols
  std::vector<std::int64_t> sweep_rows;  ///< empty: kRowsSweepRows
};

/// The rows x cols sweep's default axes: the long rows of large vocabularies (16K..256K columns,
/// where a row outgrows one block's shared memory) from a single row (one cluster, most SMs idle)
/// to 16384 rows (every SM busy many times over); 4096 and 8192 are the target shapes.
inline constexpr std::int64_t kRowsSweepCols[] = {16384, 32768, 65536, 131072, 262144};
inline constexpr std::int64_t kRowsSweepRows[] = {1, 16, 128, 1024, 4096, 8192, 16384};

/// The settings in force (valid once bench_main has parsed the flags).
const Config& config();

/// The stream every benchmark launches on (created on first use).
cudaStream_t stream();

/// The device-to-device copy bandwidth measured at start-up, in GB/s (1e9 bytes per second),
/// counting bytes read plus bytes written.
double copy_bandwidth_gbps();

// --- registration ------------------------------------------------------------------------------

/// "<op>/<dtype>/<impl>/<cols>": the name every case is registered under. plot.py,
/// compare_torch.py and summary.py split it on '/'.
std::string case_name(const std::string& op, DType dtype, const std::string& impl,
                      std::int64_t cols);

/// "<op>/<dtype>/<impl>/<cols>/rows=<rows>": a case of the rows x cols sweep, whose row count is
/// part of the shape instead of following from --min-mib. bench_results.py reads the fifth field.
std::string case_name(const std::string& op, DType dtype, const std::string& impl,
                      std::int64_t cols, std::int64_t rows);

/// The row lengths every op family sweeps: 32, 64, ..., 262144.
std::vector<std::int64_t> sweep_cols();

/// The (cols, rows) shapes of the rows x cols sweep (--rows-sweep): every --sweep-cols value with
/// every --sweep-rows value, the defaults kRowsSweepCols x kRowsSweepRows.
std::vector<std::pair<std::int64_t, std::int64_t>> rows_sweep_shapes();

/// Registers `body` as a case with the harness's settings: --repeats iterations, manual (event)
/// time in microseconds. Exceptions from `body` become a skipped case with their message, so one
/// failing case does not end the run. A case skipped with a message that starts with
/// kUnsupported (warpfuse::Unsupported, a baseline that does not offer the dtype) is not a
/// failure; any other skip is, and makes bench_main return 1 after the whole run.
benchmark::internal::Benchmark* add_case(const std::string& name,
                                         std::function<void(benchmark::State&)> body);

/// Prefix of the skip message of a case that cannot run here (see add_case).
constexpr const char* kUnsupported = "unsupported: ";

/// The main of every bench binary: parses the harness's flags and Google Benchmark's, prints why
/// and returns 0 when no CUDA device is present, otherwise measures the copy bandwidth, records the
/// JSON context, registers the copy reference and then calls `register_cases`, runs everything
/// with the console table, and prints the summary tables (fraction of copy bandwidth per op,
/// dtype, implementation and row length). Returns 0, or 1 when a case failed (its correctness
/// check, or an error), 2 for bad flags. `program` names the binary in messages.
int bench_main(int argc, char** argv, const char* program,
               const std::function<void()>& register_cases);

/// Adds a key to the JSON "context" object (call from register_cases, e.g. a library version).
void add_context(const std::string& key, const std::string& value);

// --- memory and inputs -----------------------------------------------------------------------

/// Device memory shared by all cases of the process (one case runs at a time), grown on demand;
/// the pointer stays valid until the next call asks for more. Avoids a cudaMalloc per case. A size
/// the device cannot allocate throws Unsupported (the case is reported as not fitting this GPU,
/// which is not a failure: the largest sweep shapes need 48 GiB).
void* scratch(std::size_t bytes);

/// How many copies of a case's data, `set_bytes` each, the repeats rotate over: --sets when given,
/// otherwise at least 2 and enough that the other sets together exceed twice the L2, so a set is
/// always evicted before it is used again.
int rotation_sets(std::size_t set_bytes);

/// `tensors` device arrays of `elements` T each, times rotation_sets() copies, carved out of the
/// scratch memory (each array 256-byte aligned). at(set, i) is array i of copy `set`.
template <class T>
class RotatingTensors {
 public:
  RotatingTensors(int tensors, std::size_t elements)
      : tensors_(tensors),
        elements_(elements),
        stride_((elements * sizeof(T) + 255) / 256 * 256),
        sets_(rotation_sets(stride_ * static_cast<std::size_t>(tensors))),
        base_(static_cast<unsigned char*>(scratch(stride_ * static_cast<std::size_t>(tensors) *
                                                  static_cast<std::size_t>(sets_)))) {}
  int sets() const { return sets_; }
  int tensors() const { return tensors_; }
  std::size_t elements() const { return elements_; }
  T* at(int set, int tensor) const {
    return reinterpret_cast<T*>(base_ +
                                (static_cast<std::size_t>(set) * tensors_ + tensor) * stride_);
  }

 private:
  int tensors_;
  std::size_t elements_;
  std::size_t stride_;
  int sets_;
  unsigned char* base_;
};

/// Fills data[0, n) on stream() with values uniform in [low, high), never exactly zero, from a
/// counter-based hash of (seed, index): the same seed gives the same values on any device.
template <class T>
void fill_uniform(T* data, std::size_t n, float low, float high, std::uint64_t seed);

/// Sets every byte of data[0, bytes) to 0xFF on stream(): a NaN in every float type, so an
/// element an implementation forgets to write fails the check.
void poison(void* data, std::size_t bytes);

/// Rows of a rows-row matrix that the correctness check compares: the first, the last and evenly
/// spread ones between, fewer for long rows (about 2^20 elements in all, at least 4 rows).
std::vector<std::int64_t> sample_rows(std::int64_t rows, std::int64_t cols);

/// Copies the given rows of the dense rows x cols device matrix `data` to the host, widened to
/// double, one row after another. Waits for stream() first.
template <class T>
std::vector<double> copy_rows(const T* data, std::int64_t cols,
                              const std::vector<std::int64_t>& rows);

using test::Tolerance;

/// The tests' per-dtype tolerance (tests/tolerance.h), widened for what the benches check: atol
/// x10, because here it is relative to the row's largest |expected| (so rows of tiny
/// probabilities, 1 / 262144, are still checked) and rows reach 2^18 fp32 terms; rtol x5 for the
/// unscaled GPU rows of every length a sweep times, which the tests only sample. Compared with
/// compare_rows: |actual - expected| <= atol * (the row's largest |expected|) + rtol * |expected|;
/// NaN matches only NaN, an infinity only the same infinity.
template <class T>
constexpr Tolerance tolerance_for() {
  constexpr Tolerance t = test::tolerance_for<T>();
  return {10 * t.atol, 5 * t.rtol};
}

/// Compares `actual` with `expected` (both laid out as copy_rows returns them). Returns "" when
/// every element is within `tolerance`; otherwise the count of mismatches and the first one, with
/// its row and column.
std::string compare_rows(const std::vector<double>& actual, const std::vector<double>& expected,
                         std::int64_t cols, const std::vector<std::int64_t>& rows,
                         Tolerance tolerance);

// --- timing ------------------------------------------------------------------------------------

/// Rows such that a launch moving `bytes_per_row` per row moves at least config().min_bytes.
std::int64_t rows_for(std::size_t bytes_per_row);

/// `rows` when it is > 0 (a rows-sweep case), else rows_for(bytes_per_row).
inline std::int64_t rows_or(std::int64_t rows, std::size_t bytes_per_row) {
  return rows > 0 ? rows : rows_for(bytes_per_row);
}

/// A start and a stop event (RAII).
class EventPair {
 public:
  EventPair();
  ~EventPair();
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  /// Records start, runs launch() (which enqueues work on stream()), records stop, waits for it
  /// and returns the elapsed time in seconds.
  double time(const std::function<void()>& launch);

 private:
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
};

/// Median of `values` (which it reorders); 0 for none.
double median(std::vector<double> values);

/// Sets the shape counters every case reports: rows, cols, sets (rotation copies) and checked_rows
/// (how many rows the correctness check compared).
inline void set_shape_counters(benchmark::State& state, std::int64_t rows, std::int64_t cols,
                               int sets, std::size_t checked_rows) {
  state.counters["rows"] = static_cast<double>(rows);
  state.counters["cols"] = static_cast<double>(cols);
  state.counters["sets"] = sets;
  state.counters["checked_rows"] = static_cast<double>(checked_rows);
}

/// Sets the counters every case reports from its per-repeat times: bytes, GBps (median),
/// copy_fraction, median_us, min_us.
void set_bandwidth_counters(benchmark::State& state, double bytes_moved,
                            const std::vector<double>& seconds);

/// The timed part of a case: config().warmup untimed launches, then one launch per Google Benchmark
/// iteration, each timed with events and reported through SetIterationTime. launch(set) must
/// enqueue the case's work for rotation set `set` on stream(); consecutive launches use consecutive
/// sets. Ends by setting the bandwidth counters.
template <class Launch>
void time_case(benchmark::State& state, int sets, double bytes_moved, Launch&& launch) {
  const Config& settings = config();
  int set = 0;
  for (int i = 0; i < settings.warmup; ++i) {
    launch(set);
    set = (set + 1) % sets;
  }
  WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  EventPair events;
  std::vector<double> seconds;
  seconds.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    const double elapsed = events.time([&] { launch(set); });
    state.SetIterationTime(elapsed);
    seconds.push_back(elapsed);
    set = (set + 1) % sets;
  }
  set_bandwidth_counters(state, bytes_moved, seconds);
}

// --- device helpers for the naive baselines ---------------------------------------------------
// (compiled by nvcc, or by g++ against the SIMT emulator for the bench.emulated.* tests)

using detail::from_float;
using detail::to_float;

/// Threads per block of the naive baselines' row kernels (one block per row).
constexpr int kNaiveThreads = 256;

/// Reduces `value` over the block with `op` through shared memory; every thread gets the result.
/// Needs blockDim.x == kNaiveThreads. A plain tree, deliberately unoptimised: it is the baseline.
template <class Op>
__device__ float naive_block_reduce(float value, Op op) {
  __shared__ float partial[kNaiveThreads];
  __syncthreads();  // the previous call's readers are done with `partial`
  partial[threadIdx.x] = value;
  __syncthreads();
  for (int half = kNaiveThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      partial[threadIdx.x] = op(partial[threadIdx.x], partial[threadIdx.x + half]);
    }
    __syncthreads();
  }
  return partial[0];
}

/// Launch shape of the naive baselines' row kernels: a block of kNaiveThreads per row, at most
/// 65535 * 16 blocks (each block then loops over rows with a grid stride), on stream().
inline detail::LaunchConfig naive_row_config(std::int64_t rows) {
  return {dim3(static_cast<unsigned>(std::min<std::int64_t>(rows, 65535 * 16))),
          dim3(kNaiveThreads), 0, stream()};
}

/// Launch shape of an elementwise grid-stride kernel over `elements`, on stream().
inline detail::LaunchConfig elementwise_config(std::int64_t elements) {
  return {dim3(static_cast<unsigned>(
              std::min<std::int64_t>((elements + kNaiveThreads - 1) / kNaiveThreads, 65535 * 16))),
          dim3(kNaiveThreads), 0, stream()};
}

}  // namespace warpfuse::bench
