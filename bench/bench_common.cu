// warpfuse benchmarks — the shared harness (bench_common.h says what a measurement is).
#include "bench/bench_common.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "warpfuse/memory.h"
#include "warpfuse/version.h"
#include "warpfuse_bench_commit.h"

namespace warpfuse::bench {
namespace {

Config g_config;
double g_copy_gbps = 0.0;
std::vector<std::pair<std::string, std::string>> g_context;

/// Bytes of the device-to-device copy that defines the copy bandwidth (it moves twice this).
std::size_t copy_bytes() {
  return g_config.min_bytes;
}

// --- flags -----------------------------------------------------------------------------------

bool parse_count(const char* text, long long low, long long* value) {
  char* end = nullptr;
  const long long parsed = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || parsed < low) return false;
  *value = parsed;
  return true;
}

bool parse_positive(const char* text, double* value) {
  char* end = nullptr;
  const double parsed = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(parsed > 0.0) || !std::isfinite(parsed)) return false;
  *value = parsed;
  return true;
}

/// A comma-separated list of integers >= 1 ("1,16,128").
bool parse_list(const char* text, std::vector<std::int64_t>* values) {
  values->clear();
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) {
    long long value = 0;
    if (!parse_count(item.c_str(), 1, &value)) return false;
    values->push_back(value);
  }
  return !values->empty();
}

void print_harness_help(const char* program) {
  std::printf(
      "%s: warpfuse benchmark (harness flags first, then Google Benchmark's)\n"
      "  --quick        2 warm-up launches and 10 timed repeats per case (default 5 and 50)\n"
      "  --repeats=N    timed launches per case; the median is reported\n"
      "  --warmup=N     untimed launches before the repeats\n"
      "  --min-mib=X    each launch moves at least X MiB (default 256)\n"
      "  --sets=N       rotate over N copies of the data (default: enough to exceed 2x the L2)\n"
      "  --rows-sweep   only the rows x cols sweep of the long-row ops (cluster vs online)\n"
      "  --sweep-cols=A,B,...  --sweep-rows=A,B,...  its axes (default 16384..262144 columns,\n"
      "                 1..16384 rows)\n"
      "Typical: %s --benchmark_out=%s.json --benchmark_out_format=json\n"
      "         %s --benchmark_filter='softmax/f16/.*'\n\n",
      program, program, program, program);
}

/// Removes the harness's flags from argv (Google Benchmark rejects flags it does not know).
/// Returns false, with a message, on a malformed value.
bool strip_harness_flags(int* argc, char** argv, const char* program) {
  int kept = 1;
  bool repeats_given = false;
  bool warmup_given = false;
  bool ok = true;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    const auto value_after = [&](const char* prefix) -> const char* {
      const std::size_t length = std::strlen(prefix);
      return arg.compare(0, length, prefix) == 0 ? argv[i] + length : nullptr;
    };
    const auto bad = [&](const char* expected) {
      std::fprintf(stderr, "%s: bad value in %s (expected %s)\n", program, arg.c_str(), expected);
      ok = false;
    };
    long long count = 0;
    double mib = 0.0;
    if (arg == "--quick") {
      g_config.quick = true;
    } else if (const char* text = value_after("--repeats=")) {
      if (!parse_count(text, 1, &count)) bad("an integer >= 1");
      g_config.repeats = static_cast<int>(count);
      repeats_given = true;
    } else if (const char* text = value_after("--warmup=")) {
      if (!parse_count(text, 0, &count)) bad("an integer >= 0");
      g_config.warmup = static_cast<int>(count);
      warmup_given = true;
    } else if (const char* text = value_after("--sets=")) {
      if (!parse_count(text, 1, &count)) bad("an integer >= 1");
      g_config.sets = static_cast<int>(count);
    } else if (arg == "--rows-sweep") {
      g_config.rows_sweep = true;
    } else if (const char* text = value_after("--sweep-cols=")) {
      if (!parse_list(text, &g_config.sweep_cols)) bad("integers >= 1 separated by commas");
    } else if (const char* text = value_after("--sweep-rows=")) {
      if (!parse_list(text, &g_config.sweep_rows)) bad("integers >= 1 separated by commas");
    } else if (const char* text = value_after("--min-mib=")) {
      if (!parse_positive(text, &mib)) bad("a number > 0");
      g_config.min_bytes = std::max<std::size_t>(1024, static_cast<std::size_t>(mib * 1048576.0));
    } else {
      if (arg == "--help" || arg == "-h") print_harness_help(program);
      argv[kept++] = argv[i];
    }
  }
  if (g_config.quick) {
    if (!repeats_given) g_config.repeats = 10;
    if (!warmup_given) g_config.warmup = 2;
  }
  *argc = kept;
  argv[kept] = nullptr;
  return ok;
}

