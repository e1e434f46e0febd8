// warpfuse kernels — the row engine: the one traversal of every row-wise op (softmax, log-softmax,
// their backwards, cross-entropy), written once and parameterised by an op policy.
//
// A policy (kernels/softmax.cuh, kernels/cross_entropy.cuh) says what a row is and what is done
// with it; the engine says how the row reaches registers and how its reductions run.
//
//   struct Policy {
//     using T = storage type;                 // float, __half or __nv_bfloat16
//     static constexpr int kInputs;           // row arrays read per element: 1 or 2
//     static constexpr bool kNormalize;       // the engine forms the row's max and denominator of
//                                             // softmax(logit_scale() * in[0]) (RowStats)
//     static constexpr bool kStoreUsesExp;    // store_value reads e, not in[0] (so the block
//                                             // strategy may cache e in fp32 in place of in[0])
//     static constexpr int kSums;             // per-row fp32 sums the policy accumulates (>= 0)
//     struct Row; struct Result;              // per-row state: before the pass, after the sums
//     std::int64_t rows, cols;
//     const T* input(int i, std::int64_t row) const;  T* output(std::int64_t row) const (or null)
//     float logit_scale() const;
//     template <bool kStreamed> Row begin_row(std::int64_t row, bool leader) const;
//     template <bool kStreamed> void accumulate(const Row&, std::int64_t col, const float* in,
//                                               float* sums) const;
//     Result finish(const Row&, std::int64_t row, const RowStats&, const float* sums,
//                   bool leader) const;          // every thread of the row; the leader writes
//     float store_value(const Row&, const Result&, std::int64_t col, const float* in,
//                       float e) const;          // the output element (e = exp(s x - shift))
//   };
//
// Optional members (detected; absent means off):
//     static constexpr bool kTransformsInput;  // input 0 is transformed as it is loaded:
//     template <int N> void transform_input(float* v) const;  // v[0..N) in place (monotonic or
//                                             // not; every traversal applies it exactly once per
//                                             // load, and caches raw values as raw)
//     bool keeps_input() const;               // store_value reads the transformed in[0] too (the
//                                             // fp32 exponential cache then keeps it and the
//                                             // store recomputes e)
//     static constexpr bool kMoment;          // the engine also forms RowStats::mean_offset, the
//     bool wants_moment() const;              // softmax mean of s (x - max) (for an entropy), when
//                                             // the policy asks for it at run time (the online
//                                             // traversal then reads the row once more)
//
// Stream policies (kStream = true: the elementwise losses) have outputs that do not wait for a
// row reduction, so the engine moves each element once: a policy reads kInputs arrays, writes the
// T output (output(row), or null) and fp32 values (values(row), or null), and may reduce the row:
//   WF_DEVICE float element(std::int64_t col, const float* in, float* out) const;  // the value
//   bool reduces() const;  void finish_row(std::int64_t row, float sum) const;     // (leader)
//
// kStreamed is true in the online traversal, where a policy may read a single element of the row
// directly in begin_row (before the first barrier, so an in-place store cannot race it) instead
// of comparing every column against it.
//
// Vector access for any alignment. Each row of input 0 is split at its own address into a scalar
// head (up to the first 16-byte boundary), a body of 16-byte packs and a scalar tail
// (split_for_packs); the head and tail, at most 2 (P - 1) elements, are the row's "edges", one per
// thread of the row's team. Another array of the row (input 1, the output) moves the body by
// 128-bit accesses when it has the same address phase modulo 16 as input 0 (same ld and base
// phase: in place, separate contiguous buffers, views of one allocation), element by element
// otherwise. So an odd ld, an unaligned view or cols = 50257 keep the vector path.
//
// Exponentials (kNormalize). With scale2 = s log2(e), m = max_k x_k and c = fl(m scale2), every
// element's exponential is e_k = 2^fma(x_k, scale2, -c): one FMA and one MUFU.EX2 (ex2.approx.ftz),
// no range reduction or subnormal fix-up (Exp2Row, Exp2Fma). The rounding of c is the same for
// every element of the row, a common factor 2^r (r = m scale2 - c, recovered exactly by a second
// FMA) that cancels in e_k / Z and is removed from log Z: log_sum = log(sum_k e_k) - r ln 2. The
// online strategy keeps its running denominator exact (each register block's sum times 2^-r).
// Against the exact path (expf of the rounded s x_k - m), each e_k differs by at most 2^-22
// (ex2.approx) plus |s (x_k - m)| 2^-24 relative (the FMA's one rounding, as the exact path's
// subtraction), and terms below 2^-126 of the row's largest are flushed to 0 (they change Z by
// < cols 2^-126, relative). Rows with |s m| > 7e8 (|c| >= 2^30, where 2^r could overflow) use a
// power of two within a factor 2 of scale2 instead, which makes c exact: there every element but
// the maximum has a true term < 2^-64 and a computed one < 2^-32, zero to within every tolerance.
// All of this is far inside every dtype's test tolerance (tests/test_util.h).
//
// Strategies (chosen in host/cuda/rows.h, row_plan):
//   warp    row_warp_kernel<Policy, kLanes, kChunks>: a team of kLanes lanes (1..32) per row,
//           32 / kLanes rows per warp, kChunks packs per lane plus its edge slots, the whole row in
//           registers; every load of the row is issued before any value is used. Reductions are
//           xor butterflies over the team (several sums per round). Rows up to kRowWarpMaxCols
//           (<warpfuse/row_strategy.h>).
//   block   row_block_kernel<Policy, kExpCache>: one block per row, the row cached in dynamic
//           shared memory by 16-byte accesses, each thread re-reading only the packs it wrote (no
//           barrier for the cache, no bank conflicts: a warp's 16-byte accesses are contiguous).
//           kExpCache: input 0 is cached in fp32, then overwritten by its exponentials, so each is
//           computed once (fp32 planes of float4: plane j holds elements 4j..4j+3 of every pack).
//   online  row_online_kernel<Policy>: one block per row, no cache; pass 1 takes the maximum over
//           a register block of kOnlineBlockPacks packs per input, rescales the running sum once
//           per block and adds one exponential per element; pass 2 re-reads and stores. Any length.
//   cluster row_cluster_kernel<Policy, kExpCache>: one thread-block cluster (2..16 blocks) per
//           row, each block caching its slice as the block strategy does; the blocks' partial
//           maximum and sums are exchanged through distributed shared memory (see the kernel).
//   stream  row_stream_warp_kernel<Policy, kLanes> (a team of kLanes lanes per row, 32 / kLanes
//           rows per warp) and row_stream_block_kernel<Policy> (a block per row): one pass, each
//           member loading a register block of kStreamBlockPacks packs per input before using
//           any, storing its outputs at once (the fp32 values by 16-byte stores too), the row's
//           sum reduced at the end. Any length; nothing is cached.
// In place (output == an input) is safe in all of them: every element is stored by the thread that
// loaded it, after its loads.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/math.cuh"
#include "kernels/common/pack.cuh"
#include "kernels/common/reduce.cuh"

