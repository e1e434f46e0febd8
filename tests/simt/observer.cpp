// simt — the access observer (see observer.h). Compiled into every emulated build; the hooks only
// record anything in the observed one (SIMT_OBSERVE), whose kernel code calls them. This file
// itself is never instrumented: its own accesses and atomics are plain.
#include "simt/observer.h"

#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <link.h>

#include "simt/simt.h"

namespace simt {

std::uint64_t LaunchTraffic::bytes_read(const void* allocation) const {
  for (const AllocationTraffic& a : allocations) {
    if (a.base == allocation) return a.bytes_read;
  }
  return 0;
}
std::uint64_t LaunchTraffic::bytes_written(const void* allocation) const {
  for (const AllocationTraffic& a : allocations) {
    if (a.base == allocation) return a.bytes_written;
  }
  return 0;
}
std::uint64_t LaunchTraffic::global_accesses() const {
  std::uint64_t total = atomics;
  for (int w = 0; w < kAccessWidths; ++w) total += loads[w] + stores[w];
  return total;
}

namespace {

#if defined(SIMT_OBSERVE)
constexpr bool kObserving = true;
#else
constexpr bool kObserving = false;
#endif

// Shadow state is kept per granule of 2 bytes: the kernels access 2-, 4-, 8- and 16-byte values;
// a 1-byte access covers its whole granule.
constexpr std::uintptr_t kGranule = 2;
constexpr std::uint16_t kNoThread = 0xFFFF;

/// One access, as the race rules need it.
struct Stamp {
  std::uint32_t block = 0;
  std::uint16_t thread = kNoThread;  // linear index in the block; kNoThread: none
  std::uint16_t epoch = 0;           // __syncthreads passed by the block before the access
  std::uint16_t cluster_epoch = 0;   // cluster barriers passed by its cluster before the access
  std::uint32_t warp_ops = 0;        // warp-synchronous ops passed by the thread
  const void* pc = nullptr;
};

struct Cell {
  std::uint32_t generation = 0;  // shared memory: the block the state belongs to
  bool many_readers = false;     // >= 2 unordered readers since the last write
  Stamp writer;
  Stamp reader;
};

struct Allocation {
  std::uintptr_t base = 0;
  std::size_t size = 0;
  std::vector<bool> written;  // per byte: written by anyone since cudaMalloc
  std::size_t traffic_index = static_cast<std::size_t>(-1);
};

/// One of the blocks running together (a cluster's, by rank; one without clusters).
struct Slot {
  uint3 idx{};
  std::uint32_t linear = 0;
  std::uint16_t epoch = 0;              // __syncthreads the block has passed
  std::vector<std::uint32_t> warp_ops;  // per thread of the block
  std::uintptr_t low = 0, high = 0;     // its dynamic shared memory
  std::vector<Cell> cells;
};

struct Observer {
  // The running launch.
  std::string kernel;
  dim3 grid{};
  dim3 block_dim{};
  std::size_t dynamic_bytes = 0;
  std::vector<Slot> slots;
  unsigned rank = 0;  // the running thread's slot
  std::uint32_t generation = 0;
  std::uint16_t cluster_epoch = 0;  // cluster barriers the running cluster has passed
  unsigned thread = 0;
  std::uintptr_t stack_low = 0, stack_high = 0;
  std::unordered_map<std::uintptr_t, std::unique_ptr<Cell[]>> static_pages;  // by generation
  std::unordered_map<std::uintptr_t, std::unique_ptr<Cell[]>> global_pages;
  std::string first_report;  // the first uninitialised read
  std::string first_race;
  LaunchTraffic traffic;
  // Across launches.
  std::map<std::uintptr_t, Allocation> allocations;
  Allocation* last_allocation = nullptr;
  std::vector<LaunchTraffic> history;
};

Observer& observer() {
  static Observer instance;
  return instance;
}

Slot& current(Observer& o) {
  return o.slots[o.rank];
}
const Slot& current(const Observer& o) {
  return o.slots[o.rank];
}

thread_local bool t_in_kernel = false;

constexpr std::uintptr_t kPageGranules = 32768;  // 64 KiB of memory per shadow page

/// The main program's writable static storage (.data and .bss). Kernel code's static __shared__
/// arrays are function-local statics (cuda_emu.h) and live there; the only other statics kernel
/// code touches are the emulator's built-in variables, which are_builtin() excludes. (A section
/// attribute would bound them exactly, but GCC drops it from statics of template instances.)
struct StaticRange {
  std::uintptr_t low = 0, high = 0;
};
StaticRange find_static_range() {
  StaticRange range;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) -> int {
        auto* r = static_cast<StaticRange*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_W)) continue;
          const std::uintptr_t low = info->dlpi_addr + ph.p_vaddr;
          const std::uintptr_t high = low + ph.p_memsz;
          if (r->low == 0 || low < r->low) r->low = low;
          if (high > r->high) r->high = high;
        }
        return 1;  // the first object is the main program
      },
      &range);
  return range;
}
const StaticRange& static_range() {
  static const StaticRange range = find_static_range();
  return range;
}
std::uintptr_t static_low() {
  return static_range().low;
}
std::uintptr_t static_high() {
  return static_range().high;
}
bool is_builtin(std::uintptr_t address) {
  const auto inside = [address](const void* p, std::size_t n) {
    const auto low = reinterpret_cast<std::uintptr_t>(p);
    return address >= low && address < low + n;
  };
  return inside(&detail::g_thread_idx, sizeof(detail::g_thread_idx)) ||
         inside(&detail::g_block_idx, sizeof(detail::g_block_idx)) ||
         inside(&detail::g_block_dim, sizeof(detail::g_block_dim)) ||
         inside(&detail::g_grid_dim, sizeof(detail::g_grid_dim));
}

