// Uses the installed warpfuse package from an ordinary C++ file: the umbrella header, the error
// model, and (when a GPU is present) device memory. Prints "consumer: ok" and exits 0 on success.
#include <warpfuse/warpfuse.h>

#if defined(CUBLAS_API_H_)
#error "the umbrella header pulled in cuBLAS: the ops' headers must not need it"
#endif

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

int main() {
  std::printf("consumer: warpfuse %s\n", warpfuse::kVersion);
  try {
    // Validation runs before anything touches the device, so this needs no GPU.
    warpfuse::softmax(warpfuse::MatrixView<const float>(nullptr, 2, 3),
                      warpfuse::MatrixView<float>(nullptr, 2, 3));
    std::printf("consumer: a null 2 x 3 matrix was accepted\n");
    return 1;
  } catch (const warpfuse::InvalidArgument& error) {
    std::printf("consumer: rejected as expected: %s\n", error.what());
  }
  std::string reason;
  if (warpfuse::cuda_device_available(&reason)) {
    // Two rows of three logits; softmax on the default stream, then read back.
    const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 0.0f, 0.0f, 0.0f};
    warpfuse::DeviceBuffer<float> x = warpfuse::to_device(logits);
    warpfuse::DeviceBuffer<float> y(logits.size());
    warpfuse::softmax(x.view(2, 3), y.view(2, 3));
    const std::vector<float> probabilities = y.to_host();
    std::printf("consumer: softmax on %s: [%.4f %.4f %.4f] [%.4f %.4f %.4f]\n",
                warpfuse::device_info().name.c_str(), probabilities[0], probabilities[1],
                probabilities[2], probabilities[3], probabilities[4], probabilities[5]);
    if (std::fabs(probabilities[2] - 0.6652410f) > 1e-5f ||
        std::fabs(probabilities[4] - 1.0f / 3) > 1e-6f) {
      std::printf("consumer: wrong softmax\n");
      return 1;
    }
  } else {
    std::printf("consumer: no CUDA device (%s); host-side checks only\n", reason.c_str());
  }
  std::printf("consumer: ok\n");
  return 0;
}