namespace warpfuse::detail {

/// Threads per block of the warp-per-row kernels: 4 warps.
constexpr int kWarpRowBlockThreads = 128;
/// Most threads per block of the block-per-row kernels (their __launch_bounds__); the launcher
/// picks 128..1024 per row length (host/cuda/rows.h, row_block_threads).
constexpr int kRowBlockMaxThreads = 1024;

/// The first row of this thread's warp and the stride between its rows, for kernels with
/// kRowsPerWarp rows per warp. Every lane of a warp iterates the same rows, so the warp's
/// shuffles always have all 32 lanes (a team past the last row joins with identities).
template <int kRowsPerWarp>
WF_DEVICE void warp_rows(std::int64_t* first, std::int64_t* stride) {
  const std::int64_t warps_per_block = threads_per_block() / kWarpSize;
  *first = (static_cast<std::int64_t>(blockIdx.x) * warps_per_block + warp_index()) * kRowsPerWarp;
  *stride = static_cast<std::int64_t>(gridDim.x) * warps_per_block * kRowsPerWarp;
}

/// Elements per 16-byte pack of the row arrays.
template <class T>
constexpr int kRowPack = kPackElements<T>;

/// Packs per input and thread in one register block of the online traversal: 4, or fewer so that
/// a block holds at most 32 values (two 16-bit inputs: 2), which keeps the 1024-thread kernel in
/// its 64 registers.
template <int kInputs, int P>
constexpr int kOnlineBlockPacks = 32 / (kInputs * P) >= 4 ? 4 : 32 / (kInputs * P);

/// The row's softmax normaliser (kNormalize policies), in logit units (s x).
struct RowStats {
  float shift;        // s * max (0 for an all -inf row)
  float sum;          // sum_k e_k (0 for an all -inf row; NaN with a NaN or +inf element)
  float log_sum;      // log of the exact denominator sum_k exp(s x_k - shift)
  float inv_sum;      // 1 / sum: e_k * inv_sum is the softmax
  float mean_offset;  // sum_k p_k s (x_k - max), kMoment policies that want it (else 0): the
                      // softmax's entropy is log_sum - mean_offset
};

/// Whether Policy transforms input 0 on load (kTransformsInput), and whether it may ask for the
/// moment (kMoment): optional policy members, off when absent.
template <class Policy, class = void>
struct PolicyTransformsInput : std::false_type {};
template <class Policy>
struct PolicyTransformsInput<Policy, std::void_t<decltype(Policy::kTransformsInput)>>
    : std::bool_constant<Policy::kTransformsInput> {};
template <class Policy, class = void>
struct PolicyMoment : std::false_type {};
template <class Policy>
struct PolicyMoment<Policy, std::void_t<decltype(Policy::kMoment)>>
    : std::bool_constant<Policy::kMoment> {};

/// Slots of the per-row sums array of the warp and cached traversals: [0] the exponentials' sum,
/// [1, kSums] the policy's, then the moment (kMoment policies).
template <class Policy>
constexpr int kEngineSums = Policy::kSums + 1 + (PolicyMoment<Policy>::value ? 1 : 0);

/// Transforms N freshly loaded values of input 0 (policies with kTransformsInput).
template <class Policy, int N>
WF_DEVICE void transform_loaded(const Policy& policy, float* v) {
  if constexpr (PolicyTransformsInput<Policy>::value) policy.template transform_input<N>(v);
}
/// Whether the store reads the transformed input 0 (so the fp32 exponential cache keeps it).
template <class Policy>
WF_DEVICE bool store_keeps_input(const Policy& policy) {
  if constexpr (PolicyTransformsInput<Policy>::value) {
    return policy.keeps_input();
  } else {
    return false;
  }
}
/// Whether the moment is formed for this launch.
template <class Policy>
WF_DEVICE bool moment_wanted(const Policy& policy) {
  if constexpr (PolicyMoment<Policy>::value) {
    return policy.wants_moment();
  } else {
    return false;
  }
}

/// 2^(x a - c) by one FMA and one MUFU.EX2: the exponentials of a row (Exp2Row).
struct Exp2Fma {
  float a;
  float c;
  WF_DEVICE float operator()(float x) const { return ex2_approx_ftz(fmaf(x, a, -c)); }
};

/// The exponent constants of a row (or a register block) whose maximum raw value is `max`: its
/// elements' exponentials are Exp2Fma{a, c}(x) = 2^r 2^((x - max) a) (see the file's header).
struct Exp2Row {
  float a;      // the exponent's scale: s log2(e), or a power of two near it (huge rows)
  float c;      // fl(max a), 0 for an all -inf row
  float r;      // max a - c exactly: every exponential carries the factor 2^r
  float shift;  // s * max, 0 for an all -inf row

  WF_DEVICE static Exp2Row from(float max, float scale) {
    const float scale2 = scale * kLog2e;
    if (max == negative_infinity()) return Exp2Row{scale2, 0.0f, 0.0f, 0.0f};
    const float c = max * scale2;
    if (fabsf(c) < 1073741824.0f) return Exp2Row{scale2, c, fmaf(max, scale2, -c), scale * max};
    // |max scale2| >= 2^30 (or +inf): 2^r could overflow. A power of two a in (scale2 / 2,
    // scale2] makes max * a exact (r = 0); every element other than max itself is then at least
    // 2^-24 |max| away, so its true term is < 2^-64 and its term here < 2^-32: zero to within every
    // tolerance. max = +inf gives inf - inf: the row is NaN, as it should be.
    const float pow2 = __int_as_float(__float_as_int(scale2) & 0x7f800000);
    return Exp2Row{pow2, max * pow2, 0.0f, scale * max};
  }
  WF_DEVICE Exp2Fma functor() const { return Exp2Fma{a, c}; }
  WF_DEVICE float exp(float x) const { return functor()(x); }
  /// Calls f with the row's exponential functor.
  template <class F>
  WF_DEVICE void visit(F&& f) const {
    f(functor());
  }
  /// The exponent of exp(x), in log2 units: (x - max) a + r.
  WF_DEVICE float exponent(float x) const { return fmaf(x, a, -c); }
  /// e d for the exponential e = 2^d of x (d = exponent(x)): one term of the moment, 0 where e
  /// is 0 (so an element at -inf adds nothing rather than 0 x -inf; a NaN stays NaN).
  WF_DEVICE float moment_term(float x) const {
    const float d = exponent(x);
    return ex2_approx_ftz(d) * fmaxf(d, -256.0f);  // below -150, 2^d is 0: 0 x -256, not 0 x -inf
  }
  /// The stats from the sum of this row's exponentials (which carry 2^r), and (kMoment) the sum
  /// of their moment terms: mean_offset = ln 2 (moment / sum - r).
  WF_DEVICE RowStats stats(float sum, float moment = 0.0f) const {
    const float inv = fast_div(1.0f, sum);
    return RowStats{shift, sum, exact_log(sum) - r * kLn2, inv, (moment * inv - r) * kLn2};
  }
  /// The stats from the exact denominator sum_k 2^((x_k - max) a) (the online strategy's), for
  /// exponentials formed by exp() (which carry 2^r); `moment` is the exact moment
  /// sum_k 2^((x_k - max) a) (x_k - max) a.
  WF_DEVICE RowStats stats_exact(float sum, float moment = 0.0f) const {
    return RowStats{shift, sum, exact_log(sum), fast_div(ex2_approx_ftz(-r), sum),
                    fast_div(moment, sum) * kLn2};
  }
};

/// The exponential of a policy that has none (or whose store does not use it).
struct NoExp {
  WF_DEVICE float operator()(float) const { return 0.0f; }
};

/// Calls f with the exponential functor the policy's store needs (NoExp when it needs none).
template <class Policy, class F>
WF_DEVICE void visit_store_exp(const Exp2Row& ex, F&& f) {
  if constexpr (Policy::kNormalize && Policy::kStoreUsesExp) {
    ex.visit(f);
  } else {
    f(NoExp{});
  }
}

/// A row of one array split for vector access (split_for_packs at input 0's row start).
template <int P>
struct RowSplit {
  int head;  // < P, or cols < P when the row is not even element-aligned
  int tail;  // < P
  std::int64_t packs;

