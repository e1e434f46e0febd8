// warpfuse tests — shared utilities: the device trait, per-dtype tolerances, seeded random inputs,
// poisoned outputs and the check that nothing around an output was written, comparisons that
// print the first mismatches with their indices, and the checks of typed errors.
//
// Every op-family test file is compiled into two binaries: the emulated one (g++ + SIMT emulator,
// WARPFUSE_SIMT defined) and the GPU one (nvcc). The device trait below is the only place where
// they differ: the emulated device is always there; the GPU binary skips when cudart finds no
// device.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "warpfuse/cross_entropy.h"
#include "warpfuse/device.h"
#include "warpfuse/dtype.h"
#include "warpfuse/error.h"
#include "warpfuse/memory.h"
#include "tolerance.h"

namespace warpfuse::test {

// --- the device trait --------------------------------------------------------------------------

/// "emulated" or "gpu".
inline const char* backend_name() {
#if defined(WARPFUSE_SIMT)
  return "emulated";
#else
  return "gpu";
#endif
}

/// Why device tests cannot run here, or nothing when they can.
inline std::optional<std::string> device_unavailable() {
#if defined(WARPFUSE_SIMT)
  return std::nullopt;
#else
  static const std::optional<std::string> reason = []() -> std::optional<std::string> {
    std::string why;
    if (cuda_device_available(&why)) return std::nullopt;
    return why;
  }();
  return reason;
#endif
}

/// Fixture of every test that touches device memory or launches a kernel.
class DeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const auto reason = device_unavailable()) GTEST_SKIP() << "no CUDA device: " << *reason;
  }
};

template <class Param>
class DeviceTestWithParam : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (const auto reason = device_unavailable()) GTEST_SKIP() << "no CUDA device: " << *reason;
  }
};

/// The cross-entropy options of a test case (its fields reduction, smoothing, z_loss, softcap,
/// logit_scale and strategy), with the given grad_scale.
template <class Case>
CrossEntropyOptions cross_entropy_options_of(const Case& c, float grad_scale) {
  CrossEntropyOptions options;
  options.reduction = c.reduction;
  options.label_smoothing = c.smoothing;
  options.z_loss = c.z_loss;
  options.logit_softcap = c.softcap;
  options.logit_scale = c.logit_scale;
  options.grad_scale = grad_scale;
  options.strategy = c.strategy;
  return options;
}

// --- dtypes and tolerances ---------------------------------------------------------------------

template <class T>
double to_double(T value) {
  if constexpr (std::is_same_v<T, __half>) {
    return static_cast<double>(__half2float(value));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return static_cast<double>(__bfloat162float(value));
  } else {
    return static_cast<double>(value);
  }
}

template <class T>
T from_double(double value) {
  if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(static_cast<float>(value));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(value));
  } else {
    return static_cast<T>(value);
  }
}

template <class T>
std::vector<double> to_double(const std::vector<T>& values) {
  std::vector<double> result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = to_double(values[i]);
  return result;
}

/// Test-name suffix for a storage type.
template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, double>) {
    return "f64";
  } else if constexpr (std::is_integral_v<T>) {
    return std::is_signed_v<T> ? "i" + std::to_string(8 * sizeof(T))
                               : "u" + std::to_string(8 * sizeof(T));
  } else {
    return dtype_name(dtype_of<T>());
  }
}

/// `values` rounded to T and widened back: what a kernel storing them as T can at best produce
/// (a value beyond T's range becomes an infinity).
template <class T>
std::vector<double> rounded_to(const std::vector<double>& values) {
  std::vector<double> result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = to_double(from_double<T>(values[i]));
  return result;
}

// --- inputs ------------------------------------------------------------------------------------

