// simt — the fiber scheduler behind simt.h. See simt.h for the model and what it checks.
//
// Control flow: run_grid (the "scheduler", on the caller's stack) resumes one fiber at a time with
// jump_fcontext; a fiber returns control by jumping back when it must wait (barrier, warp op) or
// has exited. The last thread to arrive at a barrier or to complete a warp op's group releases the
// others and keeps running, so a warp-wide shuffle costs 31 round trips, not 32.
#include "simt/simt.h"

#include "simt/observer.h"

#include <boost/context/detail/fcontext.hpp>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
#endif

namespace fctx = boost::context::detail;

namespace simt {
namespace detail {

const uint3* g_thread_idx = nullptr;
uint3 g_block_idx{};
dim3 g_block_dim{};
dim3 g_grid_dim{};

namespace {

constexpr unsigned kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr std::size_t kDefaultDynamicShared = 48 * 1024;  // without cudaFuncSetAttribute
constexpr unsigned kMaxThreadsPerBlock = 1024;

enum class State { runnable, at_barrier, at_cluster_barrier, at_warp_op, exited };

/// A fiber stack: mmap'd, with an inaccessible guard page below it so an overflow faults.
struct Stack {
  char* mapping = nullptr;
  std::size_t mapping_size = 0;
  char* bottom = nullptr;  // lowest usable address
  std::size_t size = 0;
};

struct Thread {
  uint3 idx{};
  unsigned block = 0;  // the block's rank in its cluster (0 without clusters)
  unsigned index = 0;  // in Launch::threads: block * threads_per_block + linear
  unsigned linear = 0;
  unsigned warp = 0;
  unsigned lane = 0;
  State state = State::runnable;
  fctx::fcontext_t fiber = nullptr;
  Stack* stack = nullptr;
  void* asan_fake_stack = nullptr;
  // Where it waits (barrier or warp op), for messages.
  const char* file = "";
  int line = 0;
  // The pending warp op.
  WarpOp op = WarpOp::sync;
  unsigned mask = 0;
  std::uint64_t in = 0;
  std::uint64_t out = 0;
  int param = 0;
  int width = 32;
};

/// Lanes of one warp waiting in the same warp op with the same mask.
struct WarpGroup {
  unsigned mask = 0;
  unsigned arrived = 0;
  WarpOp op = WarpOp::sync;
  const char* file = "";
  int line = 0;
  unsigned first_lane = 0;
};

struct Warp {
  unsigned existing = 0;  // lanes that exist (the last warp of a block may be partial)
  unsigned exited = 0;
  std::vector<WarpGroup> groups;
};

/// One running block: its barrier, warps and dynamic shared memory.
struct Block {
  uint3 idx{};
  std::vector<Warp> warps;
  // The block barrier.
  unsigned barrier_arrived = 0;
  const char* barrier_file = "";
  int barrier_line = 0;
  unsigned barrier_first = 0;  // Launch::threads index
  unsigned exited = 0;
  unsigned first_exited = 0;  // Launch::threads index
  std::unique_ptr<unsigned char[]> dynamic_shared;
  // Distributed shared memory: the ranks that mapped this block's shared memory since the last
  // cluster barrier completed, and where the last of them did.
  unsigned mapped_by = 0;
  const char* map_file = "";
  int map_line = 0;
};

struct Launch {
  const char* name = "";
  void (*body)(void*) = nullptr;
  void* context = nullptr;
  unsigned threads_per_block = 0;
  dim3 cluster{1, 1, 1};
  unsigned cluster_size = 1;
  std::vector<Block> blocks;    // the running cluster's blocks, by rank
  std::vector<Thread> threads;  // every thread of the running cluster
  std::vector<unsigned> order;
  // The cluster barrier.
  unsigned cluster_arrived = 0;
  const char* cluster_file = "";
  int cluster_line = 0;
  unsigned cluster_first = 0;
  unsigned cluster_exited = 0;  // threads of the cluster that exited
  unsigned first_exited = 0;    // the first of them
  unsigned blocks_exited = 0;   // mask of ranks whose every thread exited
  std::size_t dynamic_shared_bytes = 0;
  // The scheduler's side of the fiber switch.
  fctx::fcontext_t scheduler = nullptr;
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;
  std::size_t scheduler_stack_size = 0;
  Thread* current = nullptr;
  bool faulted = false;
  std::string fault;
};

Launch* g_launch = nullptr;
std::mutex g_launch_mutex;
std::vector<std::unique_ptr<Stack>> g_stacks;
Stats g_stats;
Schedule g_schedule;
bool g_schedule_initialised = false;
std::mutex g_attribute_mutex;
std::map<const void*, std::size_t> g_max_dynamic_shared;
std::set<const void*> g_non_portable_cluster;

std::string hex(unsigned value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}
std::string dims(const uint3& d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}
std::string lanes(unsigned mask) {
  std::string text = "{";
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    if (mask & (1u << lane)) {
      if (text.size() > 1) text += ",";
      text += std::to_string(lane);
    }
  }
  return text + "}";
}
std::string site(const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line);
}
bool same_site(const char* file_a, int line_a, const char* file_b, int line_b) {
  return line_a == line_b && (file_a == file_b || std::strcmp(file_a, file_b) == 0);
}
const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::shfl_xor:
      return "__shfl_xor_sync";
    case WarpOp::shfl_down:
      return "__shfl_down_sync";
    case WarpOp::shfl_up:
      return "__shfl_up_sync";
    case WarpOp::shfl_idx:
      return "__shfl_sync";
    case WarpOp::ballot:
      return "__ballot_sync";
    case WarpOp::sync:
      return "__syncwarp";
  }
  return "warp op";
}
std::string thread_name(const Thread& thread) {
  return "thread " + dims(thread.idx) + " (warp " + std::to_string(thread.warp) + " lane " +
         std::to_string(thread.lane) + ")";
}