  template <class T>
  WF_DEVICE static RowSplit of(const T* row, std::int64_t cols) {
    const PackSplit split = split_for_packs<P>(row, cols);
    return RowSplit{static_cast<int>(split.head), static_cast<int>(split.tail), split.packs};
  }
  WF_DEVICE int edges() const { return head + tail; }
  /// The column of edge element e (0 <= e < edges()).
  WF_DEVICE std::int64_t edge_col(std::int64_t e) const {
    return e < head ? e : head + packs * P + (e - head);
  }
  WF_DEVICE std::int64_t pack_col(std::int64_t q) const { return head + q * P; }
};

/// Whether `other` can move the body of a row split at `base` by 16-byte accesses.
template <class T>
WF_DEVICE bool same_phase(const T* base, const T* other) {
  return (reinterpret_cast<std::uintptr_t>(other) - reinterpret_cast<std::uintptr_t>(base)) % 16 ==
         0;
}

/// P elements at ptr as fp32: one 16-byte load when `vector`, else element by element.
template <int P, class T>
WF_DEVICE void load_body(const T* ptr, bool vector, float* dst) {
  if (vector) {
    const Pack<T, P> pack = load_pack<P>(ptr);
#pragma unroll
    for (int i = 0; i < P; ++i) dst[i] = to_float(pack.elem[i]);
  } else {
#pragma unroll
    for (int i = 0; i < P; ++i) dst[i] = to_float(ptr[i]);
  }
}

/// P fp32 values stored to ptr as T: one 16-byte store when `vector`, else element by element.
template <int P, class T>
WF_DEVICE void store_body(T* ptr, bool vector, const float* src) {
  if (vector) {
    Pack<T, P> pack;
#pragma unroll
    for (int i = 0; i < P; ++i) pack.elem[i] = from_float<T>(src[i]);
    store_pack<P>(ptr, pack);
  } else {
#pragma unroll
    for (int i = 0; i < P; ++i) ptr[i] = from_float<T>(src[i]);
  }
}

/// The row's arrays and their access modes, for one row.
template <class Policy>
struct RowArrays {
  using T = typename Policy::T;
  static constexpr int kIn = Policy::kInputs;
  static constexpr int P = kRowPack<T>;
  const T* in[kIn];
  bool in_vector[kIn];
  T* out;
  bool out_vector;
  RowSplit<P> split;