std::string demangled_symbol(const void* address, std::uintptr_t* offset) {
  Dl_info info{};
  if (address == nullptr || dladdr(address, &info) == 0 || info.dli_sname == nullptr) {
    *offset = 0;
    return {};
  }
  *offset =
      reinterpret_cast<std::uintptr_t>(address) - reinterpret_cast<std::uintptr_t>(info.dli_saddr);
  int status = 0;
  char* name = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
  std::string text = status == 0 && name != nullptr ? name : info.dli_sname;
  std::free(name);
  return text;
}

/// file:line of a code address through addr2line when the binary has line tables, else the
/// function and offset.
std::string code_location(const void* pc) {
  if (pc == nullptr) return "an unknown location";
  Dl_info info{};
  if (dladdr(pc, &info) != 0 && info.dli_fname != nullptr) {
    const std::uintptr_t relative =
        reinterpret_cast<std::uintptr_t>(pc) - reinterpret_cast<std::uintptr_t>(info.dli_fbase) - 1;
    const std::string command = "addr2line -i -e '" + std::string(info.dli_fname) + "' 0x" + [&] {
      char text[32];
      std::snprintf(text, sizeof(text), "%zx", static_cast<std::size_t>(relative));
      return std::string(text);
    }() + " 2>/dev/null";
    if (FILE* pipe = popen(command.c_str(), "r")) {
      char line[512];
      std::string first;
      if (std::fgets(line, sizeof(line), pipe) != nullptr) first = line;
      pclose(pipe);
      while (!first.empty() && (first.back() == '\n' || first.back() == ' ')) first.pop_back();
      if (!first.empty() && first.find("??") == std::string::npos) {
        const std::size_t slash = first.find("/tests/");
        const std::size_t kernels = first.find("/kernels/");
        const std::size_t cut = kernels != std::string::npos ? kernels : slash;
        return cut != std::string::npos ? first.substr(cut + 1) : first;
      }
    }
  }
  std::uintptr_t offset = 0;
  const std::string symbol = demangled_symbol(pc, &offset);
  if (symbol.empty()) return "an unknown location";
  std::ostringstream text;
  text << (symbol.size() > 120 ? symbol.substr(0, 117) + "..." : symbol) << "+0x" << std::hex
       << offset;
  return text.str();
}

std::string thread_text(const Observer& o, std::uint32_t block, std::uint16_t thread) {
  const unsigned x = o.block_dim.x, y = o.block_dim.y;
  std::ostringstream text;
  if (block != current(o).linear) {
    const unsigned gx = o.grid.x, gy = o.grid.y;
    text << "block (" << block % gx << "," << (block / gx) % gy << "," << block / (gx * gy) << ") ";
  }
  text << "thread (" << thread % x << "," << (thread / x) % y << "," << thread / (x * y)
       << ") (warp " << thread / 32 << " lane " << thread % 32 << ")";
  return text.str();
}

