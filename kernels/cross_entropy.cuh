// warpfuse kernels — cross-entropy from logits fused with softmax and its gradient (the math and
// semantics are documented in include/warpfuse/cross_entropy.h).
//
// The op is a policy of the row engine (kernels/common/row_engine.cuh: the traversals, vector
// access for any alignment and the strategies). Per row it reduces, in one pass over the logits,
//   max and Z = sum exp(z - max)     (lse = max + log Z; formed by the engine)
//   a = sum_c a_c, b = sum_c b_c     index targets: a = z_t, b = sum_c w_c z_c (smoothing only)
//                                    probability targets: a = sum_c w_c q'_c, b = sum_c w_c q'_c
//                                    z_c
// then writes the row's loss, its lse, and (optionally) the gradient
//   dz_c = g (p_c A - B_c),   A = row factor (see gradient_factor), B_c = w_c q'_c.
// Probability targets are the engine's second input (read once, by 128-bit accesses when they
// share the logits' address phase). The target logit z_t: in the warp and block strategies it is
// picked up by comparing columns while the row is in registers or shared memory; in the online
// strategy the row's leader reads it once, before the row's first barrier (so an in-place
// gradient store cannot overtake it). In-place dlogits == logits is safe in every strategy.
//
// Logit softcapping and scale (CrossEntropyArgs::logit, a LogitTransform): the engine hands the
// policy
// z' = cap tanh(s z / cap) (cap > 0) or s z as input 0 (transform_input, applied once per load;
// the storage-type caches keep the loaded bits), so every sum, the lse and the softmax are of z';
// the gradient is the one of z' times dz'/dz = s (1 - (z' / cap)^2) (or s), which store_value
// forms from z' (the fp32 exponential cache keeps z' for it when cap > 0).
//
// Extra per-row outputs, each optional: the z-loss term zl lse^2, whether the target is the
// row's argmax (index targets: no column beats it, where c beats t when z'_c > z'_t, or
// z'_c == z'_t and c < t: the first maximum, as torch.argmax; every thread of the row then reads
// z'_t in begin_row and counts the columns that beat it in sum a, which then needs no target
// column), and the entropy of the row's softmax, log_sum - mean_offset (the engine's moment).
//
// A row whose target is ignore_index gets loss 0 and a zero gradient; a target outside [0, C)
// gets loss NaN and a zero gradient, and is reported once (by the row's leader) through the
// workspace header with integer atomics.
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/common/row_engine.cuh"
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

/// Logit softcap and scale: z' = cap tanh(s z / cap) (cap > 0) or s z; inactive when cap = 0 and
/// s = 1. The divisions are done once, on the host (logit_transform_of).
struct LogitTransform {
  bool active;
  float softcap;      // cap (> 0), or 0
  float scale;        // s
  float softcap_arg;  // s / cap (cap > 0): z' = cap tanh(softcap_arg z)
  float inv_softcap;  // 1 / cap (cap > 0), for dz'/dz = s (1 - (z' / cap)^2)

  /// z' of one raw logit (active).
  WF_DEVICE float operator()(float z) const {
    return softcap > 0.0f ? softcap * exact_tanh(z * softcap_arg) : z * scale;
  }
  /// N raw logits to z' in place (nothing when inactive).
  template <int N>
  WF_DEVICE void apply(float* v) const {
    if (!active) return;
#pragma unroll
    for (int i = 0; i < N; ++i) v[i] = (*this)(v[i]);
  }
  /// dz'/dz at z' (active).
  WF_DEVICE float slope(float transformed) const {
    if (softcap > 0.0f) {
      const float t = transformed * inv_softcap;
      return scale * fmaf(-t, t, 1.0f);
    }
    return scale;
  }
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
  LogitTransform logit;    // softcap and scale
  bool scale_from_header;  // index targets, mean: g = header->gradient_scale (the prepare kernel's)
  float* row_loss;         // rows floats: the output (none) or the workspace partials
  float* logsumexp;        // rows floats or null
  T* grad;                 // rows x C or null
  std::int64_t ld_grad;
  LossHeader* header;
  float* z_loss_term;      // rows floats or null: zl lse^2
  float* correct;          // rows floats or null (index targets): 1 when the target is the argmax
  float* entropy;          // rows floats or null: the entropy of the row's softmax
  std::int64_t first_row;  // the status's row number of row 0 (a chunk of a larger batch)
};