  WF_DEVICE static RowArrays of(const Policy& policy, std::int64_t row, std::int64_t cols) {
    RowArrays a;
#pragma unroll
    for (int j = 0; j < kIn; ++j) a.in[j] = policy.input(j, row);
    a.split = RowSplit<P>::of(a.in[0], cols);
#pragma unroll
    for (int j = 0; j < kIn; ++j) a.in_vector[j] = same_phase(a.in[0], a.in[j]);
    a.out = policy.output(row);
    a.out_vector = a.out != nullptr && same_phase(a.in[0], static_cast<const T*>(a.out));
    return a;
  }
  /// Loads pack q of every input into v[j * P + i].
  WF_DEVICE void load_pack_of(std::int64_t q, float* v) const {
    const std::int64_t col = split.pack_col(q);
#pragma unroll
    for (int j = 0; j < kIn; ++j) load_body<P>(in[j] + col, in_vector[j], v + j * P);
  }
  /// Loads edge element e of every input into v[j].
  WF_DEVICE void load_edge(std::int64_t e, float* v) const {
    const std::int64_t col = split.edge_col(e);
#pragma unroll
    for (int j = 0; j < kIn; ++j) v[j] = to_float(in[j][col]);
  }
};

/// The inputs of element i of a pack loaded by load_pack_of, gathered per element.
template <int kIn, int P>
WF_DEVICE void element_inputs(const float* v, int i, float* in) {
#pragma unroll
  for (int j = 0; j < kIn; ++j) in[j] = v[j * P + i];
}

// --- warp strategy -------------------------------------------------------------------------------

/// Grid: 1-D, grid-stride over groups of 32 / kLanes rows; block: kWarpRowBlockThreads. Lane l of
/// a row's team holds body packs k * kLanes + l (k < kChunks) and edge elements j * kLanes + l.
/// Requires floor(cols / P) <= kLanes * kChunks.
template <class Policy, int kLanes, int kChunks>
__global__ void __launch_bounds__(kWarpRowBlockThreads) row_warp_kernel(Policy policy) {
  using T = typename Policy::T;
  constexpr int kIn = Policy::kInputs;
  constexpr int P = kRowPack<T>;
  constexpr int kEdges = (2 * (P - 1) + kLanes - 1) / kLanes;
  constexpr int kRowsPerWarp = kWarpSize / kLanes;
  const int lane = static_cast<int>(lane_index()) % kLanes;
  const int group = static_cast<int>(lane_index()) / kLanes;
  std::int64_t first_row, row_stride;
  warp_rows<kRowsPerWarp>(&first_row, &row_stride);
  for (std::int64_t warp_row = first_row; warp_row < policy.rows; warp_row += row_stride) {
    const std::int64_t row = warp_row + group;
    const bool active = row < policy.rows;
    const std::int64_t r = active ? row : 0;
    // An inactive team (rows past the end) has no columns: it loads nothing and joins the
    // butterflies with identities.
    const RowArrays<Policy> arrays = RowArrays<Policy>::of(policy, r, active ? policy.cols : 0);
    const RowSplit<P> split = arrays.split;
    float body[kChunks][kIn * P];
    float edge[kEdges][kIn];
    bool body_ok[kChunks];
    bool edge_ok[kEdges];
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const std::int64_t q = static_cast<std::int64_t>(k) * kLanes + lane;
      body_ok[k] = q < split.packs;
      if (body_ok[k]) {
        arrays.load_pack_of(q, body[k]);
        transform_loaded<Policy, P>(policy, body[k]);
      } else {
#pragma unroll
        for (int i = 0; i < kIn * P; ++i) body[k][i] = 0.0f;
      }
    }
#pragma unroll
    for (int j = 0; j < kEdges; ++j) {
      const std::int64_t e = static_cast<std::int64_t>(j) * kLanes + lane;
      edge_ok[j] = e < split.edges();
      if (edge_ok[j]) {
        arrays.load_edge(e, edge[j]);
        transform_loaded<Policy, 1>(policy, edge[j]);
      } else {
#pragma unroll
        for (int i = 0; i < kIn; ++i) edge[j][i] = 0.0f;
      }
    }
    const typename Policy::Row info = policy.template begin_row<false>(r, active && lane == 0);
    constexpr int kS = kEngineSums<Policy>;
    float sums[kS];  // [0]: the exponentials' sum (kNormalize), [kSums + 1]: the moment
#pragma unroll
    for (int i = 0; i < kS; ++i) sums[i] = 0.0f;
    float max = negative_infinity();
    Exp2Row ex{};
    if constexpr (Policy::kNormalize) {
#pragma unroll
      for (int k = 0; k < kChunks; ++k) {
#pragma unroll
        for (int i = 0; i < P; ++i) max = body_ok[k] ? fmaxf(max, body[k][i]) : max;
      }
#pragma unroll
      for (int j = 0; j < kEdges; ++j) max = edge_ok[j] ? fmaxf(max, edge[j][0]) : max;
      __syncwarp();
      max = warp_all_reduce_max<kLanes>(max);
      ex = Exp2Row::from(max, policy.logit_scale());
    }
    float in[kIn];
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      if (!body_ok[k]) continue;
      const std::int64_t col0 = split.pack_col(static_cast<std::int64_t>(k) * kLanes + lane);
#pragma unroll
      for (int i = 0; i < P; ++i) {
        element_inputs<kIn, P>(body[k], i, in);
        policy.template accumulate<false>(info, col0 + i, in, sums + 1);
      }
    }
#pragma unroll
    for (int j = 0; j < kEdges; ++j) {
      if (!edge_ok[j]) continue;
      const std::int64_t col = split.edge_col(static_cast<std::int64_t>(j) * kLanes + lane);
      policy.template accumulate<false>(info, col, edge[j], sums + 1);
    }
    if constexpr (Policy::kNormalize) {
      ex.visit([&](auto exp) {
#pragma unroll
        for (int k = 0; k < kChunks; ++k) {
#pragma unroll
          for (int i = 0; i < P; ++i) sums[0] += body_ok[k] ? exp(body[k][i]) : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < kEdges; ++j) sums[0] += edge_ok[j] ? exp(edge[j][0]) : 0.0f;
      });
      if constexpr (PolicyMoment<Policy>::value) {
        if (moment_wanted(policy)) {
          float moment = 0.0f;
#pragma unroll
          for (int k = 0; k < kChunks; ++k) {
#pragma unroll
            for (int i = 0; i < P; ++i) moment += body_ok[k] ? ex.moment_term(body[k][i]) : 0.0f;
          }
#pragma unroll
          for (int j = 0; j < kEdges; ++j) moment += edge_ok[j] ? ex.moment_term(edge[j][0]) : 0.0f;
          sums[kS - 1] = moment;
        }
      }
    }
    __syncwarp();  // the lanes' guarded loops above end here: the butterflies see a converged warp
    warp_all_reduce_sums<kLanes>(sums);
    const RowStats stats =
        Policy::kNormalize ? ex.stats(sums[0], PolicyMoment<Policy>::value ? sums[kS - 1] : 0.0f)
                           : RowStats{};
    const typename Policy::Result result =
        policy.finish(info, r, stats, sums + 1, active && lane == 0);
    // The output's pointer and phase are formed again here rather than kept live across the
    // reductions (fewer 64-bit registers held by the whole row's loop).
    T* const out_row = policy.output(r);
    if (!active || out_row == nullptr) continue;
    const bool out_vector = same_phase(policy.input(0, r), static_cast<const T*>(out_row));
    visit_store_exp<Policy>(ex, [&](auto exp) {
#pragma unroll
      for (int k = 0; k < kChunks; ++k) {
        if (!body_ok[k]) continue;
        const std::int64_t col0 = split.pack_col(static_cast<std::int64_t>(k) * kLanes + lane);
        float out[P];
#pragma unroll
        for (int i = 0; i < P; ++i) {
          element_inputs<kIn, P>(body[k], i, in);
          out[i] = policy.store_value(info, result, col0 + i, in, exp(in[0]));
        }
        store_body<P>(out_row + col0, out_vector, out);
      }
#pragma unroll
      for (int j = 0; j < kEdges; ++j) {
        if (!edge_ok[j]) continue;
        const std::int64_t col = split.edge_col(static_cast<std::int64_t>(j) * kLanes + lane);
        out_row[col] =
            from_float<T>(policy.store_value(info, result, col, edge[j], exp(edge[j][0])));
      }
    });
  }
}

// --- block strategy ------------------------------------------------------------------------------

/// Bytes of dynamic shared memory row_block_kernel<Policy, kExpCache> needs for rows of `cols`.
template <class Policy>
constexpr std::int64_t row_cache_bytes(std::int64_t cols, bool exp_cache) {
  using T = typename Policy::T;
  constexpr int P = kRowPack<T>;
  const std::int64_t packs = cols / P;  // the most whole packs any row of cols elements has
  const std::int64_t first = exp_cache ? packs * P * 4 : packs * 16;
  return first + (Policy::kInputs - 1) * packs * 16;
}

