// warpfuse kernels — cross-entropy from logits fused with softmax and its gradient (the math and
// semantics are documented in include/warpfuse/cross_entropy.h).
//
// Every strategy reduces, per row, four fp32 quantities in one pass over the logits:
//   max and Z = sum exp(z - max)     (lse = max + log Z)
//   a = sum_c a_c, b = sum_c b_c     index targets: a = z_t, b = sum_c w_c z_c (smoothing only)
//                                    probability targets: a = sum_c w_c q'_c, b = sum_c w_c q'_c
//                                    z_c
// then writes the row's loss, its lse, and (optionally) the gradient
//   dz_c = g (p_c A - B_c),   A = row factor (see gradient_factor), B_c = w_c q'_c.
// Strategies mirror softmax's: warp (row in registers, kLanes lanes per row), block (logits cached
// in shared memory), online (max and Z together with the online normaliser, a second pass for the
// gradient). In-place dlogits == logits is safe in all three: every logit is read before the
// thread that read it overwrites it.
//
// A row whose target is ignore_index gets loss 0 and a zero gradient; a target outside [0, C)
// gets loss NaN and a zero gradient, and is reported once (by the row's first thread) through the
// workspace header with integer atomics.
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/common/rows.cuh"
#include "kernels/loss.cuh"