/// Keeps the launch's first race and first uninitialised read; a race is reported before an
/// uninitialised read (the same missing synchronisation often shows as both).
void report(Observer& o, const std::string& what, bool is_race = false) {
  std::string& slot = is_race ? o.first_race : o.first_report;
  if (!slot.empty()) return;
  std::ostringstream text;
  const uint3 idx = current(o).idx;
  text << "simt: kernel '" << o.kernel << "' block (" << idx.x << "," << idx.y << "," << idx.z
       << "): " << what;
  slot = text.str();
}

/// Whether the block with linear index `block` runs in the current cluster.
bool in_cluster(const Observer& o, std::uint32_t block) {
  for (const Slot& slot : o.slots) {
    if (slot.linear == block) return true;
  }
  return false;
}

bool ordered(const Observer& o, const Stamp& before, std::uint16_t thread) {
  if (before.thread == kNoThread) return true;
  const Slot& self = current(o);
  const bool cluster_barrier = before.cluster_epoch < o.cluster_epoch;
  if (before.block != self.linear) {
    // Blocks of a launch are ordered only by a cluster barrier, within one cluster.
    return o.slots.size() > 1 && cluster_barrier && in_cluster(o, before.block);
  }
  if (before.thread == thread || before.epoch < self.epoch || cluster_barrier) return true;
  return before.thread / 32 == thread / 32 && before.warp_ops < self.warp_ops[thread];
}

/// Applies one access by the current thread to the granule's state; returns the conflict, if any.
const char* apply(Observer& o, Cell& cell, bool write, const void* pc, const Stamp** other) {
  const std::uint16_t self = static_cast<std::uint16_t>(o.thread);
  const Slot& slot = current(o);
  const Stamp now{slot.linear, self, slot.epoch, o.cluster_epoch, slot.warp_ops[o.thread], pc};
  if (cell.writer.thread != kNoThread && !ordered(o, cell.writer, self)) {
    *other = &cell.writer;
    return write ? "write after write" : "read after write";
  }
  if (write) {
    if (cell.reader.thread != kNoThread && !ordered(o, cell.reader, self) &&
        (cell.reader.thread != self || cell.many_readers)) {
      *other = &cell.reader;
      return "write after read";
    }
    cell.writer = now;
    cell.reader = Stamp{};
    cell.many_readers = false;
  } else if (cell.reader.thread == kNoThread || ordered(o, cell.reader, self)) {
    cell.reader = now;
    cell.many_readers = false;
  } else if (cell.reader.thread != self) {
    cell.many_readers = true;
  }
  return nullptr;
}

void race(Observer& o, const char* kind, const std::string& where, bool write, const void* pc,
          const Stamp& other) {
  std::ostringstream text;
  text << "race (" << kind << ") on " << where << ": "
       << thread_text(o, current(o).linear, static_cast<std::uint16_t>(o.thread))
       << (write ? " writes" : " reads") << " it at " << code_location(pc) << ", and "
       << thread_text(o, other.block, other.thread)
       << (std::strcmp(kind, "write after read") == 0 ? " read" : " wrote") << " it at "
       << code_location(other.pc) << ", with no "
       << (other.block == current(o).linear
               ? "__syncthreads (or, within a warp, warp-synchronous op) "
                 "between them"
               : "ordering between their blocks");
  report(o, text.str(), true);
}

Allocation* find_allocation(Observer& o, std::uintptr_t address) {
  if (o.last_allocation != nullptr && address >= o.last_allocation->base &&
      address < o.last_allocation->base + o.last_allocation->size) {
    return o.last_allocation;
  }
  auto found = o.allocations.upper_bound(address);
  if (found == o.allocations.begin()) return nullptr;
  --found;
  Allocation& a = found->second;
  if (address >= a.base + a.size) return nullptr;
  o.last_allocation = &a;
  return &a;
}

int width_index(std::size_t size) {
  switch (size) {
    case 16:
      return 0;
    case 8:
      return 1;
    case 4:
      return 2;
    case 2:
      return 3;
    default:
      return 4;
  }
}

