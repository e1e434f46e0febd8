// warpfuse kernels — the trainer's optimizer step: one fused launch over the contiguous parameter
// buffer (every layer's kernel, bias and PReLU slopes back to back), its gradients and its state.
//
// The update rules are Keras' (warpfuse/nn/config.h), the same float arithmetic as the CPU
// backend's ref::nn_optimizer_step:
//   sgd    v = momentum v - lr g; p += nesterov ? momentum v - lr g : v   (plain: p -= lr g)
//   adam   m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v);
//          p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
//   adamw  p -= lr weight_decay p first, then adam
// Layout: state holds m (n floats) then v (n floats) for adam / adamw, the velocity for sgd.
// The step count t lives in device memory (advanced by nn_accumulate_kernel earlier in the same
// step), so a captured CUDA Graph replays correct bias corrections with no host involvement.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/dialect.cuh"

namespace warpfuse::detail {

enum class OptimizerRule : int { sgd = 0, adam = 1, adamw = 2 };

struct OptimizerStepParams {
  OptimizerRule rule = OptimizerRule::adam;
  float learning_rate = 1e-3f;
  float momentum = 0.0f;
  int nesterov = 0;
  float beta_1 = 0.9f;
  float beta_2 = 0.999f;
  float epsilon = 1e-7f;
  float weight_decay = 0.0f;
};

/// Threads per block of optimizer_step_kernel (its __launch_bounds__).
constexpr int kOptimizerThreads = 256;

/// Grid-stride over the n parameters, one element per thread per iteration; any grid, blocks of at
/// most kOptimizerThreads.
/// `step` points at the 1-based step number of this update.
__global__ void __launch_bounds__(kOptimizerThreads)
    optimizer_step_kernel(OptimizerStepParams o, const long long* step, float* __restrict__ params,
                          const float* __restrict__ grads, float* __restrict__ state,
                          std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const float lr = o.learning_rate;
  if (o.rule == OptimizerRule::sgd) {
    for (std::int64_t i = first; i < n; i += stride) {
      const float g = grads[i];
      if (o.momentum == 0.0f) {
        params[i] -= lr * g;
      } else {
        const float v = o.momentum * state[i] - lr * g;
        state[i] = v;
        params[i] += o.nesterov ? o.momentum * v - lr * g : v;
      }
    }
    return;
  }
  // In double, as the CPU backend computes it, then rounded once.
  const double t = static_cast<double>(*step);
  const float step_size =
      static_cast<float>(lr * sqrt(1.0 - pow(static_cast<double>(o.beta_2), t)) /
                         (1.0 - pow(static_cast<double>(o.beta_1), t)));
  const float decay = o.rule == OptimizerRule::adamw ? lr * o.weight_decay : 0.0f;
  float* m = state;
  float* v = state + n;
  for (std::int64_t i = first; i < n; i += stride) {
    const float g = grads[i];
    float p = params[i];
    p -= decay * p;
    const float mi = m[i] + (g - m[i]) * (1.0f - o.beta_1);
    const float vi = v[i] + (g * g - v[i]) * (1.0f - o.beta_2);
    m[i] = mi;
    v[i] = vi;
    params[i] = p - step_size * mi / (sqrtf(vi) + o.epsilon);
  }
}

}  // namespace warpfuse::detail