namespace warpfuse::detail {

/// Class-index targets.
template <class Index>
struct IndexTargets {
  static constexpr bool kProbabilities = false;
  const Index* targets;
  long long ignore_index;
};

/// Probability targets: a rows x C matrix of the logits' type.
template <class T>
struct ProbabilityTargets {
  static constexpr bool kProbabilities = true;
  const T* probabilities;
  std::int64_t ld;
};

template <class T, class Targets>
struct CrossEntropyArgs {
  const T* logits;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld;
  Targets targets;
  const float* weight;  // C class weights, or null for all ones
  float smoothing;
  float z_loss;
  float uniform_mass;  // smoothing / C, divided once on the host
  float grad_scale;    // g, unless scale_from_header (host: grad_scale, or grad_scale / rows for a
                       // mean over probability targets)
  bool scale_from_header;  // index targets, mean: g = header->gradient_scale (the prepare kernel's)
  float* row_loss;         // rows floats: the output (none) or the workspace partials
  float* logsumexp;        // rows floats or null
  T* grad;                 // rows x C or null
  std::int64_t ld_grad;
  LossHeader* header;
};

/// What a row's target says before its logits are read.
struct CrossEntropyRow {
  std::int64_t target;  // the class (index targets)
  float target_weight;  // w_t (index targets)
  bool ignored;
  bool bad;
};

template <class T, class Targets>
WF_DEVICE CrossEntropyRow cross_entropy_row(const CrossEntropyArgs<T, Targets>& args,
                                            std::int64_t row) {
  if constexpr (Targets::kProbabilities) {
    return CrossEntropyRow{0, 1.0f, false, false};
  } else {
    const long long target = static_cast<long long>(args.targets.targets[row]);
    if (target == args.targets.ignore_index) return CrossEntropyRow{0, 0.0f, true, false};
    if (target < 0 || target >= args.cols) return CrossEntropyRow{0, 0.0f, false, true};
    const float weight = args.weight != nullptr ? args.weight[target] : 1.0f;
    return CrossEntropyRow{target, weight, false, false};
  }
}

/// q'_c w_c: the target distribution's weight on class `col` (index targets: the smoothed
/// one-hot), given the probability target q (unused for index targets).
template <class T, class Targets>
WF_DEVICE float target_mass(const CrossEntropyArgs<T, Targets>& args, const CrossEntropyRow& row,
                            std::int64_t col, float q) {
  const float weight = args.weight != nullptr ? args.weight[col] : 1.0f;
  const float uniform = args.uniform_mass;
  if constexpr (Targets::kProbabilities) {
    return weight * ((1.0f - args.smoothing) * q + uniform);
  } else {
    return weight * ((col == row.target ? 1.0f - args.smoothing : 0.0f) + uniform);
  }
}

/// Adds logit z of class `col` to the row's linear sums a and b.
template <class T, class Targets>
WF_DEVICE void accumulate_linear(const CrossEntropyArgs<T, Targets>& args,
                                 const CrossEntropyRow& row, std::int64_t col, float z, float q,
                                 float* a, float* b) {
  if constexpr (Targets::kProbabilities) {
    const float mass = target_mass(args, row, col, q);
    *a += mass;
    if (mass != 0.0f) *b += mass * z;  // a class with no mass adds nothing, even at z = -inf
  } else {
    if (col == row.target) *a += z;
    if (args.smoothing > 0.0f) {
      const float weight = args.weight != nullptr ? args.weight[col] : 1.0f;
      if (weight != 0.0f) *b += weight * z;
    }
  }
}

/// The row's loss from lse = shift + log_sum and its linear sums; W is the sum of the class
/// weights. The target term is formed as (shift - z_t) + log_sum, exact when z_t is the row
/// maximum, instead of lse - z_t, which loses everything to rounding when |z| is large.
template <class T, class Targets>
WF_DEVICE float row_loss_value(const CrossEntropyArgs<T, Targets>& args, const CrossEntropyRow& row,
                               float shift, float log_sum, float a, float b, float weight_sum) {
  const float lse = shift + log_sum;
  float loss;
  if constexpr (Targets::kProbabilities) {
    loss = a * lse - b;
  } else {
    loss = (1.0f - args.smoothing) * row.target_weight * ((shift - a) + log_sum);
    if (args.smoothing > 0.0f) {
      loss += args.uniform_mass * (weight_sum * lse - b);
    }
  }
  return loss + args.z_loss * lse * lse;
}

/// The multiplier of p_c in the gradient: sum_k w_k q'_k + 2 zl lse.
template <class T, class Targets>
WF_DEVICE float gradient_factor(const CrossEntropyArgs<T, Targets>& args,
                                const CrossEntropyRow& row, float lse, float a, float weight_sum) {
  float mass;
  if constexpr (Targets::kProbabilities) {
    mass = a;
  } else {
    mass = (1.0f - args.smoothing) * row.target_weight + args.uniform_mass * weight_sum;
  }
  return mass + 2.0f * args.z_loss * lse;
}

/// g for this row: grad_scale, divided as the mean requires (0 when every row is ignored). The
/// divisions are done once, on the host or in the prepare kernel: a division in the row kernels
/// calls the IEEE slow path, whose calling convention spilled registers to local memory.
template <class T, class Targets>
WF_DEVICE float row_gradient_scale(const CrossEntropyArgs<T, Targets>& args) {
  return args.scale_from_header ? args.header->gradient_scale : args.grad_scale;
}

/// Writes the row's loss and lse (called by one thread per row) and reports a bad target.
template <class T, class Targets>
WF_DEVICE void finish_row(const CrossEntropyArgs<T, Targets>& args, const CrossEntropyRow& row,
                          std::int64_t index, float shift, float log_sum, float a, float b,
                          float weight_sum) {
  float loss = 0.0f;
  if (row.bad) {
    loss = quiet_nan();
    loss_report_bad_row(args.header, index);
  } else if (!row.ignored) {
    loss = row_loss_value(args, row, shift, log_sum, a, b, weight_sum);
  }
  args.row_loss[index] = loss;
  if (args.logsumexp != nullptr) args.logsumexp[index] = shift + log_sum;
}

/// The probability target of (row, col), or 0 for index targets.
template <class T, class Targets>
WF_DEVICE float probability_at(const CrossEntropyArgs<T, Targets>& args, std::int64_t row,
                               std::int64_t col) {
  if constexpr (Targets::kProbabilities) {
    return to_float(args.targets.probabilities[row * args.targets.ld + col]);
  } else {
    return 0.0f;
  }
}

/// The probability target of (row, col), or 0 past the row's end or for index targets.
template <class T, class Targets>
WF_DEVICE float probability_or_zero(const CrossEntropyArgs<T, Targets>& args, std::int64_t row,
                                    std::int64_t col, std::int64_t cols) {
  return col < cols ? probability_at(args, row, col) : 0.0f;
}

/// w_t of row `r` when it counts toward the mean's denominator (neither ignored nor bad), else 0.
template <class Index>
WF_DEVICE float counted_weight(const Index* targets, std::int64_t r, std::int64_t cols,
                               long long ignore_index, const float* weight) {
  const long long target = static_cast<long long>(targets[r]);
  if (target == ignore_index || target < 0 || target >= cols) return 0.0f;
  return weight != nullptr ? weight[target] : 1.0f;
}

/// First stage of the denominator for many rows (reduce_blocks(rows) > 1): block b writes the sum
/// of counted_weight over its chunk of rows (reduce_chunk(rows), kernels/loss.cuh) to
/// block_denominators[b]. Launch: reduce_blocks(rows) blocks of kLossReduceThreads threads.
template <class Index>
__global__ void __launch_bounds__(kLossReduceThreads)
    cross_entropy_denominator_kernel(const Index* targets, std::int64_t rows, std::int64_t cols,
                                     long long ignore_index, const float* weight,
                                     float* block_denominators) {
  const std::int64_t chunk = reduce_chunk(rows);
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * chunk;
  const std::int64_t end = begin + chunk < rows ? begin + chunk : rows;
  float denominator = 0.0f;
  for (std::int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) {
    denominator += counted_weight(targets, r, cols, ignore_index, weight);
  }
  denominator = block_all_reduce_sum(denominator);
  if (threadIdx.x == 0) block_denominators[blockIdx.x] = denominator;
}

/// One block over the targets, before the main kernel (index targets): W = sum_c w_c and the
/// mean's denominator, the sum of w_t over rows neither ignored nor bad: directly over the rows,
/// or (block_denominators not null) over the first stage's reduce_blocks(rows) block sums. Both
/// with fixed-order block reductions. Launch: one block of kLossReduceThreads threads.
template <class Index>
__global__ void __launch_bounds__(kLossReduceThreads)
    cross_entropy_prepare_kernel(const Index* targets, std::int64_t rows, std::int64_t cols,
                                 long long ignore_index, const float* weight, float grad_scale,
                                 const float* block_denominators, LossHeader* header) {
  float weight_sum = 0.0f;
  for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    weight_sum += weight != nullptr ? weight[c] : 1.0f;
  }
  weight_sum = block_all_reduce_sum(weight_sum);
  float denominator = 0.0f;
  if (block_denominators != nullptr) {
    const std::int64_t blocks = reduce_blocks(rows);
    for (std::int64_t b = threadIdx.x; b < blocks; b += blockDim.x) {
      denominator += block_denominators[b];
    }
  } else {
    for (std::int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
      denominator += counted_weight(targets, r, cols, ignore_index, weight);
    }
  }
  denominator = block_all_reduce_sum(denominator);
  if (threadIdx.x == 0) {
    header->weight_sum = weight_sum;
    header->denominator = denominator;
    header->gradient_scale = denominator == 0.0f ? 0.0f : grad_scale / denominator;
  }
}

