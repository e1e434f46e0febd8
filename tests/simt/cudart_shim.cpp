// simt — the CUDA runtime, re-implemented on the host for the emulated build.
//
// The declarations are the toolkit's own (cuda_runtime_api.h); these are the definitions, so code
// in host/cuda/ compiles and links unchanged without libcudart. Device memory is host memory from
// posix_memalign (256-byte aligned as cudaMalloc's, exact size so AddressSanitizer sees an overrun)
// and starts filled with 0xFF (NaN in every float type), so reading memory nobody wrote shows up;
// an allocation of 1 GiB or more is address space only (mmap, MAP_NORESERVE: zero pages that
// appear when touched), so tests can place rows past 2^31 elements without the memory.
// Everything is synchronous: a stream is a tag, an event a host timestamp, and a kernel runs to
// completion inside its launch, except while a stream is captured: then launches, async copies,
// memsets, event records and host work on it are recorded as graph nodes, replayed in order by
// cudaGraphLaunch, and the calls CUDA forbids during capture (allocation, synchronisation, work on
// the legacy stream) fail with CUDA's error codes and invalidate the capture. The device it reports
// looks like an H200 (sm_90, 132 SMs, 227 KiB of opt-in shared memory per block) so dispatch code
// takes its real paths.
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "simt/observer.h"
#include "simt/simt.h"

/// One recorded operation of a captured stream.
struct GraphNode {
  std::string what;  // owned: a captured node outlives the caller's string
  std::function<cudaError_t()> run;
};

struct CUstream_st {
  unsigned flags = 0;
  // Stream capture (cudaStreamBeginCapture .. cudaStreamEndCapture).
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id owner;
  std::vector<GraphNode> nodes;
};
struct CUgraph_st {
  std::vector<GraphNode> nodes;
};
struct CUgraphExec_st {
  std::vector<GraphNode> nodes;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point when{};
  bool recorded = false;
};

namespace {

constexpr int kSharedPerBlockOptin = 232448;
constexpr int kSharedPerMultiprocessor = 233472;
constexpr int kMultiprocessors = 132;
constexpr int kGpcs = 8;        // graphics processing clusters (the cluster model)
constexpr int kSmsPerGpc = 16;  // usable SMs per GPC in that model
constexpr int kThreadsPerMultiprocessor = 2048;

std::mutex g_mutex;
std::map<const void*, std::size_t> g_allocations;
// Allocations of at least kLazyAllocationBytes: mmap'd address space (cudaMalloc), munmap'd.
constexpr std::size_t kLazyAllocationBytes = std::size_t{1} << 30;
std::set<const void*> g_lazy_allocations;
cudaError_t g_last_error = cudaSuccess;

cudaError_t fail(cudaError_t error) {
  g_last_error = error;
  return error;
}

/// Streams being captured now.
std::set<cudaStream_t> g_captures;

/// A call CUDA deems unsafe during capture (it may synchronise implicitly: allocation, device or
/// event synchronisation): refused with cudaErrorStreamCaptureUnsupported by every capture in
/// global mode, and by a thread-local capture of the calling thread; relaxed captures allow it.
/// The captures that refuse it are invalidated.
cudaError_t unsafe_during_capture() {
  cudaError_t result = cudaSuccess;
  for (cudaStream_t stream : g_captures) {
    const bool refuses = stream->mode == cudaStreamCaptureModeGlobal ||
                         (stream->mode == cudaStreamCaptureModeThreadLocal &&
                          stream->owner == std::this_thread::get_id());
    if (refuses) {
      stream->invalidated = true;
      result = cudaErrorStreamCaptureUnsupported;
    }
  }
  return result == cudaSuccess ? cudaSuccess : fail(result);
}

/// Enqueues `work` on `stream`: recorded when the stream is captured, refused on the legacy stream
/// during a capture, run now otherwise.
cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<cudaError_t()> work) {
  if (simt::detail::capturing(stream)) {
    simt::detail::record(stream, what, std::move(work));
    return cudaSuccess;
  }
  if (stream == nullptr) {
    const cudaError_t implicit = simt::detail::legacy_stream_use();
    if (implicit != cudaSuccess) return implicit;
  }
  return work();
}

cudaError_t copy_now(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) {
    return fail(cudaErrorInvalidMemcpyDirection);
  }
  if (count == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return fail(cudaErrorInvalidValue);
  std::memmove(dst, src, count);
  simt::detail::observe_host_write(dst, count);
  return cudaSuccess;
}

cudaError_t set_now(void* ptr, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  std::memset(ptr, value, count);
  simt::detail::observe_host_write(ptr, count);
  return cudaSuccess;
}