// --- device facts ----------------------------------------------------------------------------

std::string version_string(int version) {
  // cudart encodes 13.0 as 13000.
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

/// Peak DRAM bandwidth from the memory clock and bus width, when the device reports them.
double theoretical_bandwidth_gbps(int device) {
  int clock_khz = 0;
  int bus_bits = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) != cudaSuccess) {
    static_cast<void>(cudaGetLastError());
    return 0.0;
  }
  return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // double data rate
}

std::string format_double(double value, int precision) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(precision) << value;
  return out.str();
}

// --- the copy reference ----------------------------------------------------------------------

/// Median seconds of one copy of copy_bytes() over rotated source/destination pairs.
double time_copy(int warmup, int repeats) {
  RotatingTensors<unsigned char> buffers(2, copy_bytes());
  for (int set = 0; set < buffers.sets(); ++set) {
    WARPFUSE_CUDA_CHECK(cudaMemsetAsync(buffers.at(set, 0), 0x5A, copy_bytes(), stream()));
  }
  const auto launch = [&](int set) {
    WARPFUSE_CUDA_CHECK(cudaMemcpyAsync(buffers.at(set, 1), buffers.at(set, 0), copy_bytes(),
                                        cudaMemcpyDeviceToDevice, stream()));
  };
  int set = 0;
  for (int i = 0; i < warmup; ++i) {
    launch(set);
    set = (set + 1) % buffers.sets();
  }
  WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  EventPair events;
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    seconds.push_back(events.time([&] { launch(set); }));
    set = (set + 1) % buffers.sets();
  }
  return median(seconds);
}

void measure_copy_bandwidth() {
  const double seconds = time_copy(std::max(g_config.warmup, 3), std::max(g_config.repeats, 20));
  g_copy_gbps = 2.0 * static_cast<double>(copy_bytes()) / seconds / 1e9;
}

/// The copy as a case of its own, so the table and the JSON show the reference next to the ops
/// (its copy_fraction is close to 1 by construction; how close says how stable the machine is).
void register_copy_case() {
  add_case("copy/u8/cudaMemcpyAsync/" + std::to_string(copy_bytes()), [](benchmark::State& state) {
    RotatingTensors<unsigned char> buffers(2, copy_bytes());
    for (int set = 0; set < buffers.sets(); ++set) {
      WARPFUSE_CUDA_CHECK(cudaMemsetAsync(buffers.at(set, 0), 0x5A, copy_bytes(), stream()));
    }
    state.counters["sets"] = buffers.sets();
    time_case(state, buffers.sets(), 2.0 * static_cast<double>(copy_bytes()), [&](int set) {
      WARPFUSE_CUDA_CHECK(cudaMemcpyAsync(buffers.at(set, 1), buffers.at(set, 0), copy_bytes(),
                                          cudaMemcpyDeviceToDevice, stream()));
    });
  });
}

/// The JSON "context" fields every bench binary writes (Google Benchmark adds date, host, CPU).
void record_context(const char* program) {
  int device = 0;
  WARPFUSE_CUDA_CHECK(cudaGetDevice(&device));
  const DeviceInfo info = device_info(device);
  int driver = 0;
  int runtime = 0;
  WARPFUSE_CUDA_CHECK(cudaDriverGetVersion(&driver));
  WARPFUSE_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  std::vector<std::pair<std::string, std::string>> fields = {
      {"bench_program", program},
      {"warpfuse_version", kVersion},
      {"git_commit", WARPFUSE_BENCH_GIT_COMMIT},
      {"device_name", info.name},
      {"compute_capability",
       std::to_string(info.compute_major) + "." + std::to_string(info.compute_minor)},
      {"multiprocessors", std::to_string(info.multiprocessors)},
      {"global_memory_bytes", std::to_string(info.global_memory_bytes)},
      {"l2_cache_bytes", std::to_string(info.l2_cache_bytes)},
      {"shared_memory_per_block_optin", std::to_string(info.shared_memory_per_block_optin)},
      {"cuda_driver_version", version_string(driver)},
      {"cuda_runtime_version", version_string(runtime)},
      {"copy_bandwidth_gbps", format_double(g_copy_gbps, 1)},
      {"copy_bytes", std::to_string(copy_bytes())},
      {"timing", "CUDA events around each launch; median of repeats; inputs rotated over sets"},
      {"warmup", std::to_string(g_config.warmup)},
      {"repeats", std::to_string(g_config.repeats)},
      {"min_bytes_per_launch", std::to_string(g_config.min_bytes)},
  };
  const double peak = theoretical_bandwidth_gbps(device);
  if (peak > 0.0) fields.emplace_back("theoretical_bandwidth_gbps", format_double(peak, 1));
#if defined(WARPFUSE_SIMT)
  fields.emplace_back(
      "note",
      "built against the SIMT emulator (tests/simt): the kernels ran on CPU fibers, "
      "so every time and bandwidth here measures the emulator, not a GPU");
#endif
  for (const auto& [key, value] : fields) benchmark::AddCustomContext(key, value);
  for (const auto& [key, value] : g_context) benchmark::AddCustomContext(key, value);
}