/// Warp strategy. Grid: 1-D, grid-stride over rows; block: kWarpRowBlockThreads-style whole
/// warps; kLanes lanes per row, kPerLane logits per lane in registers (probability targets are read
/// from global memory in both passes, the second from cache). Requires cols <= kLanes * kPerLane.
template <class T, class Targets, int kLanes, int kPerLane, int kPack>
__global__ void __launch_bounds__(kWarpRowBlockThreads)
    cross_entropy_warp_kernel(CrossEntropyArgs<T, Targets> args) {
  constexpr int kRowsPerWarp = kWarpSize / kLanes;
  constexpr int kChunks = kPerLane / kPack;
  constexpr bool kProb = Targets::kProbabilities;
  const int lane_in_row = static_cast<int>(lane_index()) % kLanes;
  const int group = static_cast<int>(lane_index()) / kLanes;
  std::int64_t first_row, row_stride;
  warp_rows<kRowsPerWarp>(&first_row, &row_stride);
  for (std::int64_t warp_row = first_row; warp_row < args.rows; warp_row += row_stride) {
    const std::int64_t row = warp_row + group;
    const bool active = row < args.rows;
    const std::int64_t cols = active ? args.cols : 0;
    const CrossEntropyRow info =
        active ? cross_entropy_row(args, row) : CrossEntropyRow{0, 0.0f, true, false};
    float z[kPerLane];
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const std::int64_t col = (static_cast<std::int64_t>(k) * kLanes + lane_in_row) * kPack;
      load_scaled<kPack>(args.logits + (active ? row : 0) * args.ld, col, cols, 1.0f,
                         negative_infinity(), z + k * kPack);
    }
    float max = negative_infinity();
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) max = fmaxf(max, z[i]);
    max = warp_all_reduce_max<kLanes>(max);
    const float shift = max == negative_infinity() ? 0.0f : max;
    float sum = 0.0f, a = 0.0f, b = 0.0f;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        const std::int64_t col = (static_cast<std::int64_t>(k) * kLanes + lane_in_row) * kPack + i;
        if (col < cols) {
          sum += fast_exp(z[k * kPack + i] - shift);
          // Probability targets are read where they are used (scalar: they need not share the
          // logits' alignment) rather than kept beside the logits, which doubled the registers
          // (208-234 per thread, 8 resident warps per SM).
          accumulate_linear(args, info, col, z[k * kPack + i],
                            probability_or_zero(args, row, col, cols), &a, &b);
        }
      }
    }
    sum = warp_all_reduce_sum<kLanes>(sum);
    a = warp_all_reduce_sum<kLanes>(a);
    b = warp_all_reduce_sum<kLanes>(b);
    if (!active) continue;
    // Read per row, not kept from the kernel's start: with 32 logits per lane held, two more
    // values live across the whole loop were what spilled to local memory.
    const float weight_sum = kProb ? 0.0f : args.header->weight_sum;
    const float log_sum = exact_log(sum);
    const float lse = shift + log_sum;
    if (lane_in_row == 0) finish_row(args, info, row, shift, log_sum, a, b, weight_sum);
    if (args.grad == nullptr) continue;
    const bool zero = info.ignored || info.bad;
    const float g = row_gradient_scale(args);
    const float factor = gradient_factor(args, info, lse, a, weight_sum);
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const std::int64_t col = (static_cast<std::int64_t>(k) * kLanes + lane_in_row) * kPack;
      float out[kPack];
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        const float p = fast_exp((z[k * kPack + i] - shift) - log_sum);
        const float mass =
            col + i < args.cols
                ? target_mass(args, info, col + i, probability_or_zero(args, row, col + i, cols))
                : 0.0f;
        out[i] = zero ? 0.0f : g * (p * factor - mass);
      }
      store_converted<kPack>(args.grad + row * args.ld_grad, col, args.cols, out);
    }
  }
}