std::size_t stack_bytes() {
#if defined(SIMT_ASAN)
  std::size_t kib = 512;  // ASan's redzones make frames several times larger
#else
  std::size_t kib = 128;
#endif
  if (const char* text = std::getenv("SIMT_STACK_KB")) {
    const long value = std::strtol(text, nullptr, 10);
    if (value >= 16) kib = static_cast<std::size_t>(value);
  }
  return kib * 1024;
}

void ensure_stacks(std::size_t count) {
  static const std::size_t size = stack_bytes();
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  while (g_stacks.size() < count) {
    auto stack = std::make_unique<Stack>();
    stack->mapping_size = size + page;
    void* mapping = mmap(nullptr, stack->mapping_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapping == MAP_FAILED) throw std::runtime_error("simt: cannot map a fiber stack");
    mprotect(mapping, page, PROT_NONE);
    stack->mapping = static_cast<char*>(mapping);
    stack->bottom = stack->mapping + page;
    stack->size = size;
    g_stacks.push_back(std::move(stack));
  }
}

// --- fiber switching (with AddressSanitizer's stack-switch annotations) -------------------------

void fiber_entry(fctx::transfer_t transfer);

/// Scheduler side: run `thread` until it waits, exits or faults.
void resume(Launch& launch, Thread& thread) {
  launch.current = &thread;
  g_thread_idx = &thread.idx;
  g_block_idx = launch.blocks[thread.block].idx;
  ++g_stats.switches;
  observe_thread(thread.block, thread.linear, thread.stack->bottom, thread.stack->size);
#if defined(SIMT_ASAN)
  __sanitizer_start_switch_fiber(&launch.scheduler_fake_stack, thread.stack->bottom,
                                 thread.stack->size);
#endif
  const fctx::transfer_t back = fctx::jump_fcontext(thread.fiber, &launch);
#if defined(SIMT_ASAN)
  __sanitizer_finish_switch_fiber(launch.scheduler_fake_stack, nullptr, nullptr);
#endif
  observe_kernel_left();
  thread.fiber = back.fctx;
  launch.current = nullptr;
}

/// Unwinds a kernel thread's fiber when its launch is aborted: thrown at the fault, and out of
/// every suspended thread's wait, so destructors run and no stack is left mid-frame. Deliberately
/// not a std::exception, so kernel code cannot mistake it for an error of its own.
struct FiberAbort {};

/// Fiber side: give control back to the scheduler until this thread may continue. Throws
/// FiberAbort when it is resumed only to unwind an aborted launch.
void yield(Launch& launch, Thread& thread) {
#if defined(SIMT_ASAN)
  __sanitizer_start_switch_fiber(&thread.asan_fake_stack, launch.scheduler_stack_bottom,
                                 launch.scheduler_stack_size);
#else
  static_cast<void>(thread);
#endif
  const fctx::transfer_t back = fctx::jump_fcontext(launch.scheduler, nullptr);
  launch.scheduler = back.fctx;
#if defined(SIMT_ASAN)
  __sanitizer_finish_switch_fiber(thread.asan_fake_stack, &launch.scheduler_stack_bottom,
                                  &launch.scheduler_stack_size);
#endif
  if (launch.faulted) throw FiberAbort{};
}

/// Fiber side: leave for good (the thread has exited).
[[noreturn]] void yield_final(Launch& launch, Thread& thread) {
  static_cast<void>(thread);
#if defined(SIMT_ASAN)
  __sanitizer_start_switch_fiber(nullptr, launch.scheduler_stack_bottom,
                                 launch.scheduler_stack_size);
#endif
  fctx::jump_fcontext(launch.scheduler, nullptr);
  std::abort();  // unreachable: an exited fiber is never resumed
}

/// Records the first fault of the launch, naming kernel, block and `thread`.
void record_fault(Launch& launch, const Thread& thread, const std::string& what) {
  if (launch.faulted) return;
  launch.faulted = true;
  launch.fault = "simt: kernel '" + std::string(launch.name) + "' block " + dims(g_block_idx) +
                 " " + thread_name(thread) + ": " + what;
}

/// Fiber side: record the fault and unwind this thread.
[[noreturn]] void fault_and_leave(Launch& launch, Thread& thread, const std::string& what) {
  record_fault(launch, thread, what);
  throw FiberAbort{};
}