// --- the summary tables ----------------------------------------------------------------------

/// The console table Google Benchmark prints, plus, at the end, one table per (op, dtype) of the
/// fraction of copy bandwidth each implementation reached at each row length.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  SummaryReporter() : benchmark::ConsoleReporter(OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;
      const std::string name = run.benchmark_name();
      if (run.error_occurred &&
          run.error_message.compare(0, std::strlen(kUnsupported), kUnsupported) != 0) {
        failed_.push_back(name + ": " + run.error_message);
      }
      std::vector<std::string> parts;
      std::stringstream stream(name);
      for (std::string part; std::getline(stream, part, '/');) parts.push_back(part);
      if (parts.size() < 4 || parts[0] == "copy") continue;
      Entry& entry = table(parts[0] + " " + parts[1]);
      if (std::find(entry.impls.begin(), entry.impls.end(), parts[2]) == entry.impls.end()) {
        entry.impls.push_back(parts[2]);
      }
      long long cols = 0;
      if (!parse_count(parts[3].c_str(), 1, &cols)) continue;
      // A rows-sweep case names its rows in a fifth field ("rows=N"); 0 for the others.
      long long rows = 0;
      if (parts.size() > 4 && parts[4].compare(0, 5, "rows=") == 0 &&
          !parse_count(parts[4].c_str() + 5, 1, &rows)) {
        continue;
      }
      const Shape shape{cols, rows};
      if (std::find(entry.shapes.begin(), entry.shapes.end(), shape) == entry.shapes.end()) {
        entry.shapes.push_back(shape);
      }
      std::vector<double>& cell = entry.cells[{parts[2], shape}];
      const auto found = run.counters.find("copy_fraction");
      if (run.error_occurred) {
        cell.push_back(run.error_message.compare(0, std::strlen(kUnsupported), kUnsupported) == 0
                           ? kUnsupportedCell
                           : kFailedCell);
      } else if (found == run.counters.end()) {
        cell.push_back(kFailedCell);
      } else {
        cell.push_back(found->second.value);
      }
    }
    benchmark::ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    benchmark::ConsoleReporter::Finalize();
    std::ostream& out = GetOutputStream();
    for (const std::string& key : order_) {
      Entry& entry = entries_[key];
      std::sort(entry.shapes.begin(), entry.shapes.end());
      const bool swept = !entry.shapes.empty() && entry.shapes.front().second > 0;
      out << "\n"
          << key << ": fraction of copy bandwidth (" << format_double(g_copy_gbps, 0)
          << " GB/s), median of repeats; 'n/a': unsupported, 'FAILED': see its line above\n";
      out << std::setw(swept ? 16 : 8) << (swept ? "cols x rows" : "cols");
      for (const std::string& impl : entry.impls) out << std::setw(11) << impl;
      out << "\n";
      for (const Shape& shape : entry.shapes) {
        out << std::setw(swept ? 16 : 8)
            << (std::to_string(shape.first) +
                (shape.second > 0 ? " x " + std::to_string(shape.second) : std::string()));
        for (const std::string& impl : entry.impls) {
          const auto found = entry.cells.find({impl, shape});
          if (found == entry.cells.end()) {
            out << std::setw(11) << "-";
            continue;
          }
          const std::vector<double>& values = found->second;
          if (std::find(values.begin(), values.end(), kFailedCell) != values.end()) {
            out << std::setw(11) << "FAILED";
          } else if (std::find(values.begin(), values.end(), kUnsupportedCell) != values.end()) {
            out << std::setw(11) << "n/a";
          } else {
            out << std::setw(11) << format_double(median(values), 3);
          }
        }
        out << "\n";
      }
    }
    if (!failed_.empty()) {
      out << "\n" << failed_.size() << " case(s) FAILED:\n";
      for (const std::string& line : failed_) out << "  " << line << "\n";
    }
    out.flush();
  }

  /// Cases skipped for a reason other than kUnsupported, with their messages.
  const std::vector<std::string>& failed() const { return failed_; }

 private:
  static constexpr double kFailedCell = -1.0;
  static constexpr double kUnsupportedCell = -2.0;

  using Shape = std::pair<long long, long long>;  // (cols, rows); rows 0 unless swept
  struct Entry {
    std::vector<std::string> impls;
    std::vector<Shape> shapes;
    std::map<std::pair<std::string, Shape>, std::vector<double>> cells;
  };
  Entry& table(const std::string& key) {
    if (entries_.find(key) == entries_.end()) order_.push_back(key);
    return entries_[key];
  }
  std::vector<std::string> order_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> failed_;
};