/// Block strategy. Grid: 1-D, grid-stride over rows, one row per block at a time; block: whole
/// warps. Dynamic shared memory: the row's logits in T, rounded up to whole packs; each thread
/// reads back only the packs it cached. Probability targets are read from global memory in both
/// passes.
template <class T, class Targets, int kPack>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1)
    cross_entropy_block_kernel(CrossEntropyArgs<T, Targets> args) {
  WF_DYNAMIC_SHARED(T, cache);
  constexpr bool kProb = Targets::kProbabilities;
  const std::int64_t packs = (args.cols + kPack - 1) / kPack;
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  const float weight_sum = kProb ? 0.0f : args.header->weight_sum;
  const float g = row_gradient_scale(args);
  for (std::int64_t row = blockIdx.x; row < args.rows; row += gridDim.x) {
    const CrossEntropyRow info = cross_entropy_row(args, row);
    const T* logits = args.logits + row * args.ld;
    float max = negative_infinity();
    for (std::int64_t p = thread; p < packs; p += threads) {
      float values[kPack];
      load_scaled<kPack>(logits, p * kPack, args.cols, 1.0f, negative_infinity(), values);
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        cache[p * kPack + i] = from_float<T>(values[i]);
        max = fmaxf(max, values[i]);
      }
    }
    max = block_all_reduce_max(max);
    const float shift = max == negative_infinity() ? 0.0f : max;
    float sum = 0.0f, a = 0.0f, b = 0.0f;
    for (std::int64_t p = thread; p < packs; p += threads) {
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        const std::int64_t col = p * kPack + i;
        if (col < args.cols) {
          const float z = to_float(cache[col]);
          sum += fast_exp(z - shift);
          accumulate_linear(args, info, col, z, probability_at(args, row, col), &a, &b);
        }
      }
    }
    sum = block_all_reduce_sum(sum);
    a = block_all_reduce_sum(a);
    b = block_all_reduce_sum(b);
    const float log_sum = exact_log(sum);
    const float lse = shift + log_sum;
    if (thread == 0) finish_row(args, info, row, shift, log_sum, a, b, weight_sum);
    if (args.grad == nullptr) continue;
    const bool zero = info.ignored || info.bad;
    const float factor = gradient_factor(args, info, lse, a, weight_sum);
    for (std::int64_t p = thread; p < packs; p += threads) {
      float out[kPack];
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        const std::int64_t col = p * kPack + i;
        const float prob = fast_exp((to_float(cache[col]) - shift) - log_sum);
        const float mass =
            col < args.cols ? target_mass(args, info, col, probability_at(args, row, col)) : 0.0f;
        out[i] = zero ? 0.0f : g * (prob * factor - mass);
      }
      store_converted<kPack>(args.grad + row * args.ld_grad, p * kPack, args.cols, out);
    }
  }
}

