// simt — a CPU emulator of the CUDA execution model, for running warpfuse kernels without a GPU.
//
// Each CUDA thread of a block is a fiber (Boost.Context's fcontext), all on one OS thread. Blocks
// run one after another, except the blocks of one thread-block cluster (launch_cluster), which run
// together, each with its own dynamic shared memory, reachable from its peers through
// map_shared_rank; inside a block (or cluster) the scheduler sweeps the threads in the configured
// order and runs each until it reaches a synchronisation point (__syncthreads, the cluster
// barrier, a warp-synchronous op) or exits. Device memory is host memory (see cudart_shim.cpp).
// Because a fiber only gives up control at a synchronisation point, code between two such points
// runs atomically, which is what makes integer atomics trivially correct here.
//
// What it checks, each reported as a KernelFault naming kernel, block and thread:
//   - barrier divergence: threads waiting at different __syncthreads, or a thread exiting (or
//     reaching __syncthreads) while others of the block wait at / passed another barrier;
//   - warp ops (shuffles, ballot, __syncwarp) whose mask leaves out the calling lane, names lanes
//   that
//     do not exist or have exited, or that disagree between lanes (mask or op);
//   - a shuffle reading a lane outside its mask;
//   - cluster barrier divergence: threads of a cluster at different cluster barriers, a thread
//     exiting while others wait at one, or reaching one after a thread of the cluster exited;
//   - distributed shared memory: a block exiting while a peer that mapped its shared memory since
//     the last cluster barrier still runs (CUDA requires a cluster barrier first), mapping a rank
//     outside the cluster, an exited peer, or an address outside dynamic shared memory (an
//     exited block's shared memory is refilled with 0xFF, so a stale pointer reads NaN);
//   - deadlock: no thread can make progress;
//   - dynamic shared memory above the 48 KiB default without the cudaFuncSetAttribute opt-in, and
//     16-byte vector accesses at misaligned addresses (via WF_CHECK_ALIGNED in kernels/).
// Dynamic shared memory is refilled with 0xFF bytes (a NaN in every float type) before each block,
// so a kernel that reads shared memory it never wrote produces NaN instead of stale data.
//
// The schedule (SIMT_SCHEDULE = forward | reverse | shuffle[:seed]) sets the order of blocks and of
// threads inside a block; a missing barrier shows up as a wrong result under some order.
// Fiber switches are annotated for AddressSanitizer, so the asan preset checks kernel memory
// accesses.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace simt {

enum class Order { forward, reverse, shuffle };

struct Schedule {
  Order order = Order::forward;
  std::uint64_t seed = 0;  ///< used by Order::shuffle
};

/// Parses "forward", "reverse", "shuffle" or "shuffle:<seed>"; throws std::invalid_argument.
Schedule parse_schedule(const std::string& text);
std::string to_string(const Schedule& schedule);
/// The schedule of later launches. The initial one comes from SIMT_SCHEDULE (default forward).
void set_schedule(const Schedule& schedule);
Schedule current_schedule();

/// A kernel broke a rule of the execution model; what() names kernel, block, thread and the rule.
class KernelFault : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Counters since the process started (the speed tool prints them).
struct Stats {
  std::uint64_t launches = 0;
  std::uint64_t blocks = 0;
  std::uint64_t threads = 0;
  std::uint64_t switches = 0;               ///< fiber resumptions
  std::uint64_t host_to_device_copies = 0;  ///< cudaMemcpy / cudaMemcpyAsync HostToDevice calls
  std::uint64_t host_waits =
      0;  ///< cudaStreamSynchronize, cudaDeviceSynchronize, cudaEventSynchronize
};
Stats stats();
namespace detail {
/// The cudart shim's counters of Stats.
void count_host_to_device_copy();
void count_host_wait();
}  // namespace detail

/// What the emulator's occupancy model knows of a kernel's sm_90 machine code (kernel_model.cpp).
struct KernelResources {
  int registers = 32;                   ///< per thread
  std::size_t static_shared_bytes = 0;  ///< without the 1 KiB per-block reservation
  int launch_bounds = 0;                ///< __launch_bounds__ threads; 0: unknown
  bool from_report = false;             ///< read from the kernel report
};
/// The kernel report the model reads ("" when none), and a kernel's resources: a test override,
/// else the report's entry for the kernel's mangled name, else the defaults.
std::string kernel_report_path();
std::string kernel_symbol(const void* kernel);
KernelResources kernel_resources(const void* kernel);
void set_kernel_resources(const void* kernel, const KernelResources& resources);
void clear_kernel_resources(const void* kernel);
/// Blocks resident per SM under the H100/H200 limits (65536 registers in 4 sub-partitions, 228 KiB
/// shared memory with 1 KiB reserved per block, 64 warps, 32 blocks): the model
/// cudaOccupancyMaxActiveBlocksPerMultiprocessor answers with, the same as scripts/kernel-report.
/// 0 when the block is over the launch bounds or does not fit.
int resident_blocks(const KernelResources& resources, int threads, std::size_t dynamic_shared);