void global_access(Observer& o, Allocation& a, std::uintptr_t address, std::size_t size, bool write,
                   const void* pc) {
  if (a.traffic_index == static_cast<std::size_t>(-1)) {
    a.traffic_index = o.traffic.allocations.size();
    o.traffic.allocations.push_back(
        AllocationTraffic{reinterpret_cast<const void*>(a.base), a.size});
  }
  AllocationTraffic& t = o.traffic.allocations[a.traffic_index];
  const std::size_t offset = address - a.base;
  const std::size_t bytes = std::min(size, a.size - offset);
  (write ? t.bytes_written : t.bytes_read) += bytes;
  (write ? t.stores : t.loads)[width_index(size)] += 1;
  (write ? o.traffic.stores : o.traffic.loads)[width_index(size)] += 1;
  if (!write && o.first_report.empty()) {
    for (std::size_t i = 0; i < bytes; ++i) {
      if (!a.written[offset + i]) {
        std::ostringstream text;
        text << "uninitialised read: " << thread_text(o, current(o).linear, o.thread) << " reads "
             << size << " bytes at byte " << offset + i << " of the " << a.size
             << "-byte allocation " << reinterpret_cast<const void*>(a.base) << " at "
             << code_location(pc)
             << ", which nothing (host copy, memset or kernel) has written since cudaMalloc";
        report(o, text.str());
        break;
      }
    }
  }
  if (write) {
    for (std::size_t i = 0; i < bytes; ++i) a.written[offset + i] = true;
  }
  for (std::uintptr_t g = address / kGranule; g <= (address + bytes - 1) / kGranule; ++g) {
    std::unique_ptr<Cell[]>& page = o.global_pages[g / kPageGranules];
    if (!page) page = std::make_unique<Cell[]>(kPageGranules);
    const Stamp* other = nullptr;
    if (const char* kind = apply(o, page[g % kPageGranules], write, pc, &other)) {
      if (o.first_race.empty()) {
        std::ostringstream where;
        where << "global byte " << g * kGranule - a.base << " of the " << a.size
              << "-byte allocation " << reinterpret_cast<const void*>(a.base);
        race(o, kind, where.str(), write, pc, *other);
      }
      return;
    }
  }
}

Cell& static_cell(Observer& o, std::uintptr_t granule) {
  std::unique_ptr<Cell[]>& page = o.static_pages[granule / kPageGranules];
  if (!page) page = std::make_unique<Cell[]>(kPageGranules);
  return page[granule % kPageGranules];
}

/// An access to static shared memory (owner == nullptr) or to the dynamic shared memory of the
/// block in `owner` (the caller's own, or a cluster peer's through map_shared_rank).
void shared_access(Observer& o, Slot* owner, std::uintptr_t low, std::uintptr_t address,
                   std::size_t size, bool write, const void* pc) {
  const bool is_static = owner == nullptr;
  o.traffic.shared_bytes += size;
  for (std::uintptr_t g = (address - low) / kGranule; g <= (address + size - 1 - low) / kGranule;
       ++g) {
    if (!is_static && g >= owner->cells.size()) break;
    Cell& cell = is_static ? static_cell(o, g) : owner->cells[g];
    if (cell.generation != o.generation) {
      cell = Cell{};
      cell.generation = o.generation;
      if (is_static) {
        // First touch of this granule by the block: it holds the 0xFF poison, as dynamic shared
        // memory does, and a read of it is an uninitialised read.
        std::memset(reinterpret_cast<void*>(low + g * kGranule), 0xFF, kGranule);
        if (!write && o.first_report.empty()) {
          std::uintptr_t offset = 0;
          const std::string array =
              demangled_symbol(reinterpret_cast<const void*>(address), &offset);
          std::ostringstream text;
          text << "uninitialised read: " << thread_text(o, current(o).linear, o.thread)
               << " reads static shared memory " << (array.empty() ? "" : array + " ") << "at byte "
               << offset << " that its block has not written, at " << code_location(pc);
          report(o, text.str());
        }
      }
    }
    const Stamp* other = nullptr;
    if (const char* kind = apply(o, cell, write, pc, &other)) {
      if (o.first_race.empty()) {
        std::ostringstream where;
        if (is_static) {
          std::uintptr_t offset = 0;
          const std::string array =
              demangled_symbol(reinterpret_cast<const void*>(low + g * kGranule), &offset);
          where << "static shared " << (array.empty() ? "memory" : array) << " byte " << offset;
        } else {
          where << "dynamic shared byte " << g * kGranule << " (float index " << g * kGranule / 4
                << ")";
          if (owner != &current(o)) {
            where << " of block (" << owner->idx.x << "," << owner->idx.y << "," << owner->idx.z
                  << "), a cluster peer's";
          }
        }
        race(o, kind, where.str(), write, pc, *other);
      }
      return;
    }
  }
}