/// The row-cache traversal of the block and cluster strategies for one row: this block caches
/// body packs [rank S, (rank + 1) S) (S = capacity; rank 0 with S = all packs for the block
/// strategy) in `cache_base` (the layout of row_cache_bytes over S packs), thread t packs
/// rank S + t, rank S + t + T, ...; rank 0's threads hold the edge elements. The row's maximum
/// and sums go through `exchange`: max(v) and sums(s) return the whole row's from this block's
/// partials (a block reduction, plus the cluster's exchange). Every thread of the block calls it.
template <class Policy, bool kExpCache, class Exchange>
WF_DEVICE void cached_row_passes(const Policy& policy, std::int64_t row, unsigned char* cache_base,
                                 std::int64_t capacity, unsigned rank, Exchange& exchange) {
  using T = typename Policy::T;
  constexpr int kIn = Policy::kInputs;
  constexpr int P = kRowPack<T>;
  constexpr int kPlanes = P / 4;           // float4 planes of an fp32-cached pack
  constexpr int kS = kEngineSums<Policy>;  // [0]: the exponentials' sum, [kSums + 1]: moment
  static_assert(!kExpCache || (Policy::kNormalize && Policy::kStoreUsesExp),
                "the fp32 exponential cache replaces input 0, which the store must not need");
  float4* const exp_cache = reinterpret_cast<float4*>(cache_base);
  Pack<T, P>* const cache = reinterpret_cast<Pack<T, P>*>(cache_base);   // [input][capacity]
  const std::int64_t input_offset = kExpCache ? capacity * kPlanes : 0;  // in packs of 16 bytes
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  const bool leader = rank == 0 && thread == 0;
  const auto cached = [&](int j, std::int64_t c) -> Pack<T, P>& {
    return cache[input_offset + (kExpCache ? j - 1 : j) * capacity + c];
  };
  const RowArrays<Policy> arrays = RowArrays<Policy>::of(policy, row, policy.cols);
  const RowSplit<P> split = arrays.split;
  const std::int64_t start = static_cast<std::int64_t>(rank) * capacity;
  const std::int64_t q_begin = start < split.packs ? start : split.packs;
  const std::int64_t q_end = q_begin + capacity < split.packs ? q_begin + capacity : split.packs;
  const bool has_edge = rank == 0 && thread < split.edges();
  const std::int64_t edge_col = has_edge ? split.edge_col(thread) : 0;
  float edge[kIn] = {};
  if (has_edge) {
    arrays.load_edge(thread, edge);
    transform_loaded<Policy, 1>(policy, edge);
  }
  const typename Policy::Row info = policy.template begin_row<false>(row, leader);
  // With the fp32 cache the exponentials replace the (transformed) inputs, unless the store reads
  // them too.
  const bool keep_input = kExpCache && store_keeps_input(policy);
  // Pass 1: the block's packs into its cache (and their maximum). The fp32 cache holds input 0
  // transformed; the storage-type cache holds the loaded bits (transformed again when read).
  float max = has_edge && Policy::kNormalize ? edge[0] : negative_infinity();
  for (std::int64_t q = q_begin + thread; q < q_end; q += threads) {
    float v[kIn * P];
    arrays.load_pack_of(q, v);
    if constexpr (kExpCache) transform_loaded<Policy, P>(policy, v);
    const std::int64_t c = q - q_begin;
#pragma unroll
    for (int j = 0; j < kIn; ++j) {
      if (kExpCache && j == 0) {
#pragma unroll
        for (int h = 0; h < kPlanes; ++h) {
          exp_cache[h * capacity + c] =
              make_float4(v[4 * h], v[4 * h + 1], v[4 * h + 2], v[4 * h + 3]);
        }
      } else {
        Pack<T, P> pack;
#pragma unroll
        for (int i = 0; i < P; ++i) pack.elem[i] = from_float<T>(v[j * P + i]);  // exact
        cached(j, c) = pack;
      }
    }
    if constexpr (!kExpCache) transform_loaded<Policy, P>(policy, v);
    if constexpr (Policy::kNormalize) {
#pragma unroll
      for (int i = 0; i < P; ++i) max = fmaxf(max, v[i]);
    }
  }
  Exp2Row ex{};
  if constexpr (Policy::kNormalize) ex = Exp2Row::from(exchange.max(max), policy.logit_scale());
  const auto read_cached = [&](std::int64_t c, float* v) {
#pragma unroll
    for (int j = 0; j < kIn; ++j) {
      if (kExpCache && j == 0) {
#pragma unroll
        for (int h = 0; h < kPlanes; ++h) {
          const float4 f = exp_cache[h * capacity + c];
          v[4 * h] = f.x;
          v[4 * h + 1] = f.y;
          v[4 * h + 2] = f.z;
          v[4 * h + 3] = f.w;
        }
      } else {
        const Pack<T, P> pack = cached(j, c);
#pragma unroll
        for (int i = 0; i < P; ++i) v[j * P + i] = to_float(pack.elem[i]);
      }
    }
    if constexpr (!kExpCache) transform_loaded<Policy, P>(policy, v);
  };
  // Pass 2: the block's sums (with the fp32 cache, the exponentials replace the inputs).
  float sums[kS];
#pragma unroll
  for (int i = 0; i < kS; ++i) sums[i] = 0.0f;
  float edge_exp = 0.0f;
  float in[kIn];
  const bool moment = moment_wanted(policy);
  const auto sum_pass = [&](auto exp) {
    if (has_edge) {
      edge_exp = exp(edge[0]);
      sums[0] += edge_exp;
      if constexpr (PolicyMoment<Policy>::value) {
        if (moment) sums[kS - 1] += ex.moment_term(edge[0]);
      }
      policy.template accumulate<false>(info, edge_col, edge, sums + 1);
    }
    for (std::int64_t q = q_begin + thread; q < q_end; q += threads) {
      float v[kIn * P];
      const std::int64_t c = q - q_begin;
      read_cached(c, v);
      const std::int64_t col0 = split.pack_col(q);
      float e[P];
#pragma unroll
      for (int i = 0; i < P; ++i) {
        element_inputs<kIn, P>(v, i, in);
        e[i] = exp(in[0]);
        sums[0] += e[i];
        if constexpr (PolicyMoment<Policy>::value) {
          if (moment) sums[kS - 1] += ex.moment_term(in[0]);
        }
        policy.template accumulate<false>(info, col0 + i, in, sums + 1);
      }
      if constexpr (kExpCache) {
        if (!keep_input) {
#pragma unroll
          for (int h = 0; h < kPlanes; ++h) {
            exp_cache[h * capacity + c] =
                make_float4(e[4 * h], e[4 * h + 1], e[4 * h + 2], e[4 * h + 3]);
          }
        }
      }
    }
  };
  if constexpr (Policy::kNormalize) {
    ex.visit(sum_pass);
  } else {
    sum_pass(NoExp{});
  }
  exchange.sums(sums);
  const RowStats stats = Policy::kNormalize
                             ? ex.stats(sums[0], PolicyMoment<Policy>::value ? sums[kS - 1] : 0.0f)
                             : RowStats{};
  const typename Policy::Result result = policy.finish(info, row, stats, sums + 1, leader);
  if (arrays.out == nullptr) return;
  // Pass 3: the outputs of the block's packs, from its cache.
  const auto store_pass = [&](auto exp) {
    for (std::int64_t q = q_begin + thread; q < q_end; q += threads) {
      float v[kIn * P];
      read_cached(q - q_begin, v);
      const std::int64_t col0 = split.pack_col(q);
      float out[P];
#pragma unroll
      for (int i = 0; i < P; ++i) {
        element_inputs<kIn, P>(v, i, in);
        float e;
        if constexpr (kExpCache) {
          if (keep_input) {
            e = ex.exp(in[0]);
          } else {
            e = in[0];
            in[0] = 0.0f;  // the input itself is gone; the policy's store does not read it
          }
        } else {
          e = exp(in[0]);
        }
        out[i] = policy.store_value(info, result, col0 + i, in, e);
      }
      store_body<P>(arrays.out + col0, arrays.out_vector, out);
    }
    if (has_edge) {
      arrays.out[edge_col] =
          from_float<T>(policy.store_value(info, result, edge_col, edge, edge_exp));
    }
  };
  if constexpr (kExpCache) {
    store_pass(NoExp{});
  } else {
    visit_store_exp<Policy>(ex, store_pass);
  }
}

