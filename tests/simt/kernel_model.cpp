// simt — what the emulator knows of a kernel's machine code: registers, static shared memory and
// launch bounds, read from the kernel report (scripts/kernel-report's JSON of the sm_90 build),
// and the H100/H200 occupancy model that scripts/kernel-report applies, so that
// cudaOccupancyMaxActiveBlocksPerMultiprocessor answers here what it would on the GPU and a launch
// over a kernel's bounds fails here as it would there.
//
// A kernel is found in the report by its mangled name: g++ and nvcc mangle a kernel template the
// same (Itanium ABI), and dladdr names the emulated kernel's address (the emulated executables are
// linked with -rdynamic). The report is $SIMT_KERNEL_REPORT, else the build's own
// (SIMT_KERNEL_REPORT_PATH, set when the CUDA build writes one); a kernel it does not list gets
// the defaults of KernelResources.
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "simt/simt.h"

namespace simt {
namespace {

// The sm_90 limits, as scripts/kernel-report states them.
constexpr int kRegistersPerSubpartition = 16384;
constexpr int kRegisterUnit = 8;
constexpr int kMaxWarpsPerSm = 64;
constexpr int kMaxBlocksPerSm = 32;
constexpr std::size_t kSharedPerSm = 228 * 1024;
constexpr std::size_t kSharedUnit = 128;
constexpr std::size_t kSharedReservedPerBlock = 1024;

struct Model {
  std::mutex mutex;
  bool loaded = false;
  std::string path;
  std::map<std::string, KernelResources> report;
  std::map<std::string, int> reported_warps;
  std::map<const void*, KernelResources> overrides;
  std::map<const void*, KernelResources> by_address;  // report entries found so far
  std::map<std::string, LaunchRecord> launches;
};

Model& model() {
  static Model instance;
  return instance;
}

/// The integer after `"key": ` in [from, to) of text, or `fallback` (also for null).
long long json_number(const std::string& text, std::size_t from, std::size_t to, const char* key,
                      long long fallback) {
  const std::string needle = std::string("\"") + key + "\": ";
  const std::size_t at = text.find(needle, from);
  if (at == std::string::npos || at >= to) return fallback;
  const char* start = text.c_str() + at + needle.size();
  char* end = nullptr;
  const long long value = std::strtoll(start, &end, 10);
  return end == start ? fallback : value;
}

void load_report(Model& m) {
  if (m.loaded) return;
  m.loaded = true;
  const char* env = std::getenv("SIMT_KERNEL_REPORT");
#if defined(SIMT_KERNEL_REPORT_PATH)
  m.path = env != nullptr ? env : SIMT_KERNEL_REPORT_PATH;
#else
  m.path = env != nullptr ? env : "";
#endif
  if (m.path.empty()) return;
  std::ifstream in(m.path);
  if (!in) {
    m.path.clear();
    return;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const std::string key = "\"mangled\": \"";
  std::size_t at = text.find(key);
  while (at != std::string::npos) {
    const std::size_t name_begin = at + key.size();
    const std::size_t name_end = text.find('"', name_begin);
    if (name_end == std::string::npos) break;
    const std::size_t next = text.find(key, name_end);
    const std::size_t stop = next == std::string::npos ? text.size() : next;
    KernelResources resources;
    resources.registers = static_cast<int>(json_number(text, name_end, stop, "registers", 32));
    resources.static_shared_bytes =
        static_cast<std::size_t>(json_number(text, name_end, stop, "static_shared_bytes", 0));
    resources.launch_bounds =
        static_cast<int>(json_number(text, name_end, stop, "launch_bounds", 0));
    resources.from_report = true;
    const std::string name = text.substr(name_begin, name_end - name_begin);
    m.report[name] = resources;
    m.reported_warps[name] =
        static_cast<int>(json_number(text, name_end, stop, "resident_warps", -1));
    at = next;
  }
}

}  // namespace

std::string kernel_report_path() {
  Model& m = model();
  std::lock_guard<std::mutex> lock(m.mutex);
  load_report(m);
  return m.path;
}

std::string kernel_symbol(const void* kernel) {
  Dl_info info{};
  if (kernel == nullptr || dladdr(kernel, &info) == 0 || info.dli_sname == nullptr) return {};
  return info.dli_sname;
}

KernelResources kernel_resources(const void* kernel) {
  Model& m = model();
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto overridden = m.overrides.find(kernel);
  if (overridden != m.overrides.end()) return overridden->second;
  // Every launch asks: the symbol lookup (dladdr, then the report by name) is done once per kernel.
  const auto cached = m.by_address.find(kernel);
  if (cached != m.by_address.end()) return cached->second;
  load_report(m);
  const auto found = m.report.find(kernel_symbol(kernel));
  const KernelResources resources = found == m.report.end() ? KernelResources{} : found->second;
  m.by_address.emplace(kernel, resources);
  return resources;
}

void set_kernel_resources(const void* kernel, const KernelResources& resources) {
  Model& m = model();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.overrides[kernel] = resources;
}

void clear_kernel_resources(const void* kernel) {
  Model& m = model();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.overrides.erase(kernel);
}

int resident_blocks(const KernelResources& resources, int threads, std::size_t dynamic_shared) {
  if (threads <= 0) return 0;
  if (resources.launch_bounds > 0 && threads > resources.launch_bounds) return 0;
  const int warps_per_block = (threads + 31) / 32;
  const int registers =
      std::max(1, (resources.registers + kRegisterUnit - 1) / kRegisterUnit * kRegisterUnit);
  const int warps_by_registers = 4 * (kRegistersPerSubpartition / (registers * 32));
  int blocks = std::min(
      {kMaxBlocksPerSm, kMaxWarpsPerSm / warps_per_block, warps_by_registers / warps_per_block});
  const std::size_t block_shared =
      (resources.static_shared_bytes + dynamic_shared + kSharedReservedPerBlock + kSharedUnit - 1) /
      kSharedUnit * kSharedUnit;
  blocks = std::min<int>(blocks, static_cast<int>(kSharedPerSm / block_shared));
  return std::max(0, blocks);
}

std::vector<ReportedKernel> reported_kernels() {
  Model& m = model();
  std::lock_guard<std::mutex> lock(m.mutex);
  load_report(m);
  std::vector<ReportedKernel> kernels;
  for (const auto& [name, resources] : m.report) {
    kernels.push_back(ReportedKernel{name, resources, m.reported_warps[name]});
  }
  return kernels;
}

bool last_launch(const std::string& name, LaunchRecord* record) {
  Model& m = model();
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto found = m.launches.find(name);
  if (found == m.launches.end()) return false;
  *record = found->second;
  return true;
}

namespace detail {

void record_launch(const char* name, dim3 grid, dim3 block, std::size_t shared_bytes) {
  Model& m = model();
  std::lock_guard<std::mutex> lock(m.mutex);
  LaunchRecord& record = m.launches[name];
  record.grid = grid;
  record.block = block;
  record.shared_bytes = shared_bytes;
  ++record.count;
}

}  // namespace detail
}  // namespace simt