std::string rank_name(const Launch& launch, unsigned rank) {
  return "rank " + std::to_string(rank) + " (block " + dims(launch.blocks[rank].idx) + ")";
}

void on_exit(Launch& launch, Thread& thread) {
  Block& block = launch.blocks[thread.block];
  if (block.barrier_arrived > 0) {
    fault_and_leave(
        launch, thread,
        "barrier divergence: this thread exited while " + std::to_string(block.barrier_arrived) +
            " thread(s) wait at __syncthreads at " + site(block.barrier_file, block.barrier_line) +
            " (every thread of a block must reach each __syncthreads)");
  }
  if (launch.cluster_arrived > 0) {
    fault_and_leave(launch, thread,
                    "cluster barrier divergence: this thread exited while " +
                        std::to_string(launch.cluster_arrived) +
                        " thread(s) of its cluster wait at the cluster barrier at " +
                        site(launch.cluster_file, launch.cluster_line) +
                        " (every thread of a cluster must reach each cluster barrier)");
  }
  if (block.exited + 1 == launch.threads_per_block && launch.cluster_size > 1) {
    // The block's last thread: its shared memory goes away. A peer that mapped it since the last
    // cluster barrier may still be accessing it, and CUDA requires a cluster barrier between a
    // peer's last access to a block's shared memory and that block's exit.
    const unsigned self_bit = 1u << thread.block;
    const unsigned live = block.mapped_by & ~launch.blocks_exited & ~self_bit;
    if (live != 0) {
      const unsigned peer = static_cast<unsigned>(__builtin_ctz(live));
      fault_and_leave(launch, thread,
                      "distributed shared memory: this block (" + rank_name(launch, thread.block) +
                          ") exits while " + rank_name(launch, peer) +
                          ", which mapped its shared memory at " +
                          site(block.map_file, block.map_line) +
                          " after the last cluster barrier, is still running (a block must pass "
                          "a cluster barrier after its peers' last access to its shared memory "
                          "before it exits)");
    }
    launch.blocks_exited |= self_bit;
    // Whatever still reads it through a stale mapping gets NaN, not the block's last values.
    if (launch.dynamic_shared_bytes > 0) {
      std::memset(block.dynamic_shared.get(), 0xFF, launch.dynamic_shared_bytes);
    }
  }
  Warp& warp = block.warps[thread.warp];
  const unsigned bit = 1u << thread.lane;
  for (const WarpGroup& group : warp.groups) {
    if (group.mask & bit) {
      fault_and_leave(launch, thread,
                      "this lane exited while lanes " + lanes(group.arrived) + " wait for it in " +
                          op_name(group.op) + " at " + site(group.file, group.line) +
                          " with mask " + hex(group.mask));
    }
  }
  warp.exited |= bit;
  if (block.exited == 0) block.first_exited = thread.index;
  ++block.exited;
  if (launch.cluster_exited == 0) launch.first_exited = thread.index;
  ++launch.cluster_exited;
}

void fiber_entry(fctx::transfer_t transfer) {
  Launch& launch = *static_cast<Launch*>(transfer.data);
  launch.scheduler = transfer.fctx;
#if defined(SIMT_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &launch.scheduler_stack_bottom,
                                  &launch.scheduler_stack_size);
#endif
  Thread& thread = *launch.current;
  try {
    if (!launch.faulted) {
      launch.body(launch.context);
      on_exit(launch, thread);
    }
  } catch (const FiberAbort&) {
    // The launch is being aborted; this thread's frames are unwound.
  } catch (const std::exception& error) {
    record_fault(launch, thread, std::string("the kernel threw: ") + error.what());
  } catch (...) {
    record_fault(launch, thread, "the kernel threw a non-standard exception");
  }
  thread.state = State::exited;
  yield_final(launch, thread);
}

Launch& current_launch(const char* what) {
  if (g_launch == nullptr || g_launch->current == nullptr) {
    std::fprintf(stderr, "simt: %s called outside a kernel\n", what);
    std::abort();
  }
  return *g_launch;
}

// --- warp ops ------------------------------------------------------------------------------------

bool valid_width(int width) {
  return width >= 1 && width <= 32 && (width & (width - 1)) == 0;
}

/// The lane a shuffle of `lane` reads, following CUDA's rules for sub-warp widths: a source outside
/// the caller's width-segment (xor, down, up) means the caller keeps its own value.
unsigned source_lane(const Thread& thread) {
  const int lane = static_cast<int>(thread.lane);
  const int width = thread.width;
  const int base = lane & ~(width - 1);
  int source = lane;
  switch (thread.op) {
    case WarpOp::shfl_xor:
      source = lane ^ thread.param;
      break;
    case WarpOp::shfl_down:
      source = lane + thread.param;
      break;
    case WarpOp::shfl_up:
      source = lane - thread.param;
      break;
    case WarpOp::shfl_idx:
      source = base + (thread.param & (width - 1));
      break;
    default:
      break;
  }
  if (source < base || source >= base + width) source = lane;
  return static_cast<unsigned>(source);
}