/// The block strategy's exchange (cached_row_passes): the block's own reductions.
struct BlockExchange {
  WF_DEVICE float max(float local) { return block_all_reduce_max(local); }
  template <int N>
  WF_DEVICE void sums(float (&values)[N]) {
    block_all_reduce_sums(values);
  }
};

/// Grid: 1-D, grid-stride over rows, one row per block; block: whole warps (<= 1024). Dynamic
/// shared memory: row_cache_bytes<Policy>(cols, kExpCache). Thread t caches body packs t, t + T,
/// ... and handles edge element t in registers.
template <class Policy, bool kExpCache>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1) row_block_kernel(Policy policy) {
  WF_DYNAMIC_SHARED(unsigned char, shared);
  BlockExchange exchange;
  for (std::int64_t row = blockIdx.x; row < policy.rows; row += gridDim.x) {
    cached_row_passes<Policy, kExpCache>(policy, row, shared,
                                         policy.cols / kRowPack<typename Policy::T>, 0, exchange);
  }
}

// --- online strategy -----------------------------------------------------------------------------

/// Grid: 1-D, grid-stride over rows, one row per block; block: whole warps (<= 1024); no dynamic
/// shared memory. Pass 1 visits body packs in register blocks: packs base + b T + t (b <
/// kOnlineBlockPacks) are all loaded, their maximum taken, the running sum rescaled once if the
/// maximum moved, then one exponential per element. Pass 2 re-reads the row and stores.
template <class Policy>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1) row_online_kernel(Policy policy) {
  using T = typename Policy::T;
  constexpr int kIn = Policy::kInputs;
  constexpr int P = kRowPack<T>;
  constexpr int kB = kOnlineBlockPacks<kIn, P>;
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  for (std::int64_t row = blockIdx.x; row < policy.rows; row += gridDim.x) {
    const RowArrays<Policy> arrays = RowArrays<Policy>::of(policy, row, policy.cols);
    const RowSplit<P> split = arrays.split;
    const bool has_edge = thread < split.edges();
    const std::int64_t edge_col = has_edge ? split.edge_col(thread) : 0;
    const typename Policy::Row info = policy.template begin_row<true>(row, thread == 0);
    const float scale2 = policy.logit_scale() * kLog2e;
    float sums[Policy::kSums > 0 ? Policy::kSums : 1];
#pragma unroll
    for (int i = 0; i < Policy::kSums; ++i) sums[i] = 0.0f;
    OnlineNormalizer norm = OnlineNormalizerOp::identity<float>();
    float in[kIn] = {};
    // A policy with nothing to normalise or sum (the shards' gradient) has no first pass: one
    // read and one write (not left to the compiler's removal of dead loads).
    constexpr bool kFirstPass = Policy::kNormalize || Policy::kSums > 0;
    if (kFirstPass && has_edge) {
      arrays.load_edge(thread, in);
      transform_loaded<Policy, 1>(policy, in);
      if constexpr (Policy::kNormalize) {
        // fmaxf drops a NaN here (the max stays -inf); its exponential still makes the sum NaN.
        norm.max = fmaxf(negative_infinity(), in[0]);
        const Exp2Row first = Exp2Row::from(norm.max, policy.logit_scale());
        norm.sum = first.exp(in[0]) * ex2_approx_ftz(-first.r);
      }
      policy.template accumulate<true>(info, edge_col, in, sums);
    }
    for (std::int64_t base = 0; kFirstPass && base < split.packs; base += threads * kB) {
      float v[kB][kIn * P];
      bool ok[kB];
#pragma unroll
      for (int b = 0; b < kB; ++b) {
        const std::int64_t q = base + b * threads + thread;
        ok[b] = q < split.packs;
        if (ok[b]) {
          arrays.load_pack_of(q, v[b]);
          transform_loaded<Policy, P>(policy, v[b]);
        } else {
#pragma unroll
          for (int i = 0; i < kIn * P; ++i) v[b][i] = 0.0f;
        }
      }
      if constexpr (Policy::kNormalize) {
        float top = norm.max;
#pragma unroll
        for (int b = 0; b < kB; ++b) {
#pragma unroll
          for (int i = 0; i < P; ++i) top = ok[b] ? fmaxf(top, v[b][i]) : top;
        }
        if (top != norm.max) {
          norm.sum = OnlineNormalizerOp{scale2}.rescaled(norm, top);
          norm.max = top;
        }
        // One exponential per element against this block's maximum; the block's sum, freed of
        // its 2^r factor, joins the running (exact) denominator.
        const Exp2Row bx = Exp2Row::from(norm.max, policy.logit_scale());
        float block_sum = 0.0f;
        bx.visit([&](auto exp) {
#pragma unroll
          for (int b = 0; b < kB; ++b) {
#pragma unroll
            for (int i = 0; i < P; ++i) block_sum += ok[b] ? exp(v[b][i]) : 0.0f;
          }
        });
        norm.sum += block_sum * ex2_approx_ftz(-bx.r);
      }
#pragma unroll
      for (int b = 0; b < kB; ++b) {
        if (!ok[b]) continue;
        const std::int64_t col0 = split.pack_col(base + b * threads + thread);
#pragma unroll
        for (int i = 0; i < P; ++i) {
          element_inputs<kIn, P>(v[b], i, in);
          policy.template accumulate<true>(info, col0 + i, in, sums);
        }
      }
    }
    Exp2Row ex{};
    RowStats stats{};
    if constexpr (Policy::kNormalize) {
      norm = block_all_reduce(norm, OnlineNormalizerOp{scale2});
      ex = Exp2Row::from(norm.max, policy.logit_scale());
      float moment[1] = {0.0f};
      if constexpr (PolicyMoment<Policy>::value) {
        // The moment takes one more read of the row, against its final maximum (kept running in
        // pass 1 it spilled the 1024-thread kernel's 64 registers): sum_k e_k d_k with e_k = 2^d_k
        // carrying 2^r, so the exact moment is that times 2^-r less r times the exact sum.
        if (moment_wanted(policy)) {
          for (std::int64_t q = thread; q < split.packs; q += threads) {
            float v[kIn * P];
            arrays.load_pack_of(q, v);
            transform_loaded<Policy, P>(policy, v);
#pragma unroll
            for (int i = 0; i < P; ++i) moment[0] += ex.moment_term(v[i]);
          }
          if (has_edge) {
            arrays.load_edge(thread, in);
            transform_loaded<Policy, 1>(policy, in);
            moment[0] += ex.moment_term(in[0]);
          }
          block_all_reduce_sums(moment);
          moment[0] = moment[0] * ex2_approx_ftz(-ex.r) - ex.r * norm.sum;
        }
      }
      stats = ex.stats_exact(norm.sum, moment[0]);
    }
    if constexpr (Policy::kSums > 0) block_all_reduce_sums(sums);
    const typename Policy::Result result = policy.finish(info, row, stats, sums, thread == 0);
    if (arrays.out == nullptr) continue;
    visit_store_exp<Policy>(ex, [&](auto exp) {
      for (std::int64_t q = thread; q < split.packs; q += threads) {
        float v[kIn * P];
        arrays.load_pack_of(q, v);
        transform_loaded<Policy, P>(policy, v);
        const std::int64_t col0 = split.pack_col(q);
        float out[P];
#pragma unroll
        for (int i = 0; i < P; ++i) {
          element_inputs<kIn, P>(v, i, in);
          out[i] = policy.store_value(info, result, col0 + i, in, exp(in[0]));
        }
        store_body<P>(arrays.out + col0, arrays.out_vector, out);
      }
      if (has_edge) {
        arrays.load_edge(thread, in);
        transform_loaded<Policy, 1>(policy, in);
        arrays.out[edge_col] =
            from_float<T>(policy.store_value(info, result, edge_col, in, exp(in[0])));
      }
    });
  }
}

