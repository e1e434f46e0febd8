// Uses the installed warpfuse package from an ordinary C++ file: the umbrella header, the error
// model, and (when a GPU is present) device memory. Prints "consumer: ok" and exits 0 on success.
#include <warpfuse/warpfuse.h>

#include <cstdio>
#include <string>
#include <vector>

int main() {
  std::printf("consumer: warpfuse %s\n", warpfuse::kVersion);
  try {
    warpfuse::detail::check_view("consumer", "x", warpfuse::MatrixView<const float>(nullptr, 2, 3));
    std::printf("consumer: a null 2 x 3 view was accepted\n");
    return 1;
  } catch (const warpfuse::InvalidArgument& error) {
    std::printf("consumer: rejected as expected: %s\n", error.what());
  }
  std::string reason;
  if (warpfuse::cuda_device_available(&reason)) {
    const std::vector<float> host = {1.0f, 2.0f, 3.0f};
    const warpfuse::DeviceBuffer<float> buffer = warpfuse::to_device(host);
    if (buffer.to_host() != host) {
      std::printf("consumer: device round trip failed\n");
      return 1;
    }
    std::printf("consumer: device round trip on %s\n", warpfuse::device_info().name.c_str());
  } else {
    std::printf("consumer: no CUDA device (%s); host-side checks only\n", reason.c_str());
  }
  std::printf("consumer: ok\n");
  return 0;
}