/// Every lane of `group` has arrived: compute each lane's result and release them. Runs on the
/// last lane to arrive (`self`). Returns false (after recording a fault) on a bad source lane.
bool complete(Launch& launch, Warp& warp, const WarpGroup& group, Thread& self) {
  const unsigned first = self.block * launch.threads_per_block + self.warp * kWarpSize;
  if (group.op == WarpOp::ballot) {
    unsigned votes = 0;
    for (unsigned lane = 0; lane < kWarpSize; ++lane) {
      if ((group.mask & (1u << lane)) && launch.threads[first + lane].in != 0) votes |= 1u << lane;
    }
    for (unsigned lane = 0; lane < kWarpSize; ++lane) {
      if (group.mask & (1u << lane)) launch.threads[first + lane].out = votes;
    }
  } else if (group.op != WarpOp::sync) {
    for (unsigned lane = 0; lane < kWarpSize; ++lane) {
      if (!(group.mask & (1u << lane))) continue;
      Thread& reader = launch.threads[first + lane];
      const unsigned source = source_lane(reader);
      if (!(group.mask & (1u << source))) {
        record_fault(launch, reader,
                     std::string(op_name(group.op)) + " at " + site(group.file, group.line) +
                         " reads lane " + std::to_string(source) + ", which is outside mask " +
                         hex(group.mask) +
                         ((warp.exited & (1u << source)) ? " (and has exited)" : ""));
        return false;
      }
      reader.out = launch.threads[first + source].in;
    }
  }
  for (unsigned lane = 0; lane < kWarpSize; ++lane) {
    if (group.mask & (1u << lane)) launch.threads[first + lane].state = State::runnable;
  }
  return true;
}

// --- schedule ------------------------------------------------------------------------------------

Schedule& schedule_state() {
  if (!g_schedule_initialised) {
    g_schedule_initialised = true;
    if (const char* text = std::getenv("SIMT_SCHEDULE")) {
      try {
        g_schedule = parse_schedule(text);
      } catch (const std::exception& error) {
        std::fprintf(stderr, "simt: ignoring SIMT_SCHEDULE: %s\n", error.what());
      }
    }
  }
  return g_schedule;
}

void order_indices(std::vector<unsigned>& indices, unsigned count, const Schedule& schedule,
                   std::uint64_t salt) {
  indices.resize(count);
  for (unsigned i = 0; i < count; ++i) {
    indices[i] = schedule.order == Order::reverse ? count - 1 - i : i;
  }
  if (schedule.order == Order::shuffle) {
    std::mt19937_64 rng(schedule.seed * 0x9E3779B97F4A7C15ull + salt);
    std::shuffle(indices.begin(), indices.end(), rng);
  }
}

/// No thread can run and some have not exited: describe who waits for whom.
std::string describe_deadlock(const Launch& launch, unsigned* culprit) {
  std::ostringstream text;
  text << "deadlock: no thread can make progress;";
  bool first = true;
  *culprit = 0;
  const bool clustered = launch.cluster_size > 1;
  if (launch.cluster_arrived > 0) {
    text << " " << launch.cluster_arrived << " thread(s) wait at the cluster barrier at "
         << site(launch.cluster_file, launch.cluster_line);
    *culprit = launch.cluster_first;
    first = false;
  }
  for (unsigned rank = 0; rank < launch.blocks.size(); ++rank) {
    const Block& block = launch.blocks[rank];
    const std::string who = clustered ? rank_name(launch, rank) + " " : std::string();
    if (block.barrier_arrived > 0) {
      text << (first ? " " : "; ") << who << block.barrier_arrived
           << " thread(s) wait at __syncthreads at "
           << site(block.barrier_file, block.barrier_line);
      if (first) *culprit = block.barrier_first;
      first = false;
    }
    for (std::size_t w = 0; w < block.warps.size(); ++w) {
      for (const WarpGroup& group : block.warps[w].groups) {
        if (first) {
          *culprit = rank * launch.threads_per_block + static_cast<unsigned>(w) * kWarpSize +
                     group.first_lane;
        }
        text << (first ? " " : "; ") << who << "warp " << w << " lanes " << lanes(group.arrived)
             << " wait in " << op_name(group.op) << " at " << site(group.file, group.line)
             << " for lanes " << lanes(group.mask & ~group.arrived);
        first = false;
      }
    }
  }
  return text.str();
}

}  // namespace

// --- the API used by kernels
// ------------------------------------------------------------------------

