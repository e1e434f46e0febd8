// Uses the installed package's trainer, warpfuse::nn (target warpfuse::nn), from an ordinary C++
// file: a tiny Dense network learns y = (x0 > x1) on the CPU. Prints "consumer_nn: ok" and exits
// 0 when it reaches 90% accuracy.
#include <warpfuse/nn/nn.h>

#include <cstdio>
#include <vector>

int main() {
  namespace nn = warpfuse::nn;
  const std::int64_t rows = 256;
  std::vector<float> x, y;
  std::uint32_t state = 12345;
  for (std::int64_t r = 0; r < rows; ++r) {
    state = state * 1664525u + 1013904223u;
    const float a = static_cast<float>(state >> 8) / 16777216.0f;
    state = state * 1664525u + 1013904223u;
    const float b = static_cast<float>(state >> 8) / 16777216.0f;
    x.push_back(a);
    x.push_back(b);
    y.push_back(a > b ? 1.0f : 0.0f);
  }
  nn::Sequential model;
  model.add(nn::Dense(16, "relu", 2));
  model.add(nn::Dense(2, "softmax"));
  model.compile(nn::Adam(0.05f), "sparse_categorical_crossentropy", {"accuracy"}, nn::Device::cpu,
                7);
  nn::FitOptions fit;
  fit.epochs = 30;
  fit.batch_size = 32;
  fit.verbose = 0;
  const nn::Matrix inputs(rows, 2, x), labels(rows, 1, y);
  model.fit(inputs, labels, fit);
  const double accuracy = model.evaluate(inputs, labels).at("accuracy");
  std::printf("consumer_nn: accuracy %.3f after %d epochs on the CPU\n", accuracy, fit.epochs);
  if (accuracy < 0.9) {
    std::printf("consumer_nn: did not learn\n");
    return 1;
  }
  std::printf("consumer_nn: ok\n");
  return 0;
}