void host_write(const void* ptr, std::size_t size);

inline void access(const void* ptr, std::size_t size, bool write, const void* pc) {
  if (!kObserving) return;
  if (!t_in_kernel) {
    // Host-side code of the emulated library writing device memory (Thrust's CPP backend):
    // the data is initialised, as a device-side Thrust call would have left it.
    if (write) host_write(ptr, size);
    return;
  }
  Observer& o = observer();
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  if (address >= o.stack_low && address < o.stack_high) return;  // the thread's own locals
  for (Slot& slot : o.slots) {
    if (address >= slot.low && address < slot.high) {
      shared_access(o, &slot, slot.low, address, size, write, pc);
      return;
    }
  }
  if (address >= static_low() && address < static_high()) {
    if (is_builtin(address)) return;
    if (o.slots.size() > 1 && o.first_race.empty()) {
      std::uintptr_t offset = 0;
      const std::string array = demangled_symbol(ptr, &offset);
      std::ostringstream text;
      text << "static __shared__ memory " << (array.empty() ? "" : array + " ")
           << "used by a cluster kernel, at " << code_location(pc)
           << ": the blocks of a cluster run together here and static shared memory has one "
              "copy, so a cluster kernel keeps every shared array in dynamic shared memory";
      report(o, text.str(), true);
      return;
    }
    shared_access(o, nullptr, static_low(), address, size, write, pc);
    return;
  }
  if (Allocation* a = find_allocation(o, address)) global_access(o, *a, address, size, write, pc);
}

void host_write(const void* ptr, std::size_t size) {
  Observer& o = observer();
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  if (o.allocations.empty() || address < o.allocations.begin()->first) return;
  if (Allocation* a = find_allocation(o, address)) {
    const std::size_t offset = address - a->base;
    for (std::size_t i = 0; i < size && offset + i < a->size; ++i) a->written[offset + i] = true;
  }
}

}  // namespace

bool observing() {
  return kObserving;
}

std::size_t observed_launches() {
  return observer().history.size();
}

std::vector<LaunchTraffic> traffic_since(std::size_t first) {
  const Observer& o = observer();
  if (first >= o.history.size()) return {};
  return std::vector<LaunchTraffic>(o.history.begin() + static_cast<std::ptrdiff_t>(first),
                                    o.history.end());
}

