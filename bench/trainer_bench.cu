// warpfuse benchmarks — training throughput of warpfuse::nn on the GPU (samples per second).
//
// Cases "trainer/f32/<batch>": a 784-256-128-10 MLP (Dense relu, Dense relu, Dense softmax;
// glorot_uniform kernels, zero biases), sparse_categorical_crossentropy, Adam with Keras' defaults
// (lr 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7), metric accuracy, trained with fit() at
// verbose 0 with shuffling, batch = 32, 64, 128, 256, 512, 1024, 4096. The data are synthetic and
// Fashion-MNIST-shaped: 784 features uniform in [0, 1) and 10 classes given by a fixed random
// linear teacher (argmax of x W), 60000 samples, or fewer when --min-mib asks for less than that
// much feature data (at least one batch; the emulated test runs one step per epoch).
//
// One fit() call trains 1 + E epochs (E = --repeats, at most 5): the first is the warm-up (CUDA
// Graph capture, cuBLAS heuristics, first-touch allocations), the others are timed by a callback
// with steady_clock at each epoch end, where fit synchronises to read the loss. The reported time
// per iteration is one epoch; the counters are samples_per_s (the median epoch), epoch_ms, steps
// (per epoch), samples, final_loss and final_accuracy (the last epoch's, from History). The names
// have three parts, so the harness's bandwidth tables, plot.py and summary.py leave them out;
// bench/trainer_torch.py reads samples_per_s from this binary's JSON.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "warpfuse/nn/nn.h"

namespace warpfuse::bench {
namespace {

constexpr std::int64_t kFeatures = 784;
constexpr std::int64_t kClassCount = 10;
constexpr std::int64_t kMaxSamples = 60000;  // Fashion-MNIST's training set
constexpr std::int64_t kBatches[] = {32, 64, 128, 256, 512, 1024, 4096};
constexpr int kMaxTimedEpochs = 5;

std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

float unit(std::uint64_t key) {
  return static_cast<float>(mix(key) >> 40) * (1.0f / 16777216.0f);
}

struct Data {
  nn::Matrix x;
  nn::Matrix y;
};

/// The synthetic data set for `samples` samples (made once per size).
const Data& synthetic_data(std::int64_t samples) {
  static std::map<std::int64_t, std::unique_ptr<Data>> cache;
  std::unique_ptr<Data>& slot = cache[samples];
  if (slot) return *slot;
  slot = std::make_unique<Data>();
  std::vector<float> teacher(static_cast<std::size_t>(kFeatures * kClassCount));
  for (std::size_t i = 0; i < teacher.size(); ++i) teacher[i] = unit(7000000000ull + i) - 0.5f;
  slot->x = nn::Matrix(samples, kFeatures);
  slot->y = nn::Matrix(samples, 1);
  for (std::int64_t s = 0; s < samples; ++s) {
    float scores[kClassCount] = {};
    for (std::int64_t f = 0; f < kFeatures; ++f) {
      const float value = unit(static_cast<std::uint64_t>(s * kFeatures + f));
      slot->x(s, f) = value;
      for (std::int64_t c = 0; c < kClassCount; ++c) {
        scores[c] += value * teacher[static_cast<std::size_t>(f * kClassCount + c)];
      }
    }
    slot->y(s, 0) = static_cast<float>(std::max_element(scores, scores + kClassCount) - scores);
  }
  return *slot;
}

/// Records steady_clock at the start of training and at every epoch end.
class EpochClock : public nn::Callback {
 public:
  void on_train_begin(nn::Sequential& /*model*/) override { marks_.push_back(now()); }
  void on_epoch_end(int /*epoch*/, const std::map<std::string, double>& /*logs*/,
                    nn::Sequential& /*model*/, bool& /*stop*/) override {
    marks_.push_back(now());
  }
  /// Seconds of each epoch.
  std::vector<double> epochs() const {
    std::vector<double> seconds;
    for (std::size_t i = 1; i < marks_.size(); ++i) seconds.push_back(marks_[i] - marks_[i - 1]);
    return seconds;
  }

 private:
  static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  std::vector<double> marks_;
};

void run_case(benchmark::State& state, std::int64_t batch) {
  const std::int64_t wanted =
      static_cast<std::int64_t>(config().min_bytes / (kFeatures * sizeof(float)));
  const std::int64_t samples = std::clamp<std::int64_t>(wanted, batch, kMaxSamples);
  const Data& data = synthetic_data(samples);
  const int timed = static_cast<int>(state.max_iterations);

  nn::Sequential model;
  model.add(nn::Dense(256, "relu", kFeatures));
  model.add(nn::Dense(128, "relu"));
  model.add(nn::Dense(kClassCount, "softmax"));
  model.compile(nn::Adam(1e-3f, 0.9f, 0.999f, 1e-7f), "sparse_categorical_crossentropy",
                {"accuracy"}, nn::Device::cuda, /*seed=*/1);

  auto clock = std::make_shared<EpochClock>();
  nn::FitOptions options;
  options.epochs = 1 + timed;
  options.batch_size = batch;
  options.shuffle = true;
  options.seed = 2;
  options.verbose = 0;
  options.callbacks.push_back(clock);
  const nn::History history = model.fit(data.x, data.y, options);
  const std::vector<double> epochs = clock->epochs();
  if (static_cast<int>(epochs.size()) != 1 + timed) {
    state.SkipWithError(("fit ran " + std::to_string(epochs.size()) + " epochs, expected " +
                         std::to_string(1 + timed))
                            .c_str());
    return;
  }
  const auto last = [&](const char* key) {
    const auto found = history.history.find(key);
    return found == history.history.end() || found->second.empty() ? -1.0 : found->second.back();
  };
  const double final_loss = last("loss");
  if (!(final_loss >= 0.0 && final_loss < 1e30)) {
    state.SkipWithError(("training loss is " + std::to_string(final_loss)).c_str());
    return;
  }

  std::vector<double> timed_epochs(epochs.begin() + 1, epochs.end());
  std::size_t next = 0;
  for (auto _ : state) state.SetIterationTime(timed_epochs[next++]);
  const double typical = median(timed_epochs);
  state.counters["samples"] = static_cast<double>(samples);
  state.counters["batch"] = static_cast<double>(batch);
  state.counters["steps"] = static_cast<double>((samples + batch - 1) / batch);
  state.counters["epoch_ms"] = typical * 1e3;
  state.counters["warmup_epoch_ms"] = epochs.front() * 1e3;
  state.counters["samples_per_s"] = typical > 0.0 ? static_cast<double>(samples) / typical : 0.0;
  state.counters["final_loss"] = final_loss;
  state.counters["final_accuracy"] = last("accuracy");
}

void register_trainer_cases() {
  add_context("trainer_model",
              "784-256-128-10 relu relu softmax, sparse_categorical_crossentropy, "
              "Adam(1e-3, 0.9, 0.999, 1e-7), synthetic Fashion-MNIST-shaped data");
  const int timed = std::clamp(config().repeats, 1, kMaxTimedEpochs);
  for (std::int64_t batch : kBatches) {
    add_case("trainer/f32/" + std::to_string(batch),
             [batch](benchmark::State& state) { run_case(state, batch); })
        ->Iterations(timed)
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace
}  // namespace warpfuse::bench

int main(int argc, char** argv) {
  return warpfuse::bench::bench_main(argc, argv, "trainer_bench",
                                     warpfuse::bench::register_trainer_cases);
}