cudaError_t copy_2d_now(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                        size_t width, size_t height, cudaMemcpyKind kind) {
  if (width > dst_pitch || width > src_pitch) return fail(cudaErrorInvalidPitchValue);
  for (size_t row = 0; row < height; ++row) {
    const cudaError_t status =
        copy_now(static_cast<char*>(dst) + row * dst_pitch,
                 static_cast<const char*>(src) + row * src_pitch, width, kind);
    if (status != cudaSuccess) return status;
  }
  return cudaSuccess;
}

}  // namespace

namespace simt {
namespace detail {

bool capturing(cudaStream_t stream) {
  return stream != nullptr && stream->capturing;
}

cudaError_t legacy_stream_use() {
  // The legacy stream synchronises with every blocking stream, a captured one included.
  cudaError_t result = cudaSuccess;
  for (cudaStream_t stream : g_captures) {
    if (stream->flags & cudaStreamNonBlocking) continue;
    stream->invalidated = true;
    result = cudaErrorStreamCaptureImplicit;
  }
  return result == cudaSuccess ? cudaSuccess : fail(result);
}

void record(cudaStream_t stream, const char* what, std::function<cudaError_t()> node) {
  if (!stream->invalidated) stream->nodes.push_back(GraphNode{what, std::move(node)});
}

void invalidate_capture(cudaStream_t stream, cudaError_t error) {
  if (capturing(stream)) stream->invalidated = true;
  fail(error);
}

}  // namespace detail

void host_work(cudaStream_t stream, const char* what, std::function<void()> work) {
  const cudaError_t status = enqueue(stream, what, [work = std::move(work)] {
    work();
    return cudaSuccess;
  });
  detail::set_last_error(status);
}

}  // namespace simt

namespace simt::detail {
void set_last_error(cudaError_t error) {
  if (error != cudaSuccess) g_last_error = error;
}
}  // namespace simt::detail

cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  if (const cudaError_t capture = unsafe_during_capture()) return capture;
  *ptr = nullptr;
  if (size == 0) return cudaSuccess;
  void* memory = nullptr;
  if (size >= kLazyAllocationBytes) {
    // Address space only: pages appear (zero-filled, not poisoned) when first touched, so a test
    // can hold a logical 2^33-byte matrix and touch a few of its rows. The observer does not
    // track these (its per-byte state would be as large as the allocation).
    memory = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> lock(g_mutex);
    g_allocations[memory] = size;
    g_lazy_allocations.insert(memory);
    *ptr = memory;
    return cudaSuccess;
  }
  if (posix_memalign(&memory, 256, size) != 0) return fail(cudaErrorMemoryAllocation);
  std::memset(memory, 0xFF, size);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_allocations[memory] = size;
  simt::detail::observe_allocation(memory, size);
  *ptr = memory;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  if (const cudaError_t capture = unsafe_during_capture()) return capture;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    const auto found = g_allocations.find(ptr);
    if (found == g_allocations.end()) return fail(cudaErrorInvalidValue);
    const std::size_t size = found->second;
    g_allocations.erase(found);
    if (g_lazy_allocations.erase(ptr) != 0) {
      munmap(ptr, size);
      return cudaSuccess;
    }
  }
  simt::detail::observe_free(ptr);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t size) {
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  if (const cudaError_t capture = unsafe_during_capture()) return capture;
  *ptr = size == 0 ? nullptr : std::malloc(size);
  return size != 0 && *ptr == nullptr ? fail(cudaErrorMemoryAllocation) : cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return fail(cudaErrorInvalidValue);
  *total_bytes = size_t{16} << 30;
  *free_bytes = *total_bytes;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  // Synchronous: on the legacy stream.
  if (const cudaError_t implicit = simt::detail::legacy_stream_use()) return implicit;
  if (kind == cudaMemcpyHostToDevice) simt::detail::count_host_to_device_copy();
  return copy_now(dst, src, count, kind);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) {
    return fail(cudaErrorInvalidMemcpyDirection);
  }
  if (kind == cudaMemcpyHostToDevice) simt::detail::count_host_to_device_copy();
  return enqueue(stream, "cudaMemcpyAsync", [=] { return copy_now(dst, src, count, kind); });
}

cudaError_t cudaMemcpy2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t width, size_t height, cudaMemcpyKind kind) {
  if (const cudaError_t implicit = simt::detail::legacy_stream_use()) return implicit;
  return copy_2d_now(dst, dst_pitch, src, src_pitch, width, height, kind);
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                              size_t width, size_t height, cudaMemcpyKind kind,
                              cudaStream_t stream) {
  if (width > dst_pitch || width > src_pitch) return fail(cudaErrorInvalidPitchValue);
  return enqueue(stream, "cudaMemcpy2DAsync",
                 [=] { return copy_2d_now(dst, dst_pitch, src, src_pitch, width, height, kind); });
}

cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  if (const cudaError_t implicit = simt::detail::legacy_stream_use()) return implicit;
  return set_now(ptr, value, count);
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t stream) {
  return enqueue(stream, "cudaMemsetAsync", [=] { return set_now(ptr, value, count); });
}

cudaError_t cudaMemset2DAsync(void* ptr, size_t pitch, int value, size_t width, size_t height,
                              cudaStream_t stream) {
  if (width > pitch) return fail(cudaErrorInvalidPitchValue);
  return enqueue(stream, "cudaMemset2DAsync", [=] {
    for (size_t row = 0; row < height; ++row) {
      const cudaError_t status = set_now(static_cast<char*>(ptr) + row * pitch, value, width);
      if (status != cudaSuccess) return status;
    }
    return cudaSuccess;
  });
}

cudaError_t cudaDeviceSynchronize() {
  simt::detail::count_host_wait();
  return unsafe_during_capture();
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (stream == nullptr) return fail(cudaErrorInvalidValue);
  *stream = new CUstream_st{};
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (stream == nullptr) return fail(cudaErrorInvalidValue);
  *stream = new CUstream_st{};
  (*stream)->flags = flags;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr) return fail(cudaErrorInvalidResourceHandle);
  g_captures.erase(stream);
  delete stream;
  return cudaSuccess;
}

/// Waiting for `stream`: illegal on a stream being captured (its work has not run), and, for the
/// legacy stream, an implicit synchronisation with every captured blocking stream.
cudaError_t wait_for(cudaStream_t stream) {
  if (simt::detail::capturing(stream)) {
    stream->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  if (stream == nullptr) return simt::detail::legacy_stream_use();
  return unsafe_during_capture();
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  simt::detail::count_host_wait();
  return wait_for(stream);
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  return wait_for(stream);
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (status == nullptr) return fail(cudaErrorInvalidValue);
  *status = !simt::detail::capturing(stream) ? cudaStreamCaptureStatusNone
            : stream->invalidated            ? cudaStreamCaptureStatusInvalidated
                                             : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (stream == nullptr) return fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream
  if (stream->capturing) return fail(cudaErrorIllegalState);
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed) {
    return fail(cudaErrorInvalidValue);
  }
  stream->capturing = true;
  stream->invalidated = false;
  stream->mode = mode;
  stream->owner = std::this_thread::get_id();
  stream->nodes.clear();
  g_captures.insert(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (graph == nullptr) return fail(cudaErrorInvalidValue);
  *graph = nullptr;
  if (!simt::detail::capturing(stream)) return fail(cudaErrorIllegalState);
  stream->capturing = false;
  g_captures.erase(stream);
  std::vector<GraphNode> nodes = std::move(stream->nodes);
  stream->nodes.clear();
  if (stream->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
  *graph = new CUgraph_st{std::move(nodes)};
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (exec == nullptr || graph == nullptr) return fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return fail(cudaErrorInvalidValue);
  const std::vector<GraphNode>* nodes = &exec->nodes;
  return enqueue(stream, "cudaGraphLaunch", [nodes] {
    for (const GraphNode& node : *nodes) {
      const cudaError_t status = node.run();
      if (status != cudaSuccess) return fail(status);
    }
    return cudaSuccess;
  });
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned int) {
  return event == nullptr ? fail(cudaErrorInvalidResourceHandle) : cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (event == nullptr) return fail(cudaErrorInvalidValue);
  *event = new CUevent_st{};
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  return cudaEventCreate(event);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  return enqueue(stream, "cudaEventRecord", [event] {
    event->when = std::chrono::steady_clock::now();
    event->recorded = true;
    return cudaSuccess;
  });
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  simt::detail::count_host_wait();
  return unsafe_during_capture();
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  return event == nullptr ? fail(cudaErrorInvalidResourceHandle) : cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return fail(cudaErrorInvalidValue);
  if (start == nullptr || end == nullptr) return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  const cudaError_t error = g_last_error;
  g_last_error = cudaSuccess;
  return error;
}

cudaError_t cudaPeekAtLastError() {
  return g_last_error;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidPitchValue:
      return "cudaErrorInvalidPitchValue";
    case cudaErrorInvalidMemcpyDirection:
      return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorMisalignedAddress:
      return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchOutOfResources:
      return "cudaErrorLaunchOutOfResources";
    case cudaErrorStreamCaptureUnsupported:
      return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
      return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit:
      return "cudaErrorStreamCaptureImplicit";
    case cudaErrorIllegalState:
      return "cudaErrorIllegalState";
    default:
      return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidPitchValue:
      return "invalid pitch argument";
    case cudaErrorInvalidMemcpyDirection:
      return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorMisalignedAddress:
      return "misaligned address";
    case cudaErrorLaunchOutOfResources:
      return "too many resources requested for launch";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorIllegalState:
      return "the operation is not permitted in the current state";
    default:
      return "unrecognized error code";
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaDriverGetVersion(int* version) {
  if (version == nullptr) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  if (version == nullptr) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::strncpy(prop->name, "simt emulator (H200-like)", sizeof(prop->name) - 1);
  prop->totalGlobalMem = size_t{16} << 30;
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = kSharedPerBlockOptin;
  prop->sharedMemPerMultiprocessor = kSharedPerMultiprocessor;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = kMultiprocessors;
  prop->maxThreadsPerMultiProcessor = kThreadsPerMultiprocessor;
  prop->maxBlocksPerMultiProcessor = 32;
  prop->l2CacheSize = 50 * 1024 * 1024;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      break;
    case cudaDevAttrWarpSize:
      *value = 32;
      break;
    case cudaDevAttrMultiProcessorCount:
      *value = kMultiprocessors;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = 48 * 1024;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = kSharedPerBlockOptin;
      break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
      *value = kSharedPerMultiprocessor;
      break;
    case cudaDevAttrMaxThreadsPerMultiProcessor:
      *value = kThreadsPerMultiprocessor;
      break;
    case cudaDevAttrL2CacheSize:
      *value = 50 * 1024 * 1024;
      break;
    default:
      return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

namespace simt {
namespace {
std::uint64_t g_func_set_attribute_calls = 0;
}  // namespace
std::uint64_t func_set_attribute_calls() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_func_set_attribute_calls;
}
}  // namespace simt

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    ++simt::g_func_set_attribute_calls;
  }
  if (func == nullptr) return fail(cudaErrorInvalidDeviceFunction);
  switch (attr) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize:
      if (value < 0 || value > kSharedPerBlockOptin) return fail(cudaErrorInvalidValue);
      simt::detail::set_max_dynamic_shared(func, static_cast<std::size_t>(value));
      return cudaSuccess;
    case cudaFuncAttributeNonPortableClusterSizeAllowed:
      if (value != 0 && value != 1) return fail(cudaErrorInvalidValue);
      simt::detail::set_non_portable_cluster_size(func, value == 1);
      return cudaSuccess;
    case cudaFuncAttributePreferredSharedMemoryCarveout:
      return value >= -1 && value <= 100 ? cudaSuccess : fail(cudaErrorInvalidValue);
    default:
      return fail(cudaErrorInvalidValue);
  }
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, const void* func,
                                                          int block_size, size_t dynamic_shared) {
  if (blocks == nullptr || block_size <= 0 || block_size > 1024) return fail(cudaErrorInvalidValue);
  if (func == nullptr) return fail(cudaErrorInvalidDeviceFunction);
  // The kernel's registers, static shared memory and launch bounds from the kernel report (or a
  // test's override), through the same H100/H200 model the report applies.
  *blocks = simt::resident_blocks(simt::kernel_resources(func), block_size, dynamic_shared);
  return cudaSuccess;
}