std::uint64_t warp_op(WarpOp op, const char* file, int line, unsigned mask, std::uint64_t value,
                      int param, int width) {
  Launch& launch = current_launch(op_name(op));
  Thread& self = *launch.current;
  Warp& warp = launch.blocks[self.block].warps[self.warp];
  const unsigned bit = 1u << self.lane;
  // Messages are built only on a fault: this function runs once per lane per shuffle.
  const auto where = [&] { return std::string(op_name(op)) + " at " + site(file, line); };
  if (!(mask & bit)) {
    fault_and_leave(launch, self, where() + ": mask " + hex(mask) + " leaves out the calling lane");
  }
  if (op != WarpOp::ballot && op != WarpOp::sync && !valid_width(width)) {
    fault_and_leave(
        launch, self,
        where() + ": width " + std::to_string(width) + " is not a power of two in [1, 32]");
  }
  if (mask & ~warp.existing) {
    fault_and_leave(launch, self,
                    where() + ": mask " + hex(mask) + " names lanes " +
                        lanes(mask & ~warp.existing) + " that do not exist (the block has " +
                        std::to_string(launch.threads_per_block) + " threads)");
  }
  if (mask & warp.exited) {
    fault_and_leave(launch, self,
                    where() + ": mask " + hex(mask) + " names lanes " + lanes(mask & warp.exited) +
                        " that have already exited");
  }
  WarpGroup* group = nullptr;
  for (WarpGroup& candidate : warp.groups) {
    if (candidate.mask & mask) {
      group = &candidate;
      break;
    }
  }
  if (group == nullptr) {
    warp.groups.push_back(WarpGroup{mask, 0, op, file, line, self.lane});
    group = &warp.groups.back();
  } else if (group->mask != mask) {
    fault_and_leave(launch, self,
                    where() + " uses mask " + hex(mask) + " while lanes " + lanes(group->arrived) +
                        " wait in " + op_name(group->op) + " at " + site(group->file, group->line) +
                        " with mask " + hex(group->mask));
  } else if (group->op != op) {
    fault_and_leave(launch, self,
                    "warp divergence: this lane reached " + where() + " while lanes " +
                        lanes(group->arrived) + " wait in " + op_name(group->op) + " at " +
                        site(group->file, group->line));
  }
  observe_warp_op(self.linear);
  self.op = op;
  self.mask = mask;
  self.in = value;
  self.param = param;
  self.width = width;
  self.file = file;
  self.line = line;
  group->arrived |= bit;
  if (group->arrived == group->mask) {
    const WarpGroup done = *group;
    warp.groups.erase(warp.groups.begin() + (group - warp.groups.data()));
    if (!complete(launch, warp, done, self)) throw FiberAbort{};
    return self.out;
  }
  self.state = State::at_warp_op;
  yield(launch, self);
  return self.out;
}

/// Fiber side: faults when lanes of the caller's warp wait for it in a warp op while it reaches a
/// barrier (`where`): they would wait forever.
void leave_if_lanes_wait(Launch& launch, Thread& self, const std::string& where) {
  for (const WarpGroup& group : launch.blocks[self.block].warps[self.warp].groups) {
    if (group.mask & (1u << self.lane)) {
      fault_and_leave(launch, self,
                      "reached " + where + " while lanes " + lanes(group.arrived) +
                          " of its warp wait for it in " + op_name(group.op) + " at " +
                          site(group.file, group.line));
    }
  }
}

void syncthreads(const char* file, int line) {
  Launch& launch = current_launch("__syncthreads");
  Thread& self = *launch.current;
  Block& block = launch.blocks[self.block];
  const auto where = [&] { return "__syncthreads at " + site(file, line); };
  if (block.exited > 0) {
    fault_and_leave(launch, self,
                    "barrier divergence: reached " + where() + " after " +
                        thread_name(launch.threads[block.first_exited]) +
                        " exited (every thread of a block must reach each __syncthreads)");
  }
  leave_if_lanes_wait(launch, self, where());
  if (block.barrier_arrived == 0) {
    block.barrier_file = file;
    block.barrier_line = line;
    block.barrier_first = self.index;
  } else if (!same_site(file, line, block.barrier_file, block.barrier_line)) {
    fault_and_leave(launch, self,
                    "barrier divergence: reached " + where() + " while " +
                        std::to_string(block.barrier_arrived) + " thread(s), first " +
                        thread_name(launch.threads[block.barrier_first]) +
                        ", wait at __syncthreads at " +
                        site(block.barrier_file, block.barrier_line));
  }
  self.file = file;
  self.line = line;
  if (++block.barrier_arrived == launch.threads_per_block) {
    block.barrier_arrived = 0;
    observe_barrier(self.block);
    Thread* first = &launch.threads[self.block * launch.threads_per_block];
    for (unsigned t = 0; t < launch.threads_per_block; ++t) {
      if (first[t].state == State::at_barrier) first[t].state = State::runnable;
    }
    return;
  }
  self.state = State::at_barrier;
  yield(launch, self);
}