// --- input generation ------------------------------------------------------------------------

__device__ __forceinline__ std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Grid-stride over data[0, n): a hash of (seed, index) mapped to [low, high); zero becomes
/// `low / 2` (non-zero when low is), so no input is exactly zero.
template <class T>
__global__ void fill_uniform_kernel(T* __restrict__ data, std::size_t n, float low, float high,
                                    std::uint64_t seed) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const std::uint64_t bits = splitmix64(seed * 0xD1B54A32D192ED03ull + i);
    const float unit = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
    float value = low + (high - low) * unit;
    T stored = from_float<T>(value);
    if (to_float(stored) == 0.0f) stored = from_float<T>(low != 0.0f ? 0.5f * low : 0.5f * high);
    data[i] = stored;
  }
}

}  // namespace

// --- settings and registration -----------------------------------------------------------------

const Config& config() {
  return g_config;
}

cudaStream_t stream() {
  static cudaStream_t created = [] {
    cudaStream_t s = nullptr;
    WARPFUSE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }();
  return created;
}

double copy_bandwidth_gbps() {
  return g_copy_gbps;
}

std::string case_name(const std::string& op, DType dtype, const std::string& impl,
                      std::int64_t cols) {
  return op + "/" + dtype_name(dtype) + "/" + impl + "/" + std::to_string(cols);
}

std::string case_name(const std::string& op, DType dtype, const std::string& impl,
                      std::int64_t cols, std::int64_t rows) {
  return case_name(op, dtype, impl, cols) + "/rows=" + std::to_string(rows);
}

std::vector<std::pair<std::int64_t, std::int64_t>> rows_sweep_shapes() {
  const std::vector<std::int64_t> cols =
      g_config.sweep_cols.empty()
          ? std::vector<std::int64_t>(std::begin(kRowsSweepCols), std::end(kRowsSweepCols))
          : g_config.sweep_cols;
  const std::vector<std::int64_t> rows =
      g_config.sweep_rows.empty()
          ? std::vector<std::int64_t>(std::begin(kRowsSweepRows), std::end(kRowsSweepRows))
          : g_config.sweep_rows;
  std::vector<std::pair<std::int64_t, std::int64_t>> shapes;
  for (std::int64_t c : cols) {
    for (std::int64_t r : rows) shapes.emplace_back(c, r);
  }
  return shapes;
}

std::vector<std::int64_t> sweep_cols() {
  // Powers of two, plus the row engine's shapes: MoE routers (8, 10 columns: many rows per warp)
  // and GPT-2's vocabulary 50257 beside its padded 50304 (rows off 16-byte boundaries).
  std::vector<std::int64_t> cols = {8, 10};
  for (std::int64_t c = 32; c <= 262144; c *= 2) cols.push_back(c);
  cols.push_back(50257);
  cols.push_back(50304);
  std::sort(cols.begin(), cols.end());
  return cols;
}

benchmark::internal::Benchmark* add_case(const std::string& name,
                                         std::function<void(benchmark::State&)> body) {
  auto* registered =
      benchmark::RegisterBenchmark(name.c_str(), [body = std::move(body)](benchmark::State& state) {
        try {
          body(state);
        } catch (const Unsupported& error) {
          state.SkipWithError((std::string(kUnsupported) + error.what()).c_str());
        } catch (const std::exception& error) {
          // A sticky CUDA error (an illegal address) would fail every later case too; the message
          // says which case caused it.
          state.SkipWithError(error.what());
        }
      });
  registered->Iterations(g_config.repeats)->UseManualTime()->Unit(benchmark::kMicrosecond);
  return registered;
}