namespace detail {

void observe_launch_begin(const char* name, dim3 grid, dim3 block, unsigned cluster_blocks,
                          std::size_t dynamic_shared_bytes) {
  if (!kObserving) return;
  Observer& o = observer();
  o.kernel = name;
  o.grid = grid;
  o.block_dim = block;
  o.first_report.clear();
  o.first_race.clear();
  o.traffic = LaunchTraffic{};
  o.traffic.kernel = name;
  for (auto& [base, a] : o.allocations) a.traffic_index = static_cast<std::size_t>(-1);
  o.global_pages.clear();
  o.dynamic_bytes = dynamic_shared_bytes;
  o.slots.assign(cluster_blocks, Slot{});
  o.rank = 0;
  for (Slot& slot : o.slots) {
    slot.warp_ops.assign(static_cast<std::size_t>(block.x) * block.y * block.z, 0);
  }
}

void observe_cluster_begin(const uint3* blocks, const void* const* dynamic_shared, unsigned count) {
  if (!kObserving) return;
  Observer& o = observer();
  ++o.generation;           // every shared-memory cell starts fresh for the blocks
  if (o.generation == 0) {  // wrapped around: no stale cell may look current
    o.static_pages.clear();
    o.generation = 1;
  }
  o.cluster_epoch = 0;
  o.rank = 0;
  for (unsigned rank = 0; rank < count && rank < o.slots.size(); ++rank) {
    Slot& slot = o.slots[rank];
    slot.idx = blocks[rank];
    slot.linear = blocks[rank].x + o.grid.x * (blocks[rank].y + o.grid.y * blocks[rank].z);
    slot.epoch = 0;
    std::fill(slot.warp_ops.begin(), slot.warp_ops.end(), 0);
    slot.low = reinterpret_cast<std::uintptr_t>(dynamic_shared[rank]);
    slot.high = slot.low + o.dynamic_bytes;
    slot.cells.assign((o.dynamic_bytes + kGranule - 1) / kGranule, Cell{});
    for (Cell& cell : slot.cells) cell.generation = o.generation;
  }
}

void observe_thread(unsigned rank, unsigned linear, const void* stack_bottom,
                    std::size_t stack_size) {
  if (!kObserving) return;
  Observer& o = observer();
  o.rank = rank;
  o.thread = linear;
  o.stack_low = reinterpret_cast<std::uintptr_t>(stack_bottom);
  o.stack_high = o.stack_low + stack_size;
  t_in_kernel = true;
}

void observe_kernel_left() {
  t_in_kernel = false;
}

void observe_barrier(unsigned rank) {
  if (!kObserving) return;
  Observer& o = observer();
  if (rank < o.slots.size()) ++o.slots[rank].epoch;
}

void observe_cluster_barrier() {
  if (!kObserving) return;
  ++observer().cluster_epoch;
}

void observe_warp_op(unsigned linear) {
  if (!kObserving) return;
  Observer& o = observer();
  std::vector<std::uint32_t>& ops = current(o).warp_ops;
  if (linear < ops.size()) ++ops[linear];
}

std::string observe_launch_end() {
  t_in_kernel = false;
  if (!kObserving) return {};
  Observer& o = observer();
  o.global_pages.clear();
  o.history.push_back(o.traffic);
  return o.first_race.empty() ? o.first_report : o.first_race;
}

void observe_allocation(const void* ptr, std::size_t bytes) {
  if (!kObserving || ptr == nullptr) return;
  Observer& o = observer();
  Allocation a;
  a.base = reinterpret_cast<std::uintptr_t>(ptr);
  a.size = bytes;
  a.written.assign(bytes, false);
  o.allocations[a.base] = std::move(a);
  o.last_allocation = nullptr;
}

void observe_free(const void* ptr) {
  if (!kObserving) return;
  Observer& o = observer();
  o.allocations.erase(reinterpret_cast<std::uintptr_t>(ptr));
  o.last_allocation = nullptr;
}

void observe_host_write(const void* ptr, std::size_t bytes) {
  if (!kObserving) return;
  Observer& o = observer();
  auto address = reinterpret_cast<std::uintptr_t>(ptr);
  const std::uintptr_t end = address + bytes;
  while (address < end) {
    Allocation* a = find_allocation(o, address);
    if (a == nullptr) return;
    const std::uintptr_t stop = std::min<std::uintptr_t>(end, a->base + a->size);
    std::fill(a->written.begin() + static_cast<std::ptrdiff_t>(address - a->base),
              a->written.begin() + static_cast<std::ptrdiff_t>(stop - a->base), true);
    address = stop;
  }
}

void observe_atomic(const void* ptr, std::size_t bytes) {
  if (!kObserving || !t_in_kernel) return;
  Observer& o = observer();
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  if (Allocation* a = find_allocation(o, address)) {
    if (a->traffic_index == static_cast<std::size_t>(-1)) {
      a->traffic_index = o.traffic.allocations.size();
      o.traffic.allocations.push_back(
          AllocationTraffic{reinterpret_cast<const void*>(a->base), a->size});
    }
    AllocationTraffic& t = o.traffic.allocations[a->traffic_index];
    t.bytes_read += bytes;
    t.bytes_written += bytes;
    ++o.traffic.atomics;
    const std::size_t offset = address - a->base;
    for (std::size_t i = 0; i < bytes && offset + i < a->size; ++i) a->written[offset + i] = true;
  }
}

}  // namespace detail
}  // namespace simt