void cluster_sync(const char* file, int line) {
  Launch& launch = current_launch("cluster barrier");
  Thread& self = *launch.current;
  const auto where = [&] { return "the cluster barrier at " + site(file, line); };
  if (launch.cluster_exited > 0) {
    fault_and_leave(launch, self,
                    "cluster barrier divergence: reached " + where() + " after " +
                        thread_name(launch.threads[launch.first_exited]) + " of " +
                        rank_name(launch, launch.threads[launch.first_exited].block) +
                        " exited (every thread of a cluster must reach each cluster barrier)");
  }
  const Block& block = launch.blocks[self.block];
  if (block.barrier_arrived > 0) {
    // Its block-mates wait at __syncthreads for this thread, which waits for them here.
    fault_and_leave(launch, self,
                    "reached " + where() + " while " + std::to_string(block.barrier_arrived) +
                        " thread(s) of its block wait for it at __syncthreads at " +
                        site(block.barrier_file, block.barrier_line));
  }
  leave_if_lanes_wait(launch, self, where());
  if (launch.cluster_arrived == 0) {
    launch.cluster_file = file;
    launch.cluster_line = line;
    launch.cluster_first = self.index;
  } else if (!same_site(file, line, launch.cluster_file, launch.cluster_line)) {
    const Thread& first = launch.threads[launch.cluster_first];
    fault_and_leave(launch, self,
                    "cluster barrier divergence: reached " + where() + " while " +
                        std::to_string(launch.cluster_arrived) + " thread(s), first " +
                        thread_name(first) + " of " + rank_name(launch, first.block) +
                        ", wait at the cluster barrier at " +
                        site(launch.cluster_file, launch.cluster_line));
  }
  self.file = file;
  self.line = line;
  if (++launch.cluster_arrived == launch.threads.size()) {
    launch.cluster_arrived = 0;
    for (Block& b : launch.blocks) b.mapped_by = 0;  // every access so far is now ordered
    observe_cluster_barrier();
    for (Thread& thread : launch.threads) {
      if (thread.state == State::at_cluster_barrier) thread.state = State::runnable;
    }
    return;
  }
  self.state = State::at_cluster_barrier;
  yield(launch, self);
}

unsigned cluster_rank() {
  return current_launch("cluster rank").current->block;
}

unsigned cluster_size() {
  return current_launch("cluster size").cluster_size;
}

dim3 cluster_dims() {
  return current_launch("cluster dims").cluster;
}

void* map_shared_rank(const void* address, unsigned rank, const char* file, int line) {
  Launch& launch = current_launch("map_shared_rank");
  Thread& self = *launch.current;
  const auto where = [&] { return "map_shared_rank at " + site(file, line); };
  if (rank >= launch.cluster_size) {
    fault_and_leave(launch, self,
                    where() + ": rank " + std::to_string(rank) + " is outside the cluster of " +
                        std::to_string(launch.cluster_size) + " block(s)");
  }
  const Block& own = launch.blocks[self.block];
  const auto base = reinterpret_cast<std::uintptr_t>(own.dynamic_shared.get());
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  if (launch.dynamic_shared_bytes == 0 || at < base || at > base + launch.dynamic_shared_bytes) {
    fault_and_leave(launch, self,
                    where() +
                        ": address is not in this block's dynamic shared memory (the "
                        "emulator maps dynamic shared memory only; a cluster kernel keeps "
                        "no static __shared__ arrays, whose blocks run concurrently here)");
  }
  if (launch.blocks_exited & (1u << rank)) {
    fault_and_leave(launch, self,
                    "distributed shared memory: " + where() + ": " + rank_name(launch, rank) +
                        " has exited; its shared memory is gone (a block must pass a cluster "
                        "barrier after its peers' last access to its shared memory before it "
                        "exits)");
  }
  Block& target = launch.blocks[rank];
  if (rank != self.block) {
    target.mapped_by |= 1u << self.block;
    target.map_file = file;
    target.map_line = line;
  }
  return target.dynamic_shared.get() + (at - base);
}

void fault(const std::string& what) {
  Launch& launch = current_launch("fault");
  fault_and_leave(launch, *launch.current, what);
}

void check_aligned(const void* ptr, std::size_t alignment, const char* what) {
  if (reinterpret_cast<std::uintptr_t>(ptr) % alignment != 0) {
    std::ostringstream text;
    text << "misaligned " << alignment << "-byte access in " << what << " at address " << ptr
         << " (a GPU raises cudaErrorMisalignedAddress)";
    fault(text.str());
  }
}

void* dynamic_shared() {
  Launch& launch = current_launch("dynamic shared memory");
  return launch.blocks[launch.current->block].dynamic_shared.get();
}

std::size_t max_dynamic_shared(const void* kernel_id) {
  std::lock_guard<std::mutex> lock(g_attribute_mutex);
  const auto found = g_max_dynamic_shared.find(kernel_id);
  return found == g_max_dynamic_shared.end() ? 0 : found->second;
}

void set_max_dynamic_shared(const void* kernel_id, std::size_t bytes) {
  std::lock_guard<std::mutex> lock(g_attribute_mutex);
  g_max_dynamic_shared[kernel_id] = bytes;
}

bool non_portable_cluster_size(const void* kernel_id) {
  std::lock_guard<std::mutex> lock(g_attribute_mutex);
  return g_non_portable_cluster.count(kernel_id) != 0;
}

