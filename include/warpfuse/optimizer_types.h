// warpfuse — the optimizer's rule and options, without CUDA: shared by the fused op
// (<warpfuse/optimizer.h>), its CPU reference (<warpfuse/ref/optimizer.h>) and the trainer
// (warpfuse::nn). The rules and what each option means are documented in <warpfuse/optimizer.h>.
#pragma once

#include <cstdint>

namespace warpfuse {

/// The update rule (the one enum of the library and of warpfuse::nn).
enum class OptimizerRule { sgd, adam, adamw };

/// "sgd", "adam" or "adamw".
inline const char* to_string(OptimizerRule rule) {
  switch (rule) {
    case OptimizerRule::sgd:
      return "sgd";
    case OptimizerRule::adam:
      return "adam";
    case OptimizerRule::adamw:
      return "adamw";
  }
  return "unknown";
}

/// Hyperparameters of a step. Defaults are Keras' Adam.
struct OptimizerOptions {
  OptimizerRule rule = OptimizerRule::adam;
  float learning_rate = 1e-3f;  ///< >= 0, finite
  float momentum = 0.0f;        ///< sgd, in [0, 1): 0 is plain SGD (no state)
  bool nesterov = false;        ///< sgd with momentum > 0
  float beta_1 = 0.9f;          ///< adam, adamw, in [0, 1)
  float beta_2 = 0.999f;        ///< adam, adamw, in [0, 1)
  float epsilon = 1e-7f;        ///< adam, adamw, > 0
  float weight_decay = 0.0f;    ///< >= 0: decoupled decay p -= lr weight_decay p, any rule
  float grad_scale = 1.0f;      ///< finite: multiplies every gradient (1 / a loss scale)
  float max_grad_norm = 0.0f;   ///< > 0: clip by the global norm of the scaled gradients
  bool skip_nonfinite = false;  ///< a non-finite global norm skips the whole step
  std::int64_t step = 1;        ///< >= 1: this update's number (adam's t) unless extras.step
};

/// Tensors one launch of optimizer_step updates; a longer list takes more launches.
constexpr int kOptimizerTensorsPerLaunch = 64;

/// fp32 state elements a tensor of `size` parameters needs under `options`: 0 (sgd without
/// momentum), size (sgd with momentum: the velocity) or 2 size (adam, adamw: m then v).
inline std::int64_t optimizer_state_floats(const OptimizerOptions& options, std::int64_t size) {
  if (size <= 0) return 0;
  if (options.rule == OptimizerRule::sgd) return options.momentum != 0.0f ? size : 0;
  return 2 * size;
}

}  // namespace warpfuse
