// warpfuse kernels — vocabulary-parallel cross-entropy (include/warpfuse/cross_entropy_shard.h):
// the shard statistics (a row-engine policy over the shard's logits), their combination, the
// per-row finish and the shard's gradient (a row-engine policy from the combined statistics).
//
// Statistics of a row over a shard's columns (kShardStats floats, in this order):
//   max        the engine's shift: max z' over the shard (0 when every z' is -inf)
//   log_sum    log sum exp(z' - max) (-inf when every z' is -inf)
//   entropy    the entropy of the shard's own softmax (log_sum - mean_offset)
//   target     z'_t when the row's target is one of the shard's columns, else 0
//   weight_t   w_t then (1 without class weights), else 0
//   count      1 then, else 0 (combined: 1 for a valid target, 0 for a bad one)
//   linear     sum_c w_c z'_c (label smoothing only, else 0)
//   weight_sum sum_c w_c over the shard (its cols without class weights)
// Combined over shards s in order, with t_s = (max_s - M) + log_sum_s, M = max_s max_s over the
// non-empty shards: max = M, log_sum = L = T + log sum_s exp(t_s - T) (T = max_s t_s), entropy =
// sum_s exp(t_s - L) (entropy_s + L - t_s) (the mixture's entropy), the rest summed. One shard
// comes through unchanged: t = log_sum, L = log_sum + log 1.
#pragma once

#include <cstdint>

#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/row_engine.cuh"
#include "kernels/cross_entropy.cuh"
#include "kernels/loss.cuh"

namespace warpfuse::detail {

enum ShardStat : int {
  kShardMax,
  kShardLogSum,
  kShardEntropy,
  kShardTarget,
  kShardTargetWeight,
  kShardCount,
  kShardLinear,
  kShardWeightSum,
  kShardStats
};

/// What both passes over a shard read: its logits, the rows' (global) targets, its place and its
/// class weights.
template <class T, class Index>
struct ShardInput {
  const T* logits;
  std::int64_t rows;
  std::int64_t cols;  // the shard's
  std::int64_t ld;
  const Index* targets;
  long long ignore_index;
  std::int64_t vocab_begin;
  const float* weight;  // the shard's cols weights, or null
};

template <class T, class Index>
struct ShardStatsArgs : ShardInput<T, Index> {
  bool smoothing;  // whether the linear sum is formed
  LogitTransform logit;
  float* stats;  // rows x kShardStats
  std::int64_t ld_stats;
};

/// The statistics pass: a row-engine policy with no output; three sums (z'_t, the linear sum,
/// the weight sum) and the engine's moment (the entropy).
template <class T_, class Index>
struct ShardStatsPolicy : ShardStatsArgs<T_, Index> {
  using T = T_;
  static constexpr int kInputs = 1;
  static constexpr bool kNormalize = true;
  static constexpr bool kStoreUsesExp = true;
  static constexpr int kSums = 3;
  static constexpr bool kTransformsInput = true;
  static constexpr bool kMoment = true;
  struct Row {
    std::int64_t local;  // the target's column in the shard, or -1
  };
  struct Result {};

  WF_DEVICE const T* input(int, std::int64_t row) const { return this->logits + row * this->ld; }
  WF_DEVICE T* output(std::int64_t) const { return nullptr; }
  WF_DEVICE float logit_scale() const { return 1.0f; }
  template <int N>
  WF_DEVICE void transform_input(float* v) const {
    this->logit.template apply<N>(v);
  }
  WF_DEVICE bool keeps_input() const { return false; }
  WF_DEVICE bool wants_moment() const { return true; }