cudaError_t cudaOccupancyMaxActiveClusters(int* clusters, const void* func,
                                           const cudaLaunchConfig_t* config) {
  if (clusters == nullptr || config == nullptr) return fail(cudaErrorInvalidValue);
  if (func == nullptr) return fail(cudaErrorInvalidDeviceFunction);
  dim3 cluster(1, 1, 1);
  for (unsigned i = 0; i < config->numAttrs; ++i) {
    if (config->attrs[i].id == cudaLaunchAttributeClusterDimension) {
      cluster = dim3(config->attrs[i].val.clusterDim.x, config->attrs[i].val.clusterDim.y,
                     config->attrs[i].val.clusterDim.z);
    }
  }
  const cudaError_t shape = simt::detail::launch_config_error(
      func, config->gridDim, config->blockDim, config->dynamicSmemBytes, cluster);
  if (shape != cudaSuccess) return fail(shape);
  const unsigned threads = config->blockDim.x * config->blockDim.y * config->blockDim.z;
  const int per_sm = simt::resident_blocks(simt::kernel_resources(func), static_cast<int>(threads),
                                           config->dynamicSmemBytes);
  // A cluster runs on the SMs of one GPC: the H100/H200 model has 8 GPCs of 16 usable SMs each
  // (128 of the 132), so a GPC holds floor(16 x blocks per SM / cluster blocks) clusters.
  const int blocks = static_cast<int>(cluster.x * cluster.y * cluster.z);
  *clusters = kGpcs * (kSmsPerGpc * per_sm / blocks);
  return cudaSuccess;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "CUBLAS_STATUS_UNKNOWN";
  }
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "an absent device architectural feature is required";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the functionality requested is not supported";
    default:
      return "unknown error";
  }
}