void add_context(const std::string& key, const std::string& value) {
  g_context.emplace_back(key, value);
}

int bench_main(int argc, char** argv, const char* program,
               const std::function<void()>& register_cases) {
  if (!strip_harness_flags(&argc, argv, program)) return 2;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  std::string reason;
  if (!cuda_device_available(&reason)) {
    std::printf("%s: no CUDA device present (%s); nothing to measure\n", program, reason.c_str());
    return 0;
  }
  try {
    measure_copy_bandwidth();
    std::printf("%s: device-to-device copy bandwidth %.1f GB/s (read + write, %zu MiB copies)\n",
                program, g_copy_gbps, copy_bytes() >> 20);
    register_copy_case();
    register_cases();
    record_context(program);
    SummaryReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    if (!reporter.failed().empty()) {
      std::fprintf(stderr, "%s: %zu case(s) failed\n", program, reporter.failed().size());
      return 1;
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", program, error.what());
    return 1;
  }
  return 0;
}

// --- memory and inputs -----------------------------------------------------------------------

void* scratch(std::size_t bytes) {
  static DeviceBuffer<unsigned char> memory;
  if (memory.size() < bytes) {
    memory.reset();  // free first: the old and the new block may not fit together
    try {
      memory = DeviceBuffer<unsigned char>(bytes);
    } catch (const CudaError& error) {
      if (error.code() != cudaErrorMemoryAllocation) throw;
      static_cast<void>(cudaGetLastError());  // an allocation failure is not sticky; clear it
      throw Unsupported("bench", "the case's " + std::to_string(bytes >> 20) +
                                     " MiB of data do not fit in device memory");
    }
  }
  return memory.data();
}

int rotation_sets(std::size_t set_bytes) {
  if (g_config.sets > 0) return g_config.sets;
  static const std::size_t l2 = [] {
    int device = 0;
    WARPFUSE_CUDA_CHECK(cudaGetDevice(&device));
    return device_info(device).l2_cache_bytes;
  }();
  const std::size_t per_set = std::max<std::size_t>(set_bytes, 1);
  const std::size_t others = (2 * l2 + per_set - 1) / per_set;
  return static_cast<int>(std::max<std::size_t>(2, others + 1));
}

template <class T>
void fill_uniform(T* data, std::size_t n, float low, float high, std::uint64_t seed) {
  if (n == 0) return;
  const std::size_t blocks = std::min<std::size_t>((n + 255) / 256, 65535);
  detail::launch(detail::LaunchConfig{dim3(static_cast<unsigned>(blocks)), dim3(256), 0, stream()},
                 "fill_uniform_kernel", fill_uniform_kernel<T>, data, n, low, high, seed);
}

template void fill_uniform<float>(float*, std::size_t, float, float, std::uint64_t);
template void fill_uniform<__half>(__half*, std::size_t, float, float, std::uint64_t);
template void fill_uniform<__nv_bfloat16>(__nv_bfloat16*, std::size_t, float, float, std::uint64_t);

void poison(void* data, std::size_t bytes) {
  WARPFUSE_CUDA_CHECK(cudaMemsetAsync(data, 0xFF, bytes, stream()));
}

std::vector<std::int64_t> sample_rows(std::int64_t rows, std::int64_t cols) {
  const std::int64_t wanted =
      std::clamp<std::int64_t>((std::int64_t{1} << 20) / std::max<std::int64_t>(cols, 1), 4, 64);
  if (rows <= wanted) {
    std::vector<std::int64_t> all(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) all[static_cast<std::size_t>(r)] = r;
    return all;
  }
  std::vector<std::int64_t> picked;
  for (std::int64_t i = 0; i < wanted; ++i) picked.push_back(i * (rows - 1) / (wanted - 1));
  picked.erase(std::unique(picked.begin(), picked.end()), picked.end());
  return picked;
}

template <class T>
std::vector<double> copy_rows(const T* data, std::int64_t cols,
                              const std::vector<std::int64_t>& rows) {
  WARPFUSE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  std::vector<T> staged(rows.size() * static_cast<std::size_t>(cols));
  for (std::size_t i = 0; i < rows.size(); ++i) {
    WARPFUSE_CUDA_CHECK(cudaMemcpy(staged.data() + i * cols, data + rows[i] * cols,
                                   static_cast<std::size_t>(cols) * sizeof(T),
                                   cudaMemcpyDeviceToHost));
  }
  std::vector<double> widened(staged.size());
  for (std::size_t i = 0; i < staged.size(); ++i) widened[i] = to_float(staged[i]);
  return widened;
}

template std::vector<double> copy_rows<float>(const float*, std::int64_t,
                                              const std::vector<std::int64_t>&);
template std::vector<double> copy_rows<__half>(const __half*, std::int64_t,
                                               const std::vector<std::int64_t>&);
template std::vector<double> copy_rows<__nv_bfloat16>(const __nv_bfloat16*, std::int64_t,
                                                      const std::vector<std::int64_t>&);

std::string compare_rows(const std::vector<double>& actual, const std::vector<double>& expected,
                         std::int64_t cols, const std::vector<std::int64_t>& rows,
                         Tolerance tolerance) {
  if (actual.size() != expected.size() ||
      actual.size() != rows.size() * static_cast<std::size_t>(cols)) {
    return "internal error: compare_rows got " + std::to_string(actual.size()) + " values, " +
           std::to_string(expected.size()) + " expected ones for " + std::to_string(rows.size()) +
           " rows of " + std::to_string(cols);
  }
  std::size_t mismatches = 0;
  std::string first;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::size_t begin = r * static_cast<std::size_t>(cols);
    double row_scale = 0.0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double e = expected[begin + c];
      if (std::isfinite(e)) row_scale = std::max(row_scale, std::fabs(e));
    }
    for (std::int64_t c = 0; c < cols; ++c) {
      const double a = actual[begin + c];
      const double e = expected[begin + c];
      bool ok = false;
      if (std::isnan(e)) {
        ok = std::isnan(a);
      } else if (std::isinf(e)) {
        ok = a == e;
      } else {
        ok = std::isfinite(a) &&
             std::fabs(a - e) <= tolerance.atol * row_scale + tolerance.rtol * std::fabs(e);
      }
      if (ok) continue;
      if (mismatches++ == 0) {
        std::ostringstream message;
        message << std::setprecision(9) << "row " << rows[r] << ", col " << c << ": got " << a
                << ", expected " << e;
        first = message.str();
      }
    }
  }
  if (mismatches == 0) return "";
  return "output differs from the CPU reference in " + std::to_string(mismatches) + " of " +
         std::to_string(actual.size()) + " checked elements; first at " + first;
}