  template <bool kStreamed>
  WF_DEVICE Row begin_row(std::int64_t row, bool) const {
    const long long target = static_cast<long long>(this->targets[row]);
    const long long local = target - this->vocab_begin;
    const bool in_shard = target != this->ignore_index && local >= 0 && local < this->cols;
    return Row{in_shard ? local : -1};
  }
  template <bool kStreamed>
  WF_DEVICE void accumulate(const Row& r, std::int64_t col, const float* in, float* sums) const {
    const float z = in[0];
    if (col == r.local) sums[0] += z;
    const float weight = this->weight != nullptr ? this->weight[col] : 1.0f;
    if (this->smoothing && weight != 0.0f) sums[1] += weight * z;
    if (this->weight != nullptr) sums[2] += weight;
  }
  WF_DEVICE Result finish(const Row& r, std::int64_t row, const RowStats& stats, const float* sums,
                          bool leader) const {
    if (leader) {
      float* const out = this->stats + row * this->ld_stats;
      const bool in_shard = r.local >= 0;
      out[kShardMax] = stats.shift;
      out[kShardLogSum] = stats.log_sum;
      out[kShardEntropy] = stats.log_sum - stats.mean_offset;
      out[kShardTarget] = in_shard ? sums[0] : 0.0f;
      out[kShardTargetWeight] =
          in_shard ? (this->weight != nullptr ? this->weight[r.local] : 1.0f) : 0.0f;
      out[kShardCount] = in_shard ? 1.0f : 0.0f;
      out[kShardLinear] = sums[1];
      out[kShardWeightSum] = this->weight != nullptr ? sums[2] : static_cast<float>(this->cols);
    }
    return Result{};
  }
  WF_DEVICE float store_value(const Row&, const Result&, std::int64_t, const float*, float) const {
    return 0.0f;
  }
};

/// Grid: 1-D, grid-stride over rows, one thread per row. combined[row] from gathered[s rows + row]
/// for s in [0, shards), in shard order.
__global__ void __launch_bounds__(256)
    cross_entropy_shard_combine_kernel(const float* gathered, std::int64_t ld_gathered,
                                       std::int64_t rows, std::int64_t shards, float* combined,
                                       std::int64_t ld_combined) {
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       row < rows; row += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const auto part = [&](std::int64_t s) { return gathered + (s * rows + row) * ld_gathered; };
    // M over the shards that hold a finite term (a NaN log_sum counts: it must reach the row).
    float top = negative_infinity();
    bool any = false;
    for (std::int64_t s = 0; s < shards; ++s) {
      const float* p = part(s);
      if (p[kShardLogSum] == negative_infinity()) continue;
      top = any ? fmaxf(top, p[kShardMax]) : p[kShardMax];
      any = true;
    }
    const float shift = any ? top : 0.0f;
    float t_max = negative_infinity();
    for (std::int64_t s = 0; s < shards; ++s) {
      const float* p = part(s);
      if (p[kShardLogSum] == negative_infinity()) continue;
      const float t = (p[kShardMax] - shift) + p[kShardLogSum];
      t_max = t != t ? t : fmaxf(t_max, t);  // a NaN wins
    }
    float total = 0.0f;
    float sums[kShardStats] = {};
    for (std::int64_t s = 0; s < shards; ++s) {
      const float* p = part(s);
      if (p[kShardLogSum] != negative_infinity()) {
        total += exact_exp(((p[kShardMax] - shift) + p[kShardLogSum]) - t_max);
      }
#pragma unroll
      for (int k = kShardTarget; k < kShardStats; ++k) sums[k] += p[k];
    }
    const float log_sum = any ? t_max + exact_log(total) : negative_infinity();
    float entropy = 0.0f;
    for (std::int64_t s = 0; s < shards; ++s) {
      const float* p = part(s);
      if (p[kShardLogSum] == negative_infinity()) continue;
      const float t = (p[kShardMax] - shift) + p[kShardLogSum];
      entropy += exact_exp(t - log_sum) * (p[kShardEntropy] + (log_sum - t));
    }
    float* const out = combined + row * ld_combined;
    out[kShardMax] = shift;
    out[kShardLogSum] = log_sum;
    out[kShardEntropy] = any ? entropy : quiet_nan();
#pragma unroll
    for (int k = kShardTarget; k < kShardStats; ++k) out[k] = sums[k];
  }
}

template <class T, class Index>
struct ShardFinishArgs : ShardInput<T, Index> {
  std::int64_t vocab_size;
  float smoothing;
  float uniform_mass;  // smoothing / vocab_size
  float z_loss;
  float two_z_loss;        // 2 zl (a kernel parameter: hoisted out of the row loop it spilled)
  float grad_scale;        // g, unless scale_from_header
  bool scale_from_header;  // mean: g = header->gradient_scale
  LogitTransform logit;
  const float* combined;  // rows x kShardStats
  std::int64_t ld_combined;
  float* row_loss;  // rows floats: the output (none) or the workspace partials
  float* logsumexp;
  float* z_loss_term;
  float* entropy;
  T* grad;  // rows x cols or null
  std::int64_t ld_grad;
  LossHeader* header;
};

/// Whether row `row`'s target is valid across the shards (combined count 1), ignored, or bad.
template <class T, class Index>
WF_DEVICE CrossEntropyRow shard_row(const ShardFinishArgs<T, Index>& args, std::int64_t row) {
  const long long target = static_cast<long long>(args.targets[row]);
  if (target == args.ignore_index) return CrossEntropyRow{0, 0.0f, true, false};
  const float* c = args.combined + row * args.ld_combined;
  if (target < 0 || target >= args.vocab_size || c[kShardCount] != 1.0f) {
    return CrossEntropyRow{0, 0.0f, false, true};
  }
  return CrossEntropyRow{target, c[kShardTargetWeight], false, false};
}

/// The counted weight of a row for the mean's denominator (the shards' version of
/// counted_weight): w_t from the combined statistics, 0 for ignored and bad rows.
template <class T, class Index>
struct ShardCountedWeight {
  ShardFinishArgs<T, Index> args;
  WF_DEVICE float operator()(std::int64_t row) const {
    const CrossEntropyRow r = shard_row(args, row);
    return r.ignored || r.bad ? 0.0f : r.target_weight;
  }
};

