// warpfuse kernels — the fused optimizer step of <warpfuse/optimizer.h>: SGD (momentum, Nesterov),
// Adam and AdamW over a list of parameter tensors, with fp32 master weights for 16-bit
// parameters, gradient scaling, clipping by the global norm and skipping of non-finite steps.
//
// Two kernels, both grid-stride over every tensor of a batch (up to kOptimizerTensorsPerLaunch
// tensors passed by value, so one launch updates them all and a captured graph holds no pointer to
// host memory):
//   optimizer_norm_kernel    kOptimizerNormBlocks blocks (a fixed count, so the partition and the
//                            order of every addition are the same on every run and device): each
//                            thread sums (grad_scale g)^2 of its packs, fp32 within a pack and fp64
//                            across packs; the block's total goes to partials[blockIdx.x]
//   optimizer_update_kernel  a wave of blocks: each block first adds the partials in a fixed order
//                            (every block gets bitwise the same norm), derives the clip factor and
//                            whether the step is skipped, then updates its packs
// Access: per tensor, when every array shares its offset from a 16-byte boundary, a scalar head,
// packs of kOptimizerPack elements (16-byte fp32 arrays, 8-byte 16-bit arrays), a scalar tail;
// otherwise element by element. Every load of a pack is issued before the arithmetic uses it. The
// threads' starting positions rotate from tensor to tensor, so a list of small tensors (biases)
// spreads over the grid instead of landing on its first warps.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"
#include "warpfuse/optimizer_types.h"

