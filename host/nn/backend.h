// warpfuse::nn internals — what a device backend does for Sequential, and the pieces the CPU and
// CUDA backends share (parameter layout, metric kinds, initialisation, the per-epoch order).
//
// Sequential owns the training loop (epochs, validation, callbacks, progress); a backend owns the
// parameters, gradients and optimizer state (each one contiguous buffer, on its device) and runs
// steps over positions of the epoch's sample order. Totals accumulate on the device and are read
// only through totals(): on the CUDA backend that is the one place the host waits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "warpfuse/nn/model.h"
#include "warpfuse/training_types.h"

namespace warpfuse::nn::detail {

/// Where each layer's tensors sit in the contiguous parameter buffer (-1: absent).
struct LayerSlots {
  std::int64_t inputs = 0;
  std::int64_t units = 0;
  std::int64_t kernel = 0;
  std::int64_t bias = -1;
  std::int64_t prelu = -1;
  Activation activation;
};

struct Layout {
  std::vector<LayerSlots> layers;
  std::int64_t total = 0;
  std::int64_t widest = 0;  ///< the most units (or inputs) of any layer
};

Layout make_layout(const std::vector<Dense>& layers);

/// Why `s` cannot standardise the inputs of a model with `input_dim` features (0: not known yet),
/// or "" when it can: mean and scale of one length (input_dim's), finite, scales nonzero.
std::string standardizer_problem(const Standardizer& s, std::int64_t input_dim);

/// Everything a backend needs to know about the compiled model.
struct ModelSpec {
  Layout layout;
  Loss loss;
  Optimizer optimizer;
  /// What accumulate_metrics adds per batch (the public op's options; accuracy kind, threshold,
  /// errors for the mse / mae metrics). `advance` is set by the training step itself.
  MetricOptions metrics;
  /// The metrics read the output layer's logits (a fused softmax or sigmoid output whose
  /// activation the step does not compute): the same argmax, and a threshold of 0 instead of 0.5.
  bool metrics_on_logits = false;
  /// The output layer's activation is applied inside the loss (softmax + categorical/sparse CE,
  /// sigmoid + binary CE): the loss reads the pre-activation and its gradient is dL/dz.
  bool fused_output = false;
  /// The loss reads logits (fused_output, or from_logits with the output layer's own values).
  bool loss_reads_logits = false;
};

/// Sums over the samples seen since reset_totals() (or in one evaluate()): the public op's totals.
using Totals = TrainingTotals;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  /// How the Dense layers' GEMMs multiply (Sequential::set_matmul_precision).
  virtual void set_matmul_precision(MatmulPrecision precision) = 0;

  virtual void set_parameters(const std::vector<float>& parameters) = 0;
  virtual std::vector<float> parameters() = 0;
  /// Adam's m then v (or SGD's velocity) and the number of steps taken.
  virtual void set_optimizer_state(const std::vector<float>& state, std::int64_t step) = 0;
  virtual std::vector<float> optimizer_state(std::int64_t* step) = 0;

  /// The training samples (rows of x and y) that train_step() indexes through the order.
  virtual void set_training_data(const Matrix& x, const Matrix& y) = 0;
  virtual void set_order(const std::vector<std::int64_t>& order) = 0;
  virtual void reset_totals() = 0;
  /// One optimizer step on samples order[begin, begin + count); `step` numbers it for errors.
  virtual void train_step(std::int64_t begin, std::int64_t count, std::int64_t step) = 0;
  /// Reads the totals (the CUDA backend synchronises here).
  virtual Totals totals() = 0;
  /// Whether totals() is free: the CPU backend lets the loop check every step.
  virtual bool cheap_totals() const = 0;

  virtual Totals evaluate(const Matrix& x, const Matrix& y, std::int64_t batch_size) = 0;
  /// The validation samples of a fit, given once (the CUDA backend keeps them on the device);
  /// evaluate_validation() then evaluates them at every epoch's end.
  virtual void set_validation_data(const Matrix& x, const Matrix& y) = 0;
  virtual Totals evaluate_validation(std::int64_t batch_size) = 0;
  virtual void predict(const Matrix& x, std::int64_t batch_size, float* out) = 0;
};

std::unique_ptr<Backend> make_cpu_backend(const ModelSpec& spec);
/// Throws Unsupported when no CUDA device is present.
std::unique_ptr<Backend> make_cuda_backend(const ModelSpec& spec);

/// The model's initial parameters, drawn from `seed` (mt19937_64 with our own conversions, so the
/// values are the same with every standard library).
std::vector<float> initial_parameters(const std::vector<Dense>& layers, const Layout& layout,
                                      std::uint64_t seed);

/// The epoch's sample order: identity, or a seeded Fisher-Yates shuffle of (seed, epoch).
std::vector<std::int64_t> epoch_order(std::int64_t n, bool shuffle, std::uint64_t seed, int epoch);

}  // namespace warpfuse::nn::detail