/// Grid: 1-D, grid-stride over rows, one thread per row: the loss (to row_loss), lse, z-loss term
/// and entropy from the combined statistics; bad targets reported to the header.
template <class T, class Index>
__global__ void __launch_bounds__(256)
    cross_entropy_shard_rows_kernel(ShardFinishArgs<T, Index> args) {
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       row < args.rows; row += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const float* c = args.combined + row * args.ld_combined;
    const CrossEntropyRow r = shard_row(args, row);
    const float shift = c[kShardMax], log_sum = c[kShardLogSum];
    const float lse = shift + log_sum;
    float loss = 0.0f, z_term = 0.0f;
    if (r.bad) {
      loss = quiet_nan();
      z_term = quiet_nan();
      loss_report_bad_row(args.header, row);
    } else if (!r.ignored) {
      loss = cross_entropy_index_row_loss(args.smoothing, args.uniform_mass, args.z_loss, r, shift,
                                          log_sum, c[kShardTarget], c[kShardLinear],
                                          c[kShardWeightSum]);
      z_term = args.z_loss * lse * lse;
    }
    args.row_loss[row] = loss;
    if (args.logsumexp != nullptr) args.logsumexp[row] = lse;
    if (args.z_loss_term != nullptr) args.z_loss_term[row] = z_term;
    if (args.entropy != nullptr) args.entropy[row] = c[kShardEntropy];
  }
}

/// The shard's gradient from the combined statistics: a row-engine policy that normalises nothing
/// (the row's lse is known), no sums; dz_c = (g F p_c - g w_c q'_c) dz'/dz with p_c = exp(z'_c -
/// lse) and F = sum_k w_k q'_k + 2 zl lse, as cross_entropy's.
template <class T_, class Index>
struct ShardGradPolicy : ShardFinishArgs<T_, Index> {
  using T = T_;
  using Args = ShardFinishArgs<T_, Index>;
  static constexpr int kInputs = 1;
  static constexpr bool kNormalize = false;
  static constexpr bool kStoreUsesExp = false;
  static constexpr int kSums = 0;
  static constexpr bool kTransformsInput = true;
  struct Row {
    std::int64_t local;  // the target's column in the shard, or -1
    float lse_log2;      // lse log2(e)
    float g_factor;      // g F
    float g_target;      // g w_t (1 - e + e / V): the target column's mass term
    float g_uniform;     // g e / V: every column's (times w_c)
    bool zero;           // ignored and bad rows
  };
  struct Result {};

  WF_DEVICE const T* input(int, std::int64_t row) const { return this->logits + row * this->ld; }
  WF_DEVICE T* output(std::int64_t row) const { return this->grad + row * this->ld_grad; }
  WF_DEVICE float logit_scale() const { return 1.0f; }
  template <int N>
  WF_DEVICE void transform_input(float* v) const {
    this->logit.template apply<N>(v);
  }
  WF_DEVICE bool keeps_input() const { return true; }

  template <bool kStreamed>
  WF_DEVICE Row begin_row(std::int64_t row, bool) const {
    const Args& args = *this;
    const CrossEntropyRow r = shard_row(args, row);
    const float* c = args.combined + row * args.ld_combined;
    const float lse = c[kShardMax] + c[kShardLogSum];
    const float g = args.scale_from_header ? args.header->gradient_scale : args.grad_scale;
    const float mass =
        (1.0f - args.smoothing) * r.target_weight + args.uniform_mass * c[kShardWeightSum];
    const long long local = r.target - args.vocab_begin;
    return Row{!r.ignored && !r.bad && local >= 0 && local < args.cols ? local : -1,
               lse * kLog2e,
               g * fmaf(args.two_z_loss, lse, mass),
               g * r.target_weight * ((1.0f - args.smoothing) + args.uniform_mass),
               g * args.uniform_mass,
               r.ignored || r.bad};
  }
  template <bool kStreamed>
  WF_DEVICE void accumulate(const Row&, std::int64_t, const float*, float*) const {}
  WF_DEVICE Result finish(const Row&, std::int64_t, const RowStats&, const float*, bool) const {
    return Result{};
  }
  WF_DEVICE float store_value(const Row& r, const Result&, std::int64_t col, const float* in,
                              float) const {
    if (r.zero) return 0.0f;
    const float z = in[0];
    const float p = ex2_approx_ftz(fmaf(z, kLog2e, -r.lse_log2));
    // g w_c q'_c: the target column's from the row, the others' only with smoothing.
    float g_mass = 0.0f;
    if (col == r.local) {
      g_mass = r.g_target;
    } else if (r.g_uniform != 0.0f) {
      g_mass = r.g_uniform * (this->weight != nullptr ? this->weight[col] : 1.0f);
    }
    const float grad = r.g_factor * p - g_mass;
    return this->logit.active ? grad * this->logit.slope(z) : grad;
  }
};

}  // namespace warpfuse::detail