void set_non_portable_cluster_size(const void* kernel_id, bool allowed) {
  std::lock_guard<std::mutex> lock(g_attribute_mutex);
  if (allowed) {
    g_non_portable_cluster.insert(kernel_id);
  } else {
    g_non_portable_cluster.erase(kernel_id);
  }
}

// --- the grid
// --------------------------------------------------------------------------------------

cudaError_t launch_config_error(const void* kernel_id, dim3 grid, dim3 block,
                                std::size_t shared_bytes, dim3 cluster) {
  const std::uint64_t threads_per_block = static_cast<std::uint64_t>(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      threads_per_block > kMaxThreadsPerBlock || block.x > 1024 || block.y > 1024 || block.z > 64 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    return cudaErrorInvalidConfiguration;
  }
  const std::size_t allowed = std::max(kDefaultDynamicShared, max_dynamic_shared(kernel_id));
  if (shared_bytes > allowed) return cudaErrorInvalidValue;
  // A cluster divides the grid in every dimension and holds at most 8 blocks (16 with the
  // kernel's non-portable-size opt-in).
  const std::uint64_t cluster_blocks =
      static_cast<std::uint64_t>(cluster.x) * cluster.y * cluster.z;
  if (cluster.x == 0 || cluster.y == 0 || cluster.z == 0 || grid.x % cluster.x != 0 ||
      grid.y % cluster.y != 0 || grid.z % cluster.z != 0 ||
      cluster_blocks > (non_portable_cluster_size(kernel_id) ? 16u : 8u)) {
    return cudaErrorInvalidClusterSize;
  }
  // Over the kernel's __launch_bounds__, or more registers than the SM has for the block: the GPU
  // refuses the launch ("too many resources requested for launch").
  if (resident_blocks(kernel_resources(kernel_id), static_cast<int>(threads_per_block),
                      shared_bytes) == 0) {
    return cudaErrorLaunchOutOfResources;
  }
  return cudaSuccess;
}

