// warpfuse::ref — CPU reference of the fused optimizer step of <warpfuse/optimizer.h>: the same
// rules (SGD with momentum and Nesterov, Adam, AdamW; decoupled weight decay; gradient scaling;
// clipping by the global norm; skipping non-finite steps) with every intermediate in double.
//
// S, the storage type of parameters, gradients and state (float or double), is deduced from the
// tensors. S = double is the oracle the kernels are checked against (their fp32 master weights
// and state compared with it); S = float is what the trainer's CPU backend runs. The parameters
// here are the master copy: a 16-bit tensor's rounding happens on the device side only.
// No CUDA needed.
#pragma once

#include <cstdint>
#include <vector>

#include "warpfuse/optimizer_types.h"

namespace warpfuse::ref {

/// One tensor of `size` elements: parameters updated in place, gradients, and
/// optimizer_state_floats(options, size) state elements (adam m then v, sgd velocity).
template <class S>
struct OptimizerTensor {
  S* params = nullptr;
  const S* grads = nullptr;
  S* state = nullptr;
  std::int64_t size = 0;
};

/// What a step found: the global norm of the scaled gradients (computed only when the options
/// need it: max_grad_norm > 0 or skip_nonfinite; else 0) and whether the step was skipped.
struct OptimizerResult {
  double grad_norm = 0.0;
  bool skipped = false;
};

/// sqrt(sum over every element of every tensor of (grad_scale g)^2), accumulated in double in
/// tensor and index order.
template <class S>
double gradient_norm(const std::vector<OptimizerTensor<S>>& tensors, double grad_scale);

/// One step of every tensor with options.step as t. Throws std::invalid_argument for a tensor with
/// a null array it needs or a negative size.
template <class S>
OptimizerResult optimizer_step(const std::vector<OptimizerTensor<S>>& tensors,
                               const OptimizerOptions& options);

/// optimizer_step's formula with the per-element arithmetic in float, as the CUDA kernels
/// compute it (the global norm and Adam's bias-corrected step size stay double): the CPU trainer's
/// step, several times faster than the fp64 reference (float sqrt and divide in 16 lanes).
/// Tested against optimizer_step within float tolerance.
OptimizerResult optimizer_step_fp32(const std::vector<OptimizerTensor<float>>& tensors,
                                    const OptimizerOptions& options);

}  // namespace warpfuse::ref