// --- stream strategy -----------------------------------------------------------------------------

/// P fp32 values stored to ptr: 16-byte stores of 4 when `vector` (P is a multiple of 4), else
/// element by element.
template <int P>
WF_DEVICE void store_fp32_body(float* ptr, bool vector, const float* src) {
  if (vector) {
#pragma unroll
    for (int h = 0; h < P; h += 4) {
      Pack<float, 4> pack;
#pragma unroll
      for (int i = 0; i < 4; ++i) pack.elem[i] = src[h + i];
      store_pack<4>(ptr + h, pack);
    }
  } else {
#pragma unroll
    for (int i = 0; i < P; ++i) ptr[i] = src[i];
  }
}

/// Packs per input and member in one register block of the stream traversal: two, so that the
/// accurate functions of the heaviest loss (BCE's log1pf, expf and divisions over 2 x 8 values)
/// fit the 1024-thread block kernel's 64 registers; 64 bytes in flight per thread.
constexpr int kStreamBlockPacks = 2;

/// The outputs of kN packs whose inputs are in v (packs q0, q0 + members, ...): stored at once,
/// their values added to *sum in column order.
template <int kN, class Policy>
WF_DEVICE void stream_packs(const Policy& policy, const RowArrays<Policy>& arrays, float* values,
                            bool values_vector,
                            const float (&v)[kN][Policy::kInputs * kRowPack<typename Policy::T>],
                            std::int64_t q0, std::int64_t members, float* sum) {
  constexpr int kIn = Policy::kInputs;
  constexpr int P = kRowPack<typename Policy::T>;
#pragma unroll
  for (int b = 0; b < kN; ++b) {
    const std::int64_t col0 = arrays.split.pack_col(q0 + b * members);
    float in[kIn], out[P], value[P];
#pragma unroll
    for (int i = 0; i < P; ++i) {
      element_inputs<kIn, P>(v[b], i, in);
      value[i] = policy.element(col0 + i, in, &out[i]);
      *sum += value[i];
    }
    if (arrays.out != nullptr) store_body<P>(arrays.out + col0, arrays.out_vector, out);
    if (values != nullptr) store_fp32_body<P>(values + col0, values_vector, value);
  }
}

/// One member's share of a stream row (members = the row's team or block): edge elements member,
/// member + members, ..., then body packs in register blocks of kStreamBlockPacks packs per
/// input, all loaded before any is used. Returns the sum of the member's values, in column order
/// within its share.
template <class Policy>
WF_DEVICE float stream_row(const Policy& policy, std::int64_t row, std::int64_t member,
                           std::int64_t members) {
  static_assert(Policy::kStream, "stream_row takes a stream policy");
  using T = typename Policy::T;
  constexpr int kIn = Policy::kInputs;
  constexpr int P = kRowPack<T>;
  constexpr int kB = kStreamBlockPacks;
  const RowArrays<Policy> arrays = RowArrays<Policy>::of(policy, row, policy.cols);
  const RowSplit<P> split = arrays.split;
  float* const values = policy.values(row);
  const bool values_vector = values != nullptr && is_pack_aligned<4>(values + split.head);
  float sum = 0.0f;
  for (std::int64_t e = member; e < split.edges(); e += members) {
    float in[kIn];
    arrays.load_edge(e, in);
    const std::int64_t col = split.edge_col(e);
    float out;
    const float value = policy.element(col, in, &out);
    if (arrays.out != nullptr) arrays.out[col] = from_float<T>(out);
    if (values != nullptr) values[col] = value;
    sum += value;
  }
  // Whole register blocks (every member's kB packs exist): unconditional loads, all issued before
  // the first is used; then the last packs one at a time.
  const std::int64_t stride = members * kB;
  const std::int64_t whole = split.packs / stride * stride;
  for (std::int64_t base = member; base < whole; base += stride) {
    float v[kB][kIn * P];
#pragma unroll
    for (int b = 0; b < kB; ++b) arrays.load_pack_of(base + b * members, v[b]);
    stream_packs<kB>(policy, arrays, values, values_vector, v, base, members, &sum);
  }
  for (std::int64_t q = whole + member; q < split.packs; q += members) {
    float v[1][kIn * P];
    arrays.load_pack_of(q, v[0]);
    stream_packs<1>(policy, arrays, values, values_vector, v, q, members, &sum);
  }
  return sum;
}

/// Grid: 1-D, grid-stride over groups of 32 / kLanes rows; block: kWarpRowBlockThreads. Lane l of
/// a row's team handles edge elements l, l + kLanes, ... and body packs l, l + kLanes, ...
template <class Policy, int kLanes>
__global__ void __launch_bounds__(kWarpRowBlockThreads) row_stream_warp_kernel(Policy policy) {
  constexpr int kRowsPerWarp = kWarpSize / kLanes;
  const int lane = static_cast<int>(lane_index()) % kLanes;
  const int group = static_cast<int>(lane_index()) / kLanes;
  std::int64_t first_row, row_stride;
  warp_rows<kRowsPerWarp>(&first_row, &row_stride);
  for (std::int64_t warp_row = first_row; warp_row < policy.rows; warp_row += row_stride) {
    const std::int64_t row = warp_row + group;
    const bool active = row < policy.rows;
    float sum = active ? stream_row(policy, row, lane, kLanes) : 0.0f;
    if (!policy.reduces()) continue;
    __syncwarp();  // the teams' loops above end here: the butterfly sees a converged warp
    sum = warp_all_reduce_sum<kLanes>(sum);
    if (active && lane == 0) policy.finish_row(row, sum);
  }
}