/// The most recent launch of the kernel named `name` (launch's name argument).
struct LaunchRecord {
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes = 0;
  std::uint64_t count = 0;  ///< launches of that name so far
};
bool last_launch(const std::string& name, LaunchRecord* record);
/// cudaFuncSetAttribute calls so far (the launchers set the shared-memory opt-in once per kernel).
std::uint64_t func_set_attribute_calls();
/// Every kernel of the report with the resident warps per SM the report computed for it at its
/// launch bounds (to compare the two implementations of the occupancy model).
struct ReportedKernel {
  std::string mangled;
  KernelResources resources;
  int resident_warps = 0;
};
std::vector<ReportedKernel> reported_kernels();

namespace detail {

void record_launch(const char* name, dim3 grid, dim3 block, std::size_t shared_bytes);

extern const uint3* g_thread_idx;
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;

enum class WarpOp : int { shfl_xor, shfl_down, shfl_up, shfl_idx, ballot, sync };

/// One warp-synchronous operation of the calling thread; returns its 64-bit result.
std::uint64_t warp_op(WarpOp op, const char* file, int line, unsigned mask, std::uint64_t value,
                      int param, int width);
void syncthreads(const char* file, int line);
/// The cluster barrier (cooperative_groups::this_cluster().sync()): every thread of every block of
/// the cluster arrives before any leaves; it orders their shared- and global-memory accesses.
void cluster_sync(const char* file, int line);
/// The calling block's rank in its cluster (x fastest), the cluster's blocks and shape.
unsigned cluster_rank();
unsigned cluster_size();
dim3 cluster_dims();
/// The address in block `rank`'s dynamic shared memory of `address` in the caller's: the
/// distributed-shared-memory mapping (cluster.map_shared_rank). Faults on a rank outside the
/// cluster, an address outside the caller's dynamic shared memory, or a peer that has exited.
void* map_shared_rank(const void* address, unsigned rank, const char* file, int line);
/// Ends the calling kernel thread with a KernelFault describing `what`.
[[noreturn]] void fault(const std::string& what);
void check_aligned(const void* ptr, std::size_t alignment, const char* what);
void* dynamic_shared();

/// Runs body(context) for every thread of the grid; returns a launch-configuration error without
/// running anything, or throws KernelFault.
/// With cluster = (1, 1, 1) every block is its own cluster: blocks run one after another. With a
/// larger cluster, the blocks of one cluster run together as fibers of one scheduler, each with its
/// own dynamic shared memory, and clusters one after another.
cudaError_t run_grid(const char* name, const void* kernel_id, dim3 grid, dim3 block,
                     std::size_t shared_bytes, dim3 cluster, void (*body)(void*), void* context);
/// The cudart shim's sticky-free "last error" slot, read by cudaGetLastError.
void set_last_error(cudaError_t error);
/// Why a launch of this configuration would fail (cudaSuccess if it would not), without running.
cudaError_t launch_config_error(const void* kernel_id, dim3 grid, dim3 block,
                                std::size_t shared_bytes, dim3 cluster = dim3(1, 1, 1));

// --- stream capture (cudart_shim.cpp) ---
/// Whether work enqueued on `stream` is being captured into a graph.
bool capturing(cudaStream_t stream);
/// Work enqueued on the legacy default stream while a capture is active: CUDA refuses it
/// (cudaErrorStreamCaptureImplicit) and invalidates the capture. Returns that error, or
/// cudaSuccess when no capture is affected.
cudaError_t legacy_stream_use();
/// Records a node (kernel launch, copy, memset, host work) into the capture of `stream`.
void record(cudaStream_t stream, const char* what, std::function<cudaError_t()> node);
/// Invalidates the capture of `stream` (a failed capture-time check) with `error`.
void invalidate_capture(cudaStream_t stream, cudaError_t error);
/// The dynamic shared memory a kernel was allowed through cudaFuncSetAttribute (0: not set).
std::size_t max_dynamic_shared(const void* kernel_id);
void set_max_dynamic_shared(const void* kernel_id, std::size_t bytes);
/// cudaFuncAttributeNonPortableClusterSizeAllowed: clusters of up to 16 blocks (else 8).
bool non_portable_cluster_size(const void* kernel_id);
void set_non_portable_cluster_size(const void* kernel_id, bool allowed);

template <class T>
std::uint64_t to_bits(const T& value) {
  static_assert(sizeof(T) <= sizeof(std::uint64_t) && std::is_trivially_copyable_v<T>,
                "simt: warp shuffles move trivially copyable values of at most 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}
template <class T>
T from_bits(std::uint64_t bits) {
  T value;
  std::memcpy(static_cast<void*>(&value), &bits, sizeof(T));
  return value;
}

}  // namespace detail

template <class T>
T shfl_xor(const char* file, int line, unsigned mask, T var, int lane_mask, int width = 32) {
  return detail::from_bits<T>(detail::warp_op(detail::WarpOp::shfl_xor, file, line, mask,
                                              detail::to_bits(var), lane_mask, width));
}
template <class T>
T shfl_down(const char* file, int line, unsigned mask, T var, unsigned delta, int width = 32) {
  return detail::from_bits<T>(detail::warp_op(detail::WarpOp::shfl_down, file, line, mask,
                                              detail::to_bits(var), static_cast<int>(delta),
                                              width));
}
template <class T>
T shfl_up(const char* file, int line, unsigned mask, T var, unsigned delta, int width = 32) {
  return detail::from_bits<T>(detail::warp_op(detail::WarpOp::shfl_up, file, line, mask,
                                              detail::to_bits(var), static_cast<int>(delta),
                                              width));
}
template <class T>
T shfl_idx(const char* file, int line, unsigned mask, T var, int src_lane, int width = 32) {
  return detail::from_bits<T>(detail::warp_op(detail::WarpOp::shfl_idx, file, line, mask,
                                              detail::to_bits(var), src_lane, width));
}
inline unsigned ballot(const char* file, int line, unsigned mask, int predicate) {
  return static_cast<unsigned>(
      detail::warp_op(detail::WarpOp::ballot, file, line, mask, predicate != 0 ? 1 : 0, 0, 32));
}
inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
  detail::warp_op(detail::WarpOp::sync, file, line, mask, 0, 0, 32);
}

/// Runs `kernel` over the grid, in clusters of `cluster` blocks, with the given arguments
/// (converted to the kernel's parameter types, one copy per thread as CUDA does). A bad
/// configuration is left in cudaGetLastError, as a real launch does; a broken execution-model rule
/// throws KernelFault.
template <class... Params, class... Args>
void launch_cluster(const char* name, dim3 grid, dim3 block, dim3 cluster, std::size_t shared_bytes,
                    cudaStream_t stream, void (*kernel)(Params...), Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "simt::launch: wrong number of arguments");
  using Packed = std::tuple<std::decay_t<Params>...>;
  struct Context {
    void (*kernel)(Params...);
    Packed arguments;
  };
  const auto body = [](void* opaque) {
    auto* ctx = static_cast<Context*>(opaque);
    std::apply(ctx->kernel, ctx->arguments);  // by-value parameters: one copy per thread
  };
  const void* kernel_id = reinterpret_cast<const void*>(kernel);
  if (detail::capturing(stream)) {
    // Captured: checked now, as CUDA checks a launch into a capture, and run when the graph is.
    const cudaError_t config =
        detail::launch_config_error(kernel_id, grid, block, shared_bytes, cluster);
    if (config != cudaSuccess) {
      detail::set_last_error(config);
      detail::invalidate_capture(stream, config);
      return;
    }
    auto context = std::make_shared<Context>(Context{kernel, Packed(std::forward<Args>(args)...)});
    // The graph outlives the caller's name string (a launcher may build it per launch): own a copy.
    auto owned_name = std::make_shared<const std::string>(name);
    detail::record(stream, name, [=] {
      return detail::run_grid(owned_name->c_str(), kernel_id, grid, block, shared_bytes, cluster,
                              body, context.get());
    });
    return;
  }
  if (stream == nullptr) {
    const cudaError_t implicit = detail::legacy_stream_use();
    if (implicit != cudaSuccess) {
      detail::set_last_error(implicit);
      return;
    }
  }
  Context context{kernel, Packed(std::forward<Args>(args)...)};
  const cudaError_t status =
      detail::run_grid(name, kernel_id, grid, block, shared_bytes, cluster, body, &context);
  detail::set_last_error(status);
}

/// A launch without clusters (each block its own cluster of one).
template <class... Params, class... Args>
void launch(const char* name, dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t stream,
            void (*kernel)(Params...), Args&&... args) {
  launch_cluster(name, grid, block, dim3(1, 1, 1), shared_bytes, stream, kernel,
                 std::forward<Args>(args)...);
}

/// Host-side work in stream order: the emulated stand-in for device work done by a library
/// (cuBLAS's GEMM, a Thrust algorithm). Runs now, or is recorded when `stream` is captured.
void host_work(cudaStream_t stream, const char* what, std::function<void()> work);

}  // namespace simt
