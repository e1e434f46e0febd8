// warpfuse — fused optimizer steps: SGD (with momentum, Nesterov), Adam and AdamW over one or many
// parameter tensors in one launch, with optional low-precision parameters and fp32 master weights,
// gradient scaling, clipping by the global gradient norm and skipping of non-finite steps.
//
// Per element, with p the parameter (its fp32 master copy when given), g the gradient, lr the
// learning rate and t the 1-based number of this update (the CPU reference,
// <warpfuse/ref/optimizer.h>, implements the same formulas in double):
//   g' = grad_scale * c * g,  c = min(1, max_grad_norm / (norm + 1e-6)) when max_grad_norm > 0,
//        else 1; norm = sqrt(sum over every element of every tensor of (grad_scale g)^2)
//   p -= lr weight_decay p                       (decoupled weight decay, any rule; 0: none)
//   sgd    momentum 0:  p -= lr g'
//          else         v = momentum v - lr g';  p += nesterov ? momentum v - lr g' : v
//   adam   m += (1 - beta_1) (g' - m);  v += (1 - beta_2) (g'^2 - v)
//   adamw  p -= s m / (sqrt(v) + epsilon),  s = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
// These are Keras' rules (keras.optimizers.SGD, Adam, AdamW: epsilon is added to sqrt(v) with the
// bias correction folded into the step size; AdamW is Adam with decoupled decay, which every rule
// here offers through weight_decay). PyTorch's Adam differs only in where epsilon enters
// (eps_torch = epsilon sqrt(1 - beta_2^t)) and its default 1e-8.
//
// Storage: parameters T (float, __half, __nv_bfloat16), gradients G (T, or float for fp32
// gradients of low-precision parameters). For T = float the parameters are the master copy; for
// __half and __nv_bfloat16 a fp32 master copy is required (OptimizerTensor::master): the update
// reads and writes it and stores the parameters rounded once from it, so small updates are not
// lost to rounding. State is fp32: sgd with momentum holds the velocity (size floats), adam and
// adamw m then v (2 size floats), optimizer_state_floats() per tensor. All arithmetic is fp32 but
// the step size s, computed once per launch in double.
//
// The norm: when max_grad_norm > 0, options.skip_nonfinite is set or extras.grad_norm is given,
// a first kernel sums (grad_scale g)^2 over all tensors into fixed per-block partials in the
// workspace (fp32 within a thread's elements, fp64 across threads and blocks) and the update
// kernel adds the partials in a fixed order: the same gradients give bitwise the same norm, clip
// factor and parameters on every run (no atomics). With skip_nonfinite, a NaN or infinite norm
// (an overflowed fp16 gradient under loss scaling) leaves every parameter and state element
// unchanged and sets *extras.skipped to 1 (0 otherwise), like torch.amp's GradScaler step.
//
// Tensors: a list of up to kOptimizerTensorsPerLaunch tensors is updated by one launch (two with
// the norm); longer lists take one launch per that many tensors. Each tensor's arrays may start
// at any element address: when all of them share their offset from a 16-byte boundary, the body
// moves in 16-byte (fp32) and 8-byte (16-bit) accesses with a scalar head and tail, otherwise the
// tensor is updated element by element. Tensors must not overlap each other or themselves.
//
// The step number: options.step, or, when extras.step is given, the int64 it points to in device
// memory, read when the kernel runs, so a captured CUDA Graph replays the right bias correction as
// the caller advances it. Only adam and adamw use it.
//
// Every call validates its arguments (warpfuse::InvalidArgument naming the op and the argument:
// null arrays of a non-empty tensor, negative sizes, a missing or superfluous master copy, missing
// state, overlapping arrays, options out of range), allocates nothing, launches on `stream` and
// returns without synchronising; it is safe under CUDA Graph capture. Instantiated for (T, G) =
// (float, float), (__half, __half), (__nv_bfloat16, __nv_bfloat16), (__half, float) and
// (__nv_bfloat16, float).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "warpfuse/optimizer_types.h"
#include "warpfuse/workspace.h"

namespace warpfuse {

/// One parameter tensor of `size` elements and its gradient, master copy and state.
template <class T, class G = T>
struct OptimizerTensor {
  T* params = nullptr;       ///< updated in place
  const G* grads = nullptr;  ///< read only
  float* master = nullptr;   ///< fp32 master weights: required for 16-bit T, null for float
  float* state = nullptr;    ///< optimizer_state_floats(options, size) floats, or null when 0
  std::int64_t size = 0;
};

/// Device-side extras of a step, each optional.
struct OptimizerExtras {
  const std::int64_t* step = nullptr;  ///< this update's number, read on the device (>= 1)
  float* grad_norm = nullptr;          ///< receives the global norm of the scaled gradients
  int* skipped = nullptr;              ///< receives 1 when skip_nonfinite skipped the step, else 0
};

/// Bytes of workspace optimizer_step needs for a list of `tensors` tensors (at least 512; the
/// norm's partial sums when it is computed, nothing otherwise but the minimum).
std::size_t optimizer_workspace_bytes(std::size_t tensors);

/// One step over tensors[0, count). The workspace is used only when the norm is computed
/// (Workspace{} is accepted otherwise).
template <class T, class G = T>
void optimizer_step(const OptimizerTensor<T, G>* tensors, std::size_t count,
                    const OptimizerOptions& options, const OptimizerExtras& extras,
                    const Workspace& workspace, cudaStream_t stream = nullptr);

/// One step over one tensor.
template <class T, class G = T>
void optimizer_step(const OptimizerTensor<T, G>& tensor, const OptimizerOptions& options,
                    const OptimizerExtras& extras, const Workspace& workspace,
                    cudaStream_t stream = nullptr) {
  optimizer_step(&tensor, 1, options, extras, workspace, stream);
}

}  // namespace warpfuse