namespace warpfuse::detail {

/// Threads per block of both kernels (their __launch_bounds__).
constexpr int kOptimizerThreads = 256;
/// Blocks of the norm kernel: the number of partial sums per launch.
constexpr int kOptimizerNormBlocks = 256;
/// Elements per pack of the vector path.
constexpr int kOptimizerPack = 4;

/// One tensor as the kernels see it (OptimizerTensor without the public defaults).
template <class T, class G>
struct OptimizerSlot {
  T* params;
  const G* grads;
  float* master;
  float* state;
  std::int64_t size;
};

/// The tensors of one launch, passed by value.
template <class T, class G>
struct OptimizerBatch {
  OptimizerSlot<T, G> tensors[kOptimizerTensorsPerLaunch];
  int count;
};

/// The options and extras as the update kernel reads them.
struct OptimizerParams {
  OptimizerRule rule;
  float learning_rate;
  float momentum;
  int nesterov;
  float beta_1;
  float beta_2;
  float epsilon;
  float weight_decay;
  float grad_scale;
  float max_grad_norm;
  int skip_nonfinite;
  std::int64_t step;                ///< used when device_step is null
  const std::int64_t* device_step;  ///< this update's number in device memory, or null
  const double* partials;           ///< the norm's partials (null: no norm), partial_count of them
  int partial_count;
  float* grad_norm;  ///< written by block 0 when write_extras
  int* skipped;      ///< written by block 0 when write_extras
  int write_extras;
};

/// Where tensor `t`'s packs start in the thread rotation: the packs (and scalars) of the tensors
/// before it, modulo the grid's threads.
template <class T, class G>
WF_DEVICE std::int64_t rotation_of(const OptimizerBatch<T, G>& batch, int t, std::int64_t threads) {
  std::int64_t before = 0;
  for (int i = 0; i < t; ++i) before += batch.tensors[i].size / kOptimizerPack + 1;
  return before % threads;
}

/// The first element of tensor `slot` from which every array is pack-aligned, or `size` when the
/// arrays do not share their offset from a pack boundary (the tensor then goes element by element).
template <class T, class G>
WF_DEVICE std::int64_t vector_head(const OptimizerSlot<T, G>& slot) {
  const PackSplit split = slot.master != nullptr
                              ? split_for_packs<kOptimizerPack>(slot.master, slot.size)
                              : split_for_packs<kOptimizerPack>(slot.params, slot.size);
  const std::int64_t head = split.head;
  if (head >= slot.size) return slot.size;
  const bool aligned =
      is_pack_aligned<kOptimizerPack>(slot.params + head) &&
      is_pack_aligned<kOptimizerPack>(slot.grads + head) &&
      (slot.master == nullptr || is_pack_aligned<kOptimizerPack>(slot.master + head)) &&
      (slot.state == nullptr || (is_pack_aligned<kOptimizerPack>(slot.state + head) &&
                                 is_pack_aligned<kOptimizerPack>(slot.state + slot.size + head)));
  return aligned ? head : slot.size;
}

/// Visits tensor `slot` as (first element, count) pieces for this thread: packs of kOptimizerPack
/// from the vector head on, single elements before the head and after the last whole pack. The
/// thread's share is every `threads`-th piece from its rotated position.
template <class T, class G, class Visit>
WF_DEVICE void for_each_piece(const OptimizerSlot<T, G>& slot, std::int64_t thread,
                              std::int64_t threads, std::int64_t rotation, Visit&& visit) {
  const std::int64_t head = vector_head(slot);
  const std::int64_t packs = (slot.size - head) / kOptimizerPack;
  const std::int64_t body_end = head + packs * kOptimizerPack;
  const std::int64_t scalars = head + (slot.size - body_end);
  std::int64_t first = thread - rotation;
  if (first < 0) first += threads;
  for (std::int64_t pack = first; pack < packs; pack += threads) {
    visit(head + pack * kOptimizerPack, kOptimizerPack);
  }
  for (std::int64_t i = first; i < scalars; i += threads) {
    visit(i < head ? i : body_end + (i - head), 1);
  }
}

/// n (kOptimizerPack or 1) consecutive elements of `from` as floats.
template <class V>
WF_DEVICE void load_floats(const V* from, int n, float (&to)[kOptimizerPack]) {
  if (n == kOptimizerPack) {
    const Pack<V, kOptimizerPack> pack = load_pack<kOptimizerPack>(from);
#pragma unroll
    for (int k = 0; k < kOptimizerPack; ++k) to[k] = to_float(pack.elem[k]);
  } else {
    to[0] = to_float(from[0]);
  }
}

template <class V>
WF_DEVICE void store_floats(V* to, int n, const float (&from)[kOptimizerPack]) {
  if (n == kOptimizerPack) {
    Pack<V, kOptimizerPack> pack;
#pragma unroll
    for (int k = 0; k < kOptimizerPack; ++k) pack.elem[k] = from_float<V>(from[k]);
    store_pack<kOptimizerPack>(to, pack);
  } else {
    to[0] = from_float<V>(from[0]);
  }
}

/// Grid of kOptimizerNormBlocks blocks of kOptimizerThreads: partials[blockIdx.x] = the block's
/// sum of (grad_scale g)^2 over every element of the batch's tensors.
template <class T, class G>
__global__ void __launch_bounds__(kOptimizerThreads)
    optimizer_norm_kernel(OptimizerBatch<T, G> batch, float grad_scale, double* partials) {
  const std::int64_t threads = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t thread = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  double sum = 0.0;
  for (int t = 0; t < batch.count; ++t) {
    const OptimizerSlot<T, G>& slot = batch.tensors[t];
    for_each_piece(slot, thread, threads, rotation_of(batch, t, threads),
                   [&](std::int64_t at, int n) {
                     float g[kOptimizerPack] = {};
                     load_floats(slot.grads + at, n, g);
                     float squares = 0.0f;
                     for (int k = 0; k < n; ++k) {
                       const float scaled = grad_scale * g[k];
                       squares = fmaf(scaled, scaled, squares);
                     }
                     sum += static_cast<double>(squares);
                   });
  }
  sum = block_all_reduce_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

/// What every block derives before updating: the scale applied to every gradient, the step size
/// of adam, and whether the step is skipped.
struct OptimizerScalars {
  float gradient_scale;
  float step_size;
  bool skip;
};

/// Every thread of the block calls it (a block reduction); every block gets the same values.
WF_DEVICE OptimizerScalars optimizer_scalars(const OptimizerParams& p) {
  OptimizerScalars s{p.grad_scale, p.learning_rate, false};
  if (p.partials != nullptr) {
    double sum = 0.0;
    for (int i = static_cast<int>(threadIdx.x); i < p.partial_count; i += kOptimizerThreads) {
      sum += p.partials[i];
    }
    const double norm = sqrt(block_all_reduce_sum(sum));
    if (p.skip_nonfinite && !is_finite(norm)) s.skip = true;
    if (p.max_grad_norm > 0.0f && is_finite(norm)) {
      const double clip = static_cast<double>(p.max_grad_norm) / (norm + 1e-6);
      if (clip < 1.0) s.gradient_scale = static_cast<float>(p.grad_scale * clip);
    }
    if (p.write_extras && blockIdx.x == 0 && threadIdx.x == 0) {
      if (p.grad_norm != nullptr) *p.grad_norm = static_cast<float>(norm);
      if (p.skipped != nullptr) *p.skipped = s.skip ? 1 : 0;
    }
  }
  if (p.rule != OptimizerRule::sgd) {
    // In double, then rounded once: 1 - beta_2^t is 1e-3 at t = 1 and loses digits in fp32.
    const double t = static_cast<double>(p.device_step != nullptr ? *p.device_step : p.step);
    s.step_size = static_cast<float>(static_cast<double>(p.learning_rate) *
                                     sqrt(1.0 - pow(static_cast<double>(p.beta_2), t)) /
                                     (1.0 - pow(static_cast<double>(p.beta_1), t)));
  }
  return s;
}

/// A wave of blocks of kOptimizerThreads (any grid): one step of every tensor of the batch. kPack
/// is kOptimizerPack (the vector path's width; the gate reads it).
template <class T, class G, int kPack>
__global__ void __launch_bounds__(kOptimizerThreads)
    optimizer_update_kernel(OptimizerBatch<T, G> batch, OptimizerParams p) {
  static_assert(kPack == kOptimizerPack, "optimizer_update_kernel: one pack width");
  const OptimizerScalars s = optimizer_scalars(p);
  if (s.skip) return;
  const std::int64_t threads = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t thread = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const float lr = p.learning_rate;
  const float decay = lr * p.weight_decay;
  const bool sgd = p.rule == OptimizerRule::sgd;
  for (int t = 0; t < batch.count; ++t) {
    const OptimizerSlot<T, G>& slot = batch.tensors[t];
    float* const first_state = slot.state;
    float* const second_state = slot.state != nullptr ? slot.state + slot.size : nullptr;
    for_each_piece(slot, thread, threads, rotation_of(batch, t, threads),
                   [&](std::int64_t at, int n) {
                     float w[kOptimizerPack] = {}, g[kOptimizerPack] = {}, m[kOptimizerPack] = {},
                           v[kOptimizerPack] = {};
                     // Every load first.
                     if (slot.master != nullptr) {
                       load_floats(slot.master + at, n, w);
                     } else {
                       load_floats(slot.params + at, n, w);
                     }
                     load_floats(slot.grads + at, n, g);
                     const bool has_first = !sgd || p.momentum != 0.0f;
                     if (has_first) load_floats(first_state + at, n, m);
                     if (!sgd) load_floats(second_state + at, n, v);
                     for (int k = 0; k < n; ++k) {
                       const float grad = s.gradient_scale * g[k];
                       float weight = w[k] - decay * w[k];
                       if (sgd) {
                         if (p.momentum == 0.0f) {
                           weight -= lr * grad;
                         } else {
                           const float velocity = p.momentum * m[k] - lr * grad;
                           m[k] = velocity;
                           weight += p.nesterov ? p.momentum * velocity - lr * grad : velocity;
                         }
                       } else {
                         m[k] += (grad - m[k]) * (1.0f - p.beta_1);
                         v[k] += (grad * grad - v[k]) * (1.0f - p.beta_2);
                         weight -= s.step_size * m[k] / (sqrtf(v[k]) + p.epsilon);
                       }
                       w[k] = weight;
                     }
                     if (slot.master != nullptr) store_floats(slot.master + at, n, w);
                     store_floats(slot.params + at, n, w);
                     if (has_first) store_floats(first_state + at, n, m);
                     if (!sgd) store_floats(second_state + at, n, v);
                   });
  }
}

}  // namespace warpfuse::detail