/// What a row's target says before its logits are read.
struct CrossEntropyRow {
  std::int64_t target;  // the class (index targets)
  float target_weight;  // w_t (index targets), filled in by with_target_weight
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
    return CrossEntropyRow{target, 0.0f, false, false};
  }
}

/// The row with w_t read: after the row's pass (a weight held through the traversal's loops
/// costs a register the 1024-thread online kernel does not have).
template <class T, class Targets>
WF_DEVICE CrossEntropyRow with_target_weight(const CrossEntropyArgs<T, Targets>& args,
                                             CrossEntropyRow row) {
  if constexpr (!Targets::kProbabilities) {
    if (!row.ignored && !row.bad) {
      row.target_weight = args.weight != nullptr ? args.weight[row.target] : 1.0f;
    }
  }
  return row;
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

/// The row's loss from lse = shift + log_sum and its linear sums; W is the sum of the class
/// weights. The target term is formed as (shift - z_t) + log_sum, exact when z_t is the row
/// maximum, instead of lse - z_t, which loses everything to rounding when |z| is large.
/// The index-target form of it, also the shards' (kernels/cross_entropy_shard.cuh): a = z'_t,
/// b = sum_c w_c z'_c.
WF_DEVICE float cross_entropy_index_row_loss(float smoothing, float uniform_mass, float z_loss,
                                             const CrossEntropyRow& row, float shift, float log_sum,
                                             float a, float b, float weight_sum) {
  const float lse = shift + log_sum;
  float loss = (1.0f - smoothing) * row.target_weight * ((shift - a) + log_sum);
  if (smoothing > 0.0f) loss += uniform_mass * (weight_sum * lse - b);
  return loss + z_loss * lse * lse;
}

template <class T, class Targets>
WF_DEVICE float row_loss_value(const CrossEntropyArgs<T, Targets>& args, const CrossEntropyRow& row,
                               float shift, float log_sum, float a, float b, float weight_sum) {
  if constexpr (Targets::kProbabilities) {
    const float lse = shift + log_sum;
    return (a * lse - b) + args.z_loss * lse * lse;
  } else {
    return cross_entropy_index_row_loss(args.smoothing, args.uniform_mass, args.z_loss, row, shift,
                                        log_sum, a, b, weight_sum);
  }
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

/// Writes the row's loss, lse and extra outputs (called by one thread per row) and reports a bad
/// target. `beaten`: the count of columns that beat the target (correct only).
template <class T, class Targets>
WF_DEVICE void finish_row(const CrossEntropyArgs<T, Targets>& args, const CrossEntropyRow& row,
                          std::int64_t index, const RowStats& stats, float a, float b,
                          float weight_sum, float beaten) {
  const float shift = stats.shift, log_sum = stats.log_sum;
  float loss = 0.0f;
  float z_term = 0.0f;
  const float lse = shift + log_sum;
  if (row.bad) {
    loss = quiet_nan();
    z_term = quiet_nan();
    loss_report_bad_row(args.header, args.first_row + index);
  } else if (!row.ignored) {
    loss = row_loss_value(args, row, shift, log_sum, a, b, weight_sum);
    z_term = args.z_loss * lse * lse;
  }
  args.row_loss[index] = loss;
  if (args.logsumexp != nullptr) args.logsumexp[index] = lse;
  if (args.z_loss_term != nullptr) args.z_loss_term[index] = z_term;
  if (args.correct != nullptr) {
    args.correct[index] = !row.bad && !row.ignored && beaten == 0.0f ? 1.0f : 0.0f;
  }
  if (args.entropy != nullptr) args.entropy[index] = log_sum - stats.mean_offset;
}

/// w_t of row `r` when it counts toward the mean's denominator (neither ignored nor bad), else 0:
/// the Counted of the denominator kernels for class-index targets (the shards have their own).
template <class Index>
struct IndexCountedWeight {
  const Index* targets;
  std::int64_t cols;
  long long ignore_index;
  const float* weight;
  WF_DEVICE float operator()(std::int64_t r) const {
    const long long target = static_cast<long long>(targets[r]);
    if (target == ignore_index || target < 0 || target >= cols) return 0.0f;
    return weight != nullptr ? weight[target] : 1.0f;
  }
};

/// First stage of the denominator for many rows (reduce_blocks(rows) > 1): block b writes the sum
/// of counted(r) over its chunk of rows (reduce_chunk(rows), kernels/loss.cuh) to
/// block_denominators[b]. Launch: reduce_blocks(rows) blocks of kLossReduceThreads threads.
template <class Counted>
__global__ void __launch_bounds__(kLossReduceThreads)
    cross_entropy_denominator_kernel(Counted counted, std::int64_t rows,
                                     float* block_denominators) {
  const std::int64_t chunk = reduce_chunk(rows);
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * chunk;
  const std::int64_t end = begin + chunk < rows ? begin + chunk : rows;
  float denominator = 0.0f;
  for (std::int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) denominator += counted(r);
  denominator = block_all_reduce_sum(denominator);
  if (threadIdx.x == 0) block_denominators[blockIdx.x] = denominator;
}

/// One block over the targets, before the main kernel (index targets): W = sum_c w_c over `cols`
/// classes and the mean's denominator, the sum of counted(r) (w_t over rows neither ignored nor
/// bad): directly over the rows, or (block_denominators not null) over the first stage's
/// reduce_blocks(rows) block sums. Both with fixed-order block reductions. Launch: one block of
/// kLossReduceThreads threads.
template <class Counted>
__global__ void __launch_bounds__(kLossReduceThreads)
    cross_entropy_prepare_kernel(Counted counted, std::int64_t rows, std::int64_t cols,
                                 const float* weight, float grad_scale,
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
    for (std::int64_t r = threadIdx.x; r < rows; r += blockDim.x) denominator += counted(r);
  }
  denominator = block_all_reduce_sum(denominator);
  if (threadIdx.x == 0) {
    header->weight_sum = weight_sum;
    header->denominator = denominator;
    header->gradient_scale = denominator == 0.0f ? 0.0f : grad_scale / denominator;
  }
}

/// The row-engine policy: one or two inputs (logits; probability targets), the gradient as the
/// output (or none), two per-row sums (a, b above; with `correct`, a counts the columns beating
/// the target instead).
template <class T_, class Targets>
struct CrossEntropyPolicy : CrossEntropyArgs<T_, Targets> {
  using T = T_;
  using Args = CrossEntropyArgs<T_, Targets>;
  static constexpr bool kProb = Targets::kProbabilities;
  static constexpr int kInputs = kProb ? 2 : 1;
  static constexpr bool kNormalize = true;
  static constexpr bool kStoreUsesExp = true;
  static constexpr int kSums = 2;
  static constexpr bool kTransformsInput = true;
  static constexpr bool kMoment = true;
  struct Row {
    CrossEntropyRow target;
    float target_logit;  // z'_t, read by the leader (online strategy) or by every thread (correct),
                         // else from the sums
    bool has_target_logit;
    float weight_sum;  // W (index targets; warp and block strategies), see begin_row
    bool weight_sum_read;
  };
  struct Result {
    float inv_sum;
    float g;       // the gradient's scale
    float factor;  // gradient_factor
    bool zero;     // ignored and bad rows get a zero gradient
  };

  WF_DEVICE const T* input(int i, std::int64_t row) const {
    if constexpr (kProb) {
      if (i == 1) return this->targets.probabilities + row * this->targets.ld;
    }
    return this->logits + row * this->ld;
  }
  WF_DEVICE T* output(std::int64_t row) const {
    return this->grad == nullptr ? nullptr : this->grad + row * this->ld_grad;
  }
  WF_DEVICE float logit_scale() const { return 1.0f; }
  template <int N>
  WF_DEVICE void transform_input(float* v) const {
    this->logit.template apply<N>(v);
  }
  WF_DEVICE bool keeps_input() const { return this->logit.active && this->logit.softcap > 0.0f; }
  WF_DEVICE bool wants_moment() const { return this->entropy != nullptr; }

  template <bool kStreamed>
  WF_DEVICE Row begin_row(std::int64_t row, bool leader) const {
    // The warp and block strategies read W here (a float held through the pass beats a pointer
    // held, which spilled in the warp kernels); the online one in finish (a float held through
    // its register blocks spilled there, under the 64 registers of 1024 threads).
    Row r{cross_entropy_row(static_cast<const Args&>(*this), row), 0.0f, false,
          kProb || kStreamed ? 0.0f : this->header->weight_sum, !kProb && !kStreamed};
    if constexpr (!kProb) {
      if (((kStreamed && leader) || this->correct != nullptr) && !r.target.ignored &&
          !r.target.bad) {
        float z = to_float(this->logits[row * this->ld + r.target.target]);
        transform_input<1>(&z);
        r.target_logit = z;
        r.has_target_logit = true;
      }
    }
    return r;
  }

  template <bool kStreamed>
  WF_DEVICE void accumulate(const Row& r, std::int64_t col, const float* in, float* sums) const {
    const float z = in[0];
    if constexpr (kProb) {
      const float mass = target_mass(static_cast<const Args&>(*this), r.target, col, in[1]);
      sums[0] += mass;
      if (mass != 0.0f) sums[1] += mass * z;  // a class with no mass adds nothing, even at -inf
    } else {
      if (this->correct != nullptr) {
        // Every thread holds z'_t (begin_row): sum a counts the columns that beat the target.
        const float zt = r.target_logit;
        sums[0] += z > zt || (z == zt && col < r.target.target) ? 1.0f : 0.0f;
      } else if constexpr (!kStreamed) {
        if (col == r.target.target) sums[0] += z;
      }
      if (this->smoothing > 0.0f) {
        const float weight = this->weight != nullptr ? this->weight[col] : 1.0f;
        if (weight != 0.0f) sums[1] += weight * z;
      }
    }
  }

  WF_DEVICE Result finish(const Row& r, std::int64_t row, const RowStats& stats, const float* sums,
                          bool leader) const {
    const Args& args = *this;
    const float weight_sum =
        kProb ? 0.0f : (r.weight_sum_read ? r.weight_sum : args.header->weight_sum);
    const float a = r.has_target_logit ? r.target_logit : sums[0];
    const CrossEntropyRow target = with_target_weight(args, r.target);
    if (leader) {
      const bool counted = !kProb && args.correct != nullptr;
      finish_row(args, target, row, stats, a, sums[1], weight_sum, counted ? sums[0] : 0.0f);
    }
    const bool zero = target.ignored || target.bad;
    const float lse = stats.shift + stats.log_sum;
    return Result{stats.inv_sum, row_gradient_scale(args),
                  gradient_factor(args, target, lse, a, weight_sum), zero};
  }

  WF_DEVICE float store_value(const Row& r, const Result& res, std::int64_t col, const float* in,
                              float e) const {
    if (res.zero) return 0.0f;
    const float mass =
        target_mass(static_cast<const Args&>(*this), r.target, col, kProb ? in[1] : 0.0f);
    const float grad = res.g * (e * res.inv_sum * res.factor - mass);
    return this->logit.active ? grad * this->logit.slope(in[0]) : grad;
  }
};

}  // namespace warpfuse::detail