/// Grid: 1-D, grid-stride over rows, one row per block; block: whole warps (<= 1024); no shared
/// memory but the reduction's static slots. Thread t handles edge element t and body packs t,
/// t + blockDim, ...
template <class Policy>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1) row_stream_block_kernel(Policy policy) {
  const std::int64_t thread = linear_thread_index();
  const std::int64_t threads = threads_per_block();
  for (std::int64_t row = blockIdx.x; row < policy.rows; row += gridDim.x) {
    float sum = stream_row(policy, row, thread, threads);
    if (!policy.reduces()) continue;
    sum = block_all_reduce_sum(sum);
    if (thread == 0) policy.finish_row(row, sum);
  }
}

// --- cluster strategy ----------------------------------------------------------------------------

/// Most blocks of a cluster (16 with the non-portable opt-in; host/cuda/rows.h asks for it).
constexpr int kClusterMaxBlocks = 16;

/// Floats at the start of a cluster block's dynamic shared memory: the exchange slots its peers
/// write (a maximum and, in two row-parity buffers, kEngineSums sums per rank) and the block
/// reductions' slots (kWarpSize + 1 per reduced value), rounded to 16 bytes.
template <class Policy>
constexpr int kClusterScratchFloats = (kClusterMaxBlocks * (2 * kEngineSums<Policy> + 1) +
                                       kEngineSums<Policy> * (kWarpSize + 1) + 3) /
                                      4 * 4;

/// Body packs per block when a row of `cols` is split over `blocks` blocks (the last may get
/// fewer): ceil(floor(cols / P) / blocks).
template <class Policy>
constexpr std::int64_t cluster_slice_packs(std::int64_t cols, int blocks) {
  const std::int64_t packs = cols / kRowPack<typename Policy::T>;
  return (packs + blocks - 1) / blocks;
}

/// Bytes of dynamic shared memory per block of row_cluster_kernel<Policy, kExpCache> for rows of
/// `cols` over `blocks` blocks: the scratch, then the block's slice of the row cache (laid out as
/// the block strategy's).
template <class Policy>
constexpr std::int64_t row_cluster_bytes(std::int64_t cols, int blocks, bool exp_cache) {
  using T = typename Policy::T;
  constexpr int P = kRowPack<T>;
  const std::int64_t slice = cluster_slice_packs<Policy>(cols, blocks);
  const std::int64_t first = exp_cache ? slice * P * 4 : slice * 16;
  return kClusterScratchFloats<Policy> * 4 + first + (Policy::kInputs - 1) * slice * 16;
}

/// The cluster's exchange (cached_row_passes): the block's partial reduced over the block, pushed
/// into every peer's slot for this rank through distributed shared memory, one cluster barrier,
/// then the ranks' partials combined in rank order (the same bits in every block).
template <int kS>
struct ClusterExchange {
  float* max_slots;     // [kClusterMaxBlocks]
  float* sum_slots;     // [kClusterMaxBlocks][kS], this row's parity buffer
  float* reduce_slots;  // the block reductions'
  unsigned rank;
  unsigned blocks;

  WF_DEVICE float max(float local) {
    const float block = block_all_reduce_in(local, MaxOp{}, reduce_slots);
    const unsigned thread = linear_thread_index();
    if (thread < blocks) *cluster_map_shared(max_slots + rank, thread) = block;
    cluster_sync();
    float row = negative_infinity();
    for (unsigned r = 0; r < blocks; ++r) row = fmaxf(row, max_slots[r]);
    return row;
  }
  WF_DEVICE void sums(float (&values)[kS]) {
    block_all_reduce_sums_in(values, reduce_slots);
    const unsigned thread = linear_thread_index();
    if (thread < blocks) {
      float* const slot = cluster_map_shared(sum_slots + rank * kS, thread);
#pragma unroll
      for (int i = 0; i < kS; ++i) slot[i] = values[i];
    }
    cluster_sync();
#pragma unroll
    for (int i = 0; i < kS; ++i) {
      float total = 0.0f;
      for (unsigned r = 0; r < blocks; ++r) total += sum_slots[r * kS + i];
      values[i] = total;
    }
  }
};

/// Grid: 1-D, clusters of cluster_num_blocks() blocks along x (2..16), grid-stride over rows, one
/// row per cluster; block: whole warps (<= 1024). Block rank r of a cluster caches body packs
/// [r S, (r + 1) S) of the row (S = cluster_slice_packs) in its dynamic shared memory, thread t
/// of it packs r S + t, r S + t + T, ...; rank 0's threads hold the row's edge elements. Each
/// block reduces its part (maximum, then the sums), pushes the partial into every peer's slot for
/// its rank through distributed shared memory, and after one cluster barrier every thread combines
/// the ranks' partials in rank order (the same bits in every block: no atomics). One cluster
/// barrier per exchange (two per row when normalising); a slot is rewritten only after a barrier
/// its readers passed (the maximum's after the sums' barrier; the sums alternate between two
/// buffers by row parity, so row r + 2 writes after row r + 1's barrier), and nothing is mapped
/// after a row's last barrier, so a block may exit without another.
template <class Policy, bool kExpCache>
__global__ void __launch_bounds__(kRowBlockMaxThreads, 1) row_cluster_kernel(Policy policy) {
  constexpr int kS = kEngineSums<Policy>;  // [0]: the exponentials' sum
  WF_DYNAMIC_SHARED(unsigned char, shared);
  float* const max_slots = reinterpret_cast<float*>(shared);
  float* const sum_buffers = max_slots + kClusterMaxBlocks;  // [2][kClusterMaxBlocks][kS]
  float* const reduce_slots = sum_buffers + 2 * kClusterMaxBlocks * kS;
  const unsigned rank = cluster_block_rank();
  const unsigned blocks = cluster_num_blocks();
  const std::int64_t capacity = cluster_slice_packs<Policy>(policy.cols, static_cast<int>(blocks));
  const std::int64_t clusters = gridDim.x / blocks;
  std::int64_t parity = 0;
  for (std::int64_t row = blockIdx.x / blocks; row < policy.rows; row += clusters, parity ^= 1) {
    ClusterExchange<kS> exchange{max_slots, sum_buffers + parity * kClusterMaxBlocks * kS,
                                 reduce_slots, rank, blocks};
    cached_row_passes<Policy, kExpCache>(policy, row, shared + kClusterScratchFloats<Policy> * 4,
                                         capacity, rank, exchange);
  }
}

}  // namespace warpfuse::detail