/// n values drawn uniformly from [low, high) with a fixed seed, rounded to T. Different seeds give
/// independent draws, so each test case has its own data; no draw is all zeros.
template <class T>
std::vector<T> random_values(std::size_t n, std::uint64_t seed, double low = -1.0,
                             double high = 1.0) {
  std::mt19937_64 rng(seed);
  std::vector<T> values(n);
  if constexpr (std::is_integral_v<T>) {
    std::uniform_int_distribution<long long> dist(static_cast<long long>(low),
                                                  static_cast<long long>(high));
    for (auto& v : values) v = static_cast<T>(dist(rng));
  } else {
    std::uniform_real_distribution<double> dist(low, high);
    for (auto& v : values) v = from_double<T>(dist(rng));
  }
  return values;
}

/// A device buffer of n elements with every byte 0xFF: a NaN in each float type, -1 in integers.
/// Outputs start like this so an element the kernel forgot to write fails the comparison.
template <class T>
DeviceBuffer<T> poisoned_buffer(std::size_t n) {
  DeviceBuffer<T> buffer(n);
  buffer.fill_bytes(0xFF);
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
  return buffer;
}

/// Elements of `got` (a whole buffer) outside the rows x cols matrix at element `offset` with row
/// stride ld that differ bitwise from `before` (the buffer as it was: its poison, or the input of
/// an in-place call). 0 when the op wrote nothing around its output.
template <class T>
std::size_t written_outside(const std::vector<T>& got, const std::vector<T>& before,
                            std::int64_t offset, std::int64_t rows, std::int64_t cols,
                            std::int64_t ld) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const std::int64_t rel = static_cast<std::int64_t>(i) - offset;
    const bool inside = rel >= 0 && ld > 0 && rel / ld < rows && rel % ld < cols;
    if (inside) continue;
    if (i >= before.size() || std::memcmp(&got[i], &before[i], sizeof(T)) != 0) ++count;
  }
  return count;
}

/// What poisoned_buffer<T>(n) holds, on the host.
template <class T>
std::vector<T> poisoned_host(std::size_t n) {
  std::vector<T> values(n);
  if (n > 0) std::memset(static_cast<void*>(values.data()), 0xFF, n * sizeof(T));
  return values;
}

// --- typed errors --------------------------------------------------------------------------------

/// The message of the warpfuse::Error `body` throws, expecting it of `kind`; a failure (and "")
/// when it throws nothing or something else.
template <class Body>
std::string error_message(Body&& body, ErrorKind kind = ErrorKind::invalid_argument) {
  try {
    body();
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), kind) << error.what();
    return error.what();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "not a warpfuse::Error: " << error.what();
    return "";
  }
  ADD_FAILURE() << "no warpfuse::Error thrown";
  return "";
}

/// Runs `body`, expecting InvalidArgument from `op` naming `argument` (in op(), argument() and
/// the message); returns the message for further checks.
template <class Body>
std::string expect_invalid(Body&& body, const std::string& op, const std::string& argument) {
  try {
    body();
    ADD_FAILURE() << "expected InvalidArgument for " << op << " argument '" << argument << "'";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.op(), op) << e.what();
    EXPECT_EQ(e.argument(), argument) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    const std::string prefix = "warpfuse::" + op + ": argument '" + argument + "'";
    EXPECT_NE(std::string(e.what()).find(prefix), std::string::npos) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an InvalidArgument: " << e.what();
  }
  return "";
}

// --- comparisons -------------------------------------------------------------------------------

/// Where element `index` sits, as "[i]" or "[row, col]" when cols > 0.
inline std::string position(std::size_t index, std::int64_t cols) {
  if (cols <= 0) return "[" + std::to_string(index) + "]";
  return "[" + std::to_string(static_cast<std::int64_t>(index) / cols) + ", " +
         std::to_string(static_cast<std::int64_t>(index) % cols) + "]";
}