// --- timing ----------------------------------------------------------------------------------

std::int64_t rows_for(std::size_t bytes_per_row) {
  const std::size_t per_row = std::max<std::size_t>(bytes_per_row, 1);
  return static_cast<std::int64_t>((g_config.min_bytes + per_row - 1) / per_row);
}

EventPair::EventPair() {
  WARPFUSE_CUDA_CHECK(cudaEventCreate(&start_));
  WARPFUSE_CUDA_CHECK(cudaEventCreate(&stop_));
}

EventPair::~EventPair() {
  static_cast<void>(cudaEventDestroy(start_));
  static_cast<void>(cudaEventDestroy(stop_));
}

double EventPair::time(const std::function<void()>& launch) {
  WARPFUSE_CUDA_CHECK(cudaEventRecord(start_, stream()));
  launch();
  WARPFUSE_CUDA_CHECK(cudaEventRecord(stop_, stream()));
  WARPFUSE_CUDA_CHECK(cudaEventSynchronize(stop_));
  float milliseconds = 0.0f;
  WARPFUSE_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, start_, stop_));
  return static_cast<double>(milliseconds) * 1e-3;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  const std::size_t middle = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + middle, values.end());
  const double upper = values[middle];
  if (values.size() % 2 == 1) return upper;
  const double lower = *std::max_element(values.begin(), values.begin() + middle);
  return 0.5 * (lower + upper);
}

void set_bandwidth_counters(benchmark::State& state, double bytes_moved,
                            const std::vector<double>& seconds) {
  if (seconds.empty()) return;
  const double typical = median(seconds);
  const double fastest = *std::min_element(seconds.begin(), seconds.end());
  const double gbps = typical > 0.0 ? bytes_moved / typical / 1e9 : 0.0;
  state.counters["bytes"] = bytes_moved;
  state.counters["GBps"] = gbps;
  state.counters["copy_fraction"] = g_copy_gbps > 0.0 ? gbps / g_copy_gbps : 0.0;
  state.counters["median_us"] = typical * 1e6;
  state.counters["min_us"] = fastest * 1e6;
}

}  // namespace warpfuse::bench