cudaError_t run_grid(const char* name, const void* kernel_id, dim3 grid, dim3 block,
                     std::size_t shared_bytes, dim3 cluster, void (*body)(void*), void* context) {
  const cudaError_t config = launch_config_error(kernel_id, grid, block, shared_bytes, cluster);
  if (config != cudaSuccess) return config;
  const std::uint64_t threads_per_block = static_cast<std::uint64_t>(block.x) * block.y * block.z;
  record_launch(name, grid, block, shared_bytes);

  std::lock_guard<std::mutex> lock(g_launch_mutex);
  const Schedule schedule = schedule_state();
  const unsigned nthreads = static_cast<unsigned>(threads_per_block);
  const unsigned nwarps = (nthreads + kWarpSize - 1) / kWarpSize;
  const unsigned csize = cluster.x * cluster.y * cluster.z;
  const unsigned total = nthreads * csize;  // threads of one cluster, all run together
  ensure_stacks(total);

  Launch launch;
  launch.name = name;
  launch.body = body;
  launch.context = context;
  launch.threads_per_block = nthreads;
  launch.cluster = cluster;
  launch.cluster_size = csize;
  launch.dynamic_shared_bytes = shared_bytes;
  launch.blocks.resize(csize);
  std::vector<const void*> shared_regions(csize);
  for (unsigned rank = 0; rank < csize; ++rank) {
    Block& b = launch.blocks[rank];
    b.warps.resize(nwarps);
    b.dynamic_shared.reset(new unsigned char[std::max<std::size_t>(shared_bytes, 1)]);
    shared_regions[rank] = b.dynamic_shared.get();
    for (unsigned w = 0; w < nwarps; ++w) {
      const unsigned count = std::min(kWarpSize, nthreads - w * kWarpSize);
      b.warps[w].existing = count == kWarpSize ? kFullMask : (1u << count) - 1;
    }
  }
  launch.threads.resize(total);
  for (unsigned index = 0; index < total; ++index) {
    Thread& thread = launch.threads[index];
    const unsigned linear = index % nthreads;
    thread.index = index;
    thread.block = index / nthreads;
    thread.linear = linear;
    thread.warp = linear / kWarpSize;
    thread.lane = linear % kWarpSize;
    thread.idx =
        uint3{linear % block.x, (linear / block.x) % block.y, linear / (block.x * block.y)};
    thread.stack = g_stacks[index].get();
  }

  observe_launch_begin(name, grid, block, csize, shared_bytes);
  g_launch = &launch;
  g_grid_dim = grid;
  g_block_dim = block;
  ++g_stats.launches;

  // Clusters run one after another in the schedule's order; the blocks of one run together.
  const dim3 clusters(grid.x / cluster.x, grid.y / cluster.y, grid.z / cluster.z);
  const std::uint64_t nclusters = static_cast<std::uint64_t>(clusters.x) * clusters.y * clusters.z;
  std::vector<unsigned> cluster_order;
  if (schedule.order == Order::shuffle) {
    order_indices(cluster_order, static_cast<unsigned>(nclusters), schedule, 0x51ed);
  }
  std::vector<uint3> block_ids(csize);
  for (std::uint64_t step = 0; step < nclusters && !launch.faulted; ++step) {
    const std::uint64_t id = schedule.order == Order::forward   ? step
                             : schedule.order == Order::reverse ? nclusters - 1 - step
                                                                : cluster_order[step];
    const uint3 origin{
        static_cast<unsigned>(id % clusters.x) * cluster.x,
        static_cast<unsigned>((id / clusters.x) % clusters.y) * cluster.y,
        static_cast<unsigned>(id / (static_cast<std::uint64_t>(clusters.x) * clusters.y)) *
            cluster.z};
    for (unsigned rank = 0; rank < csize; ++rank) {
      Block& b = launch.blocks[rank];
      b.idx = uint3{origin.x + rank % cluster.x, origin.y + (rank / cluster.x) % cluster.y,
                    origin.z + rank / (cluster.x * cluster.y)};
      block_ids[rank] = b.idx;
      b.barrier_arrived = 0;
      b.exited = 0;
      b.mapped_by = 0;
      for (Warp& warp : b.warps) {
        warp.exited = 0;
        warp.groups.clear();
      }
      if (shared_bytes > 0) std::memset(b.dynamic_shared.get(), 0xFF, shared_bytes);
    }
    g_block_idx = launch.blocks[0].idx;
    g_stats.blocks += csize;
    g_stats.threads += total;
    observe_cluster_begin(block_ids.data(), shared_regions.data(), csize);
    launch.cluster_arrived = 0;
    launch.cluster_exited = 0;
    launch.blocks_exited = 0;
    for (Thread& thread : launch.threads) {
      thread.state = State::runnable;
      Stack& stack = *thread.stack;
#if defined(SIMT_ASAN)
      // A finished fiber never returns from fiber_entry (it jumps away), so ASan's scope poison of
      // that outermost frame stays in the shadow; every deeper frame returned or was unwound.
      const std::size_t top = std::min<std::size_t>(stack.size, 64 * 1024);
      __asan_unpoison_memory_region(stack.bottom + stack.size - top, top);
#endif
      thread.fiber = fctx::make_fcontext(stack.bottom + stack.size, stack.size, fiber_entry);
    }
    order_indices(launch.order, total, schedule, id);

    unsigned exited = 0;
    for (;;) {
      bool ran = false;
      for (const unsigned index : launch.order) {
        Thread& thread = launch.threads[index];
        if (thread.state != State::runnable) continue;
        resume(launch, thread);
        ran = true;
        if (launch.faulted) break;
      }
      if (launch.faulted) break;
      exited = launch.cluster_exited;
      if (exited == total) break;
      if (!ran) {
        unsigned culprit = 0;
        const std::string what = describe_deadlock(launch, &culprit);
        g_block_idx = launch.blocks[launch.threads[culprit].block].idx;
        record_fault(launch, launch.threads[culprit], what);
        break;
      }
    }
    if (launch.faulted) {
      // Resume every thread that has not finished once more: it unwinds (FiberAbort) and exits,
      // and one that never started returns at once. No fiber is left suspended on its stack.
      for (Thread& thread : launch.threads) {
        if (thread.state != State::exited) resume(launch, thread);
      }
    }
  }

  g_launch = nullptr;
  g_thread_idx = nullptr;
  const std::string observed = observe_launch_end();
  if (launch.faulted) throw KernelFault(launch.fault);
  if (!observed.empty()) throw KernelFault(observed);
  return cudaSuccess;
}

}  // namespace detail

// --- schedule API
// ----------------------------------------------------------------------------------

Schedule parse_schedule(const std::string& text) {
  Schedule schedule;
  if (text == "forward") {
    schedule.order = Order::forward;
  } else if (text == "reverse") {
    schedule.order = Order::reverse;
  } else if (text.rfind("shuffle", 0) == 0) {
    schedule.order = Order::shuffle;
    if (text.size() > 7) {
      if (text[7] != ':' || text.size() == 8) {
        throw std::invalid_argument("simt schedule '" + text + "': expected shuffle:<seed>");
      }
      const std::string digits = text.substr(8);
      if (digits.find_first_not_of("0123456789") != std::string::npos) {
        throw std::invalid_argument("simt schedule '" + text + "': the seed must be a number");
      }
      schedule.seed = std::stoull(digits);
    }
  } else {
    throw std::invalid_argument("simt schedule '" + text +
                                "': expected forward, reverse, shuffle or shuffle:<seed>");
  }
  return schedule;
}

std::string to_string(const Schedule& schedule) {
  switch (schedule.order) {
    case Order::forward:
      return "forward";
    case Order::reverse:
      return "reverse";
    case Order::shuffle:
      return "shuffle:" + std::to_string(schedule.seed);
  }
  return "unknown";
}

void set_schedule(const Schedule& schedule) {
  detail::schedule_state() = schedule;
}

Schedule current_schedule() {
  return detail::schedule_state();
}

void detail::count_host_to_device_copy() {
  ++g_stats.host_to_device_copies;
}
void detail::count_host_wait() {
  ++g_stats.host_waits;
}

Stats stats() {
  return detail::g_stats;
}

}  // namespace simt
