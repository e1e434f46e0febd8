// warpfuse-device-info: prints the library version and what warpfuse sees of each CUDA device, or
// why there is none. Exits 0 either way: having no GPU is a normal state for a build machine.
#include <warpfuse/warpfuse.h>

#include <cstdio>
#include <string>

int main() {
  std::printf("warpfuse %s\n", warpfuse::kVersion);
  std::string reason;
  if (!warpfuse::cuda_device_available(&reason)) {
    // Plain words first: on a machine without an NVIDIA driver the runtime's own error
    // (cudaErrorInsufficientDriver) reads like a broken install.
    const bool no_driver = reason.find("InsufficientDriver") != std::string::npos ||
                           reason.find("NoDevice") != std::string::npos;
    std::printf("no GPU found%s: everything runs on the CPU (%s)\n",
                no_driver ? " (no NVIDIA driver or device)" : "", reason.c_str());
    return 0;
  }
  int count = 0;
  WARPFUSE_CUDA_CHECK(cudaGetDeviceCount(&count));
  for (int device = 0; device < count; ++device) {
    const warpfuse::DeviceInfo info = warpfuse::device_info(device);
    std::printf(
        "device %d: %s, sm_%d%d, %d SMs, %.1f GiB, %zu KiB shared memory per block, "
        "%zu MiB L2\n",
        device, info.name.c_str(), info.compute_major, info.compute_minor, info.multiprocessors,
        static_cast<double>(info.global_memory_bytes) / (1 << 30),
        info.shared_memory_per_block_optin / 1024, info.l2_cache_bytes >> 20);
  }
  return 0;
}