/// actual[i] matches expected[i] within `tol`; NaN must meet NaN, an infinity the same infinity.
/// On failure, lists the first `max_report` mismatches with positions (row, col when cols > 0).
template <class T>
::testing::AssertionResult all_close(const std::vector<T>& actual,
                                     const std::vector<double>& expected, Tolerance tol,
                                     std::int64_t cols = 0, int max_report = 8) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " != expected size " << expected.size();
  }
  std::ostringstream report;
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = to_double(actual[i]);
    const double e = expected[i];
    bool ok;
    if (std::isnan(e)) {
      ok = std::isnan(a);
    } else if (std::isinf(e)) {
      ok = a == e;
    } else {
      ok = std::isfinite(a) && std::fabs(a - e) <= tol.atol + tol.rtol * std::fabs(e);
    }
    if (!ok) {
      if (static_cast<int>(mismatches) < max_report) {
        report << "\n  at " << position(i, cols) << ": got " << a << ", expected " << e << " (diff "
               << std::fabs(a - e) << ")";
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << mismatches << " of " << actual.size() << " elements differ (atol " << tol.atol
         << ", rtol " << tol.rtol << "):" << report.str();
}

/// Like all_close, but each element may also be off by tol.rtol * term_scale[i]: the size of the
/// terms its value was computed from, for results that cancel (a backward's dy - sum(dy * y)).
template <class T>
::testing::AssertionResult all_close_scaled(const std::vector<T>& actual,
                                            const std::vector<double>& expected,
                                            const std::vector<double>& term_scale, Tolerance tol,
                                            std::int64_t cols = 0, int max_report = 8) {
  if (actual.size() != expected.size() || term_scale.size() != expected.size()) {
    return ::testing::AssertionFailure() << "sizes differ: " << actual.size() << ", "
                                         << expected.size() << ", " << term_scale.size();
  }
  std::ostringstream report;
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = to_double(actual[i]);
    const double e = expected[i];
    const double allowed = tol.atol + tol.rtol * (std::fabs(e) + term_scale[i]);
    const bool ok = std::isnan(e)   ? std::isnan(a)
                    : std::isinf(e) ? a == e
                                    : std::isfinite(a) && std::fabs(a - e) <= allowed;
    if (!ok) {
      if (static_cast<int>(mismatches) < max_report) {
        report << "\n  at " << position(i, cols) << ": got " << a << ", expected " << e << " (diff "
               << std::fabs(a - e) << ", allowed " << allowed << ")";
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << mismatches << " of " << actual.size() << " elements differ:" << report.str();
}

/// Bitwise equality, listing the first mismatches.
template <class T>
::testing::AssertionResult bitwise_equal(const std::vector<T>& actual,
                                         const std::vector<T>& expected, std::int64_t cols = 0,
                                         int max_report = 8) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure() << "size " << actual.size() << " != " << expected.size();
  }
  std::ostringstream report;
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(T)) != 0) {
      if (static_cast<int>(mismatches) < max_report) {
        report << "\n  at " << position(i, cols) << ": " << to_double(actual[i]) << " vs "
               << to_double(expected[i]);
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << mismatches << " of " << actual.size() << " elements differ bitwise:" << report.str();
}

// --- schedules ---------------------------------------------------------------------------------

#if defined(WARPFUSE_SIMT)
/// Sets the emulator's schedule for one scope and restores the previous one.
class ScopedSchedule {
 public:
  explicit ScopedSchedule(const std::string& schedule) : saved_(simt::current_schedule()) {
    simt::set_schedule(simt::parse_schedule(schedule));
  }
  ~ScopedSchedule() { simt::set_schedule(saved_); }
  ScopedSchedule(const ScopedSchedule&) = delete;
  ScopedSchedule& operator=(const ScopedSchedule&) = delete;

 private:
  simt::Schedule saved_;
};
#endif

/// Runs `body` once per emulator schedule (forward, reverse, two shuffles) in the emulated binary,
/// restoring the schedule afterwards; once in the GPU binary, whose hardware picks the order.
inline void for_each_schedule(const std::function<void(const std::string&)>& body) {
#if defined(WARPFUSE_SIMT)
  for (const char* name : {"forward", "reverse", "shuffle:1", "shuffle:2"}) {
    const ScopedSchedule schedule(name);
    body(name);
  }
#else
  body("hardware");
#endif
}

}  // namespace warpfuse::test
