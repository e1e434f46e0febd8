// warpfuse::ref — the optimizer step in double (include/warpfuse/ref/optimizer.h).
#include "warpfuse/ref/optimizer.h"

#include "host/reference/thread_pool.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace warpfuse::ref {

template <class S>
double gradient_norm(const std::vector<OptimizerTensor<S>>& tensors, double grad_scale) {
  double sum = 0.0;
  for (const OptimizerTensor<S>& t : tensors) {
    for (std::int64_t i = 0; i < t.size; ++i) {
      const double g = grad_scale * static_cast<double>(t.grads[i]);
      sum += g * g;
    }
  }
  return std::sqrt(sum);
}

namespace {

template <class S>
void check(const std::vector<OptimizerTensor<S>>& tensors, const OptimizerOptions& options) {
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const OptimizerTensor<S>& t = tensors[i];
    const std::string name = "ref::optimizer_step: tensors[" + std::to_string(i) + "]";
    if (t.size < 0) throw std::invalid_argument(name + ".size is negative");
    if (t.size == 0) continue;
    if (t.params == nullptr || t.grads == nullptr) {
      throw std::invalid_argument(name + " has a null params or grads");
    }
    if (optimizer_state_floats(options, t.size) > 0 && t.state == nullptr) {
      throw std::invalid_argument(name + ".state is null");
    }
  }
}

/// Tensors of at least this many elements are updated by every pool thread.
constexpr std::int64_t kParallelUpdateElements = 64 * 1024;

/// One tensor's update with the gradient factor (grad_scale times the clip) and adam's step size,
/// in arithmetic C (double: the reference; float: optimizer_step_fp32, the CPU trainer's step).
/// The loop has no calls and no aliasing, so the compiler vectorises it.
// Compiled three times, for AVX-512, AVX2 and the baseline, and picked when the program starts:
// the CPU trainer runs this over every parameter on every step. This file is compiled with
// -ffp-contract=off (CMakeLists.txt): no FMA in any clone, so all give bitwise the same results.
template <class S, class C>
__attribute__((target_clones("avx512f", "avx2", "default"))) void update(
    const OptimizerOptions& o, double factor_in, double step_size_in, const OptimizerTensor<S>& t,
    std::int64_t begin, std::int64_t end) {
  // Elements [begin, end) of the tensor (its state is [0, size) then, for adam, [size, 2 size)).
  S* __restrict__ params = t.params + begin;
  const S* __restrict__ grads = t.grads + begin;
  const std::int64_t n = end - begin;
  const C lr = o.learning_rate;
  const C factor = static_cast<C>(factor_in), step_size = static_cast<C>(step_size_in);
  const C decay = lr * static_cast<C>(o.weight_decay);
  if (o.rule == OptimizerRule::sgd) {
    const C momentum = o.momentum;
    if (momentum == 0.0) {
      for (std::int64_t i = 0; i < n; ++i) {
        C p = params[i];
        p -= decay * p;
        params[i] = static_cast<S>(p - lr * (factor * static_cast<C>(grads[i])));
      }
      return;
    }
    S* __restrict__ velocity = t.state + begin;
    const bool nesterov = o.nesterov;
    for (std::int64_t i = 0; i < n; ++i) {
      const C g = factor * static_cast<C>(grads[i]);
      C p = params[i];
      p -= decay * p;
      const C v = momentum * static_cast<C>(velocity[i]) - lr * g;
      velocity[i] = static_cast<S>(v);
      params[i] = static_cast<S>(p + (nesterov ? momentum * v - lr * g : v));
    }
    return;
  }
  S* __restrict__ m = t.state + begin;
  S* __restrict__ v = t.state + t.size + begin;
  const C keep_1 = C(1) - static_cast<C>(o.beta_1);
  const C keep_2 = C(1) - static_cast<C>(o.beta_2);
  const C epsilon = o.epsilon;
  for (std::int64_t i = 0; i < n; ++i) {
    const C g = factor * static_cast<C>(grads[i]);
    C p = params[i];
    p -= decay * p;
    const C mi = static_cast<C>(m[i]) + (g - static_cast<C>(m[i])) * keep_1;
    const C vi = static_cast<C>(v[i]) + (g * g - static_cast<C>(v[i])) * keep_2;
    m[i] = static_cast<S>(mi);
    v[i] = static_cast<S>(vi);
    params[i] = static_cast<S>(p - step_size * mi / (std::sqrt(vi) + epsilon));
  }
}

}  // namespace

namespace {

/// optimizer_step with the per-element arithmetic in C (the norm and Adam's step size in double).
template <class S, class C>
OptimizerResult step_in(const std::vector<OptimizerTensor<S>>& tensors,
                        const OptimizerOptions& options) {
  check(tensors, options);
  OptimizerResult result;
  double factor = options.grad_scale;
  if (options.max_grad_norm > 0.0f || options.skip_nonfinite) {
    result.grad_norm = gradient_norm(tensors, options.grad_scale);
    if (options.skip_nonfinite && !std::isfinite(result.grad_norm)) {
      result.skipped = true;
      return result;
    }
    if (options.max_grad_norm > 0.0f && std::isfinite(result.grad_norm)) {
      const double clip = static_cast<double>(options.max_grad_norm) / (result.grad_norm + 1e-6);
      if (clip < 1.0) factor *= clip;
    }
  }
  double step_size = options.learning_rate;
  if (options.rule != OptimizerRule::sgd) {
    const auto t = static_cast<double>(options.step);
    step_size = static_cast<double>(options.learning_rate) *
                std::sqrt(1.0 - std::pow(static_cast<double>(options.beta_2), t)) /
                (1.0 - std::pow(static_cast<double>(options.beta_1), t));
  }
  // Elementwise, so a tensor splits into parts the pool runs at once (the CPU trainer's step)
  // with bitwise the same results as one loop.
  const int threads = detail::parallel_threads();
  for (const OptimizerTensor<S>& t : tensors) {
    const int parts = t.size >= kParallelUpdateElements ? threads : 1;
    if (parts <= 1) {
      update<S, C>(options, factor, step_size, t, 0, t.size);
      continue;
    }
    detail::parallel_for(parts, [&](int part) {
      update<S, C>(options, factor, step_size, t, t.size * part / parts,
                   t.size * (part + 1) / parts);
    });
  }
  return result;
}

}  // namespace

template <class S>
OptimizerResult optimizer_step(const std::vector<OptimizerTensor<S>>& tensors,
                               const OptimizerOptions& options) {
  return step_in<S, double>(tensors, options);
}

OptimizerResult optimizer_step_fp32(const std::vector<OptimizerTensor<float>>& tensors,
                                    const OptimizerOptions& options) {
  return step_in<float, float>(tensors, options);
}

template double gradient_norm<float>(const std::vector<OptimizerTensor<float>>&, double);
template double gradient_norm<double>(const std::vector<OptimizerTensor<double>>&, double);
template OptimizerResult optimizer_step<float>(const std::vector<OptimizerTensor<float>>&,
                                               const OptimizerOptions&);
template OptimizerResult optimizer_step<double>(const std::vector<OptimizerTensor<double>>&,
                                                const OptimizerOptions&);

}  // namespace warpfuse::ref
