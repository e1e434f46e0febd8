// simt — the access observer: every global- and shared-memory access that kernel code makes, seen
// with its address, width and the executing block and thread (observer.cpp).
//
// The observed emulated build compiles kernel code (host/cuda/, the tests) with GCC's
// -fsanitize=thread instrumentation but links none of ThreadSanitizer's runtime: the
// __tsan_read4(addr) / __tsan_write16(addr) calls the compiler inserts before every memory access
// land in observer.cpp, which keeps only those made by a kernel thread to a device allocation (the
// cudart shim's) or to the block's shared memory (dynamic, or the static __shared__ section). From
// them it derives:
//   - racecheck: two threads of a block touching one shared-memory byte, one writing, with no
//     __syncthreads between them (and, for lanes of one warp, no warp-synchronous op); two threads
//     of a launch touching one global byte, one writing, unordered (atomics excepted); threads of
//     two blocks of one cluster are ordered only by a cluster barrier between the accesses, which
//     covers a peer's shared memory reached through map_shared_rank. A cluster kernel touching
//     static __shared__ memory is reported (its blocks run concurrently, and static shared memory
//     is one copy here);
//   - initcheck: a kernel reading device memory nothing wrote since cudaMalloc (host copy, memset,
//     kernel), or static shared memory its block has not written (it reads the 0xFF poison);
//   - traffic: bytes read and written per allocation and accesses by width, per launch.
// A race or uninitialised read fails the launch with a KernelFault naming kernel, block, both
// threads, the address (allocation and offset, or shared byte) and the code locations.
// Outside the observed build observing() is false and the rest reports nothing.
#pragma once

#include <vector_types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace simt {

/// Index of an access width in the traffic counts: 128, 64, 32, 16, 8 bits.
constexpr int kAccessWidths = 5;
constexpr int kAccessBits[kAccessWidths] = {128, 64, 32, 16, 8};

struct AllocationTraffic {
  const void* base = nullptr;
  std::size_t size = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t loads[5] = {};   ///< by width (kAccessBits)
  std::uint64_t stores[5] = {};  ///< by width
};

/// What one launch moved.
struct LaunchTraffic {
  std::string kernel;
  std::vector<AllocationTraffic> allocations;  ///< every allocation the launch touched
  std::uint64_t loads[kAccessWidths] = {};     ///< global loads by width
  std::uint64_t stores[kAccessWidths] = {};    ///< global stores by width
  std::uint64_t atomics = 0;                   ///< global atomic operations
  std::uint64_t shared_bytes = 0;              ///< bytes of shared-memory accesses

  std::uint64_t bytes_read(const void* allocation) const;
  std::uint64_t bytes_written(const void* allocation) const;
  std::uint64_t global_accesses() const;
};

/// Whether this binary observes memory accesses (the observed emulated build).
bool observing();
/// Launches observed so far; their traffic, from launch `first` on.
std::size_t observed_launches();
std::vector<LaunchTraffic> traffic_since(std::size_t first);

namespace detail {

// Called by the scheduler (simt.cpp) and the cudart shim; no-ops outside the observed build.
void observe_launch_begin(const char* name, dim3 grid, dim3 block, unsigned cluster_blocks,
                          std::size_t dynamic_shared_bytes);
/// The blocks that run together next (one, or a cluster's, by rank) and their dynamic shared
/// memory.
void observe_cluster_begin(const uint3* blocks, const void* const* dynamic_shared, unsigned count);
void observe_thread(unsigned rank, unsigned linear, const void* stack_bottom,
                    std::size_t stack_size);
void observe_kernel_left();
void observe_barrier(unsigned rank);
void observe_cluster_barrier();
void observe_warp_op(unsigned linear);
/// Ends the launch; returns the first race or uninitialised read it saw ("" if none).
std::string observe_launch_end();
void observe_allocation(const void* ptr, std::size_t bytes);
void observe_free(const void* ptr);
void observe_host_write(const void* ptr, std::size_t bytes);
void observe_atomic(const void* ptr, std::size_t bytes);

}  // namespace detail
}  // namespace simt