/// Online strategy. Grid: 1-D, grid-stride over rows, one row per block; block: whole warps; no
/// dynamic shared memory. Pass 1 reads the logits once for the online normaliser and the linear
/// sums; pass 2 (only with a gradient) reads them again and writes dlogits. Any C.
template <class T, class Targets, int kPack>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1)
    cross_entropy_online_kernel(CrossEntropyArgs<T, Targets> args) {
  constexpr bool kProb = Targets::kProbabilities;
  const std::int64_t packs = (args.cols + kPack - 1) / kPack;
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  const float weight_sum = kProb ? 0.0f : args.header->weight_sum;
  const float g = row_gradient_scale(args);
  for (std::int64_t row = blockIdx.x; row < args.rows; row += gridDim.x) {
    const CrossEntropyRow info = cross_entropy_row(args, row);
    const T* logits = args.logits + row * args.ld;
    OnlineNormalizer norm = OnlineNormalizerOp::identity<float>();
    float a = 0.0f, b = 0.0f;
    for (std::int64_t p = thread; p < packs; p += threads) {
      float values[kPack];
      load_scaled<kPack>(logits, p * kPack, args.cols, 1.0f, negative_infinity(), values);
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        const std::int64_t col = p * kPack + i;
        if (col < args.cols) {
          norm = online_normalizer_add(norm, values[i]);
          accumulate_linear(args, info, col, values[i], probability_at(args, row, col), &a, &b);
        }
      }
    }
    norm = block_all_reduce(norm, OnlineNormalizerOp{});
    a = block_all_reduce_sum(a);
    b = block_all_reduce_sum(b);
    const float shift = norm.max == negative_infinity() ? 0.0f : norm.max;
    const float log_sum = exact_log(norm.sum);
    const float lse = shift + log_sum;
    if (thread == 0) finish_row(args, info, row, shift, log_sum, a, b, weight_sum);
    if (args.grad == nullptr) continue;
    const bool zero = info.ignored || info.bad;
    const float factor = gradient_factor(args, info, lse, a, weight_sum);
    for (std::int64_t p = thread; p < packs; p += threads) {
      float values[kPack];
      load_scaled<kPack>(logits, p * kPack, args.cols, 1.0f, negative_infinity(), values);
#pragma unroll
      for (int i = 0; i < kPack; ++i) {
        const std::int64_t col = p * kPack + i;
        const float prob = fast_exp((values[i] - shift) - log_sum);
        const float mass =
            col < args.cols ? target_mass(args, info, col, probability_at(args, row, col)) : 0.0f;
        values[i] = zero ? 0.0f : g * (prob * factor - mass);
      }
      store_converted<kPack>(args.grad + row * args.ld_grad, p * kPack, args.cols, values);
    }
  }
}

}  // namespace warpfuse::detail