#if defined(SIMT_OBSERVE)
// --- the instrumentation's entry points
// ----------------------------------------------------------- GCC's -fsanitize=thread calls these
// around every memory access of instrumented code; without ThreadSanitizer's runtime linked, they
// are ours. Atomics are performed (sequentially consistent, which satisfies every requested order)
// and not observed: kernels use the emulator's atomics, which report themselves through
// observe_atomic.

#define SIMT_ACCESS_HOOKS(size)                                \
  extern "C" void __tsan_read##size(void* p) {                 \
    simt::access(p, size, false, __builtin_return_address(0)); \
  }                                                            \
  extern "C" void __tsan_write##size(void* p) {                \
    simt::access(p, size, true, __builtin_return_address(0));  \
  }                                                            \
  extern "C" void __tsan_unaligned_read##size(void* p) {       \
    simt::access(p, size, false, __builtin_return_address(0)); \
  }                                                            \
  extern "C" void __tsan_unaligned_write##size(void* p) {      \
    simt::access(p, size, true, __builtin_return_address(0));  \
  }                                                            \
  extern "C" void __tsan_volatile_read##size(void* p) {        \
    simt::access(p, size, false, __builtin_return_address(0)); \
  }                                                            \
  extern "C" void __tsan_volatile_write##size(void* p) {       \
    simt::access(p, size, true, __builtin_return_address(0));  \
  }

SIMT_ACCESS_HOOKS(1)
SIMT_ACCESS_HOOKS(2)
SIMT_ACCESS_HOOKS(4)
SIMT_ACCESS_HOOKS(8)
SIMT_ACCESS_HOOKS(16)

extern "C" {
void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}
void __tsan_read_range(void* p, unsigned long size) {
  simt::access(p, size, false, __builtin_return_address(0));
}
void __tsan_write_range(void* p, unsigned long size) {
  simt::access(p, size, true, __builtin_return_address(0));
}
void __tsan_atomic_thread_fence(int) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
void __tsan_atomic_signal_fence(int) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
}

#define SIMT_ATOMIC_HOOKS(bits, type)                                                             \
  extern "C" type __tsan_atomic##bits##_load(const volatile type* a, int) {                       \
    return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                  \
  }                                                                                               \
  extern "C" void __tsan_atomic##bits##_store(volatile type* a, type v, int) {                    \
    __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                                     \
  }                                                                                               \
  extern "C" type __tsan_atomic##bits##_exchange(volatile type* a, type v, int) {                 \
    return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                           \
  }                                                                                               \
  extern "C" type __tsan_atomic##bits##_fetch_add(volatile type* a, type v, int) {                \
    return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                            \
  }                                                                                               \
  extern "C" type __tsan_atomic##bits##_fetch_sub(volatile type* a, type v, int) {                \
    return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                            \
  }                                                                                               \
  extern "C" type __tsan_atomic##bits##_fetch_and(volatile type* a, type v, int) {                \
    return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST);                                            \
  }                                                                                               \
  extern "C" type __tsan_atomic##bits##_fetch_or(volatile type* a, type v, int) {                 \
    return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST);                                             \
  }                                                                                               \
  extern "C" type __tsan_atomic##bits##_fetch_xor(volatile type* a, type v, int) {                \
    return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST);                                            \
  }                                                                                               \
  extern "C" type __tsan_atomic##bits##_fetch_nand(volatile type* a, type v, int) {               \
    return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST);                                           \
  }                                                                                               \
  extern "C" int __tsan_atomic##bits##_compare_exchange_strong(volatile type* a, type* c, type v, \
                                                               int, int) {                        \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);       \
  }                                                                                               \
  extern "C" int __tsan_atomic##bits##_compare_exchange_weak(volatile type* a, type* c, type v,   \
                                                             int, int) {                          \
    return __atomic_compare_exchange_n(a, c, v, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);        \
  }                                                                                               \
  extern "C" type __tsan_atomic##bits##_compare_exchange_val(volatile type* a, type c, type v,    \
                                                             int, int) {                          \
    __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);             \
    return c;                                                                                     \
  }

SIMT_ATOMIC_HOOKS(8, unsigned char)
SIMT_ATOMIC_HOOKS(16, unsigned short)
SIMT_ATOMIC_HOOKS(32, unsigned int)
SIMT_ATOMIC_HOOKS(64, unsigned long long)

#endif  // SIMT_OBSERVE
