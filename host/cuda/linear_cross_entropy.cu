// warpfuse host — chunked linear + cross-entropy: validation, the chunk plan, the launch sequence
// (math and semantics in include/warpfuse/linear_cross_entropy.h).
//
// Workspace layout (each part kWorkspaceAlignment-aligned):
//   [loss scratch: loss_workspace_bytes(rows)]  header (status, the mean's denominator), the
//                                               per-row losses, the reductions' first stage
//   [ones: n T values]                          when there is a bias
//   [logits: n x ldz T values]                  ldz = V rounded up to a 16-byte multiple
// Launch sequence on `stream`: status reset, the prepare kernel (the whole batch's denominator),
// the ones; per chunk the bias and logits GEMMs, the cross-entropy row engine in place, the
// dhidden, dweight and dbias GEMMs; the loss reduction; the T copies.
#include "warpfuse/linear_cross_entropy.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "host/cuda/cross_entropy_internal.h"
#include "host/cuda/launch.h"
#include "host/cuda/loss_internal.h"
#include "host/cuda/rows.h"
#include "kernels/linear_cross_entropy.cuh"
#include "warpfuse/error.h"

namespace warpfuse {
namespace {

constexpr const char* kOp = "linear_cross_entropy";
constexpr std::int64_t kAlign = static_cast<std::int64_t>(kWorkspaceAlignment);

/// `v` rounded up to a multiple of `to`, or -1 when that overflows.
std::int64_t round_up(std::int64_t v, std::int64_t to) {
  if (v > INT64_MAX - (to - 1)) return -1;
  return (v + to - 1) / to * to;
}

/// The parts of a workspace for chunks of n rows; bytes -1 when a size overflows.
struct Layout {
  std::int64_t loss_bytes = 0;
  std::int64_t ones_bytes = 0;  // rounded up to kAlign
  std::int64_t logits_ld = 0;   // elements
  std::int64_t bytes = 0;       // the whole workspace
};

Layout layout_for(std::int64_t rows, std::int64_t vocab, std::int64_t element, std::int64_t chunk) {
  Layout l;
  l.loss_bytes = static_cast<std::int64_t>(detail::loss_workspace_bytes(rows));
  l.logits_ld = round_up(vocab, 16 / element);
  std::int64_t ones = 0, logits = 0;
  if (l.logits_ld < 0 || __builtin_mul_overflow(chunk, element, &ones) ||
      __builtin_mul_overflow(ones, l.logits_ld, &logits)) {
    l.bytes = -1;
    return l;
  }
  l.ones_bytes = round_up(ones, kAlign);
  if (l.ones_bytes < 0 || __builtin_add_overflow(l.loss_bytes, l.ones_bytes, &l.bytes) ||
      __builtin_add_overflow(l.bytes, logits, &l.bytes)) {
    l.bytes = -1;
  }
  return l;
}

void check_sizes(const char* query, std::int64_t rows, std::int64_t vocab,
                 std::int64_t chunk_rows) {
  if (rows < 0) throw InvalidArgument(query, "rows", std::to_string(rows) + " is negative");
  if (vocab < 1) throw InvalidArgument(query, "vocab", std::to_string(vocab) + " is not >= 1");
  if (chunk_rows < 0) {
    throw InvalidArgument(query, "chunk_rows", std::to_string(chunk_rows) + " is negative");
  }
}

/// The chunk the caller asks for: chunk_rows, or the default, at most rows, at least 1.
std::int64_t requested_chunk(std::int64_t rows, std::int64_t chunk_rows) {
  const std::int64_t want = chunk_rows > 0 ? chunk_rows : kLinearCrossEntropyDefaultChunkRows;
  return std::max<std::int64_t>(1, std::min(want, rows));
}

std::int64_t chunk_for(std::int64_t rows, std::int64_t vocab, std::int64_t element,
                       std::size_t workspace_bytes, std::int64_t chunk_rows) {
  const std::int64_t cap = chunk_rows > 0 ? std::min(chunk_rows, std::max<std::int64_t>(rows, 1))
                                          : std::max<std::int64_t>(rows, 1);
  const Layout one = layout_for(rows, vocab, element, 1);
  if (one.bytes < 0 || workspace_bytes < static_cast<std::size_t>(one.bytes)) return 0;
  // The largest n <= cap whose layout fits (bytes grow with n): a binary search from the bound
  // that ignores the ones' growth.
  const auto available = static_cast<std::int64_t>(
      std::min<std::size_t>(workspace_bytes, static_cast<std::size_t>(INT64_MAX)));
  std::int64_t low = 1,
               high = std::min(cap, 1 + (available - one.bytes) / (element * one.logits_ld));
  while (low < high) {
    const std::int64_t mid = low + (high - low + 1) / 2;
    const Layout l = layout_for(rows, vocab, element, mid);
    if (l.bytes >= 0 && l.bytes <= available) {
      low = mid;
    } else {
      high = mid - 1;
    }
  }
  const std::int64_t n = low;
  return n;
}

template <class V>
bool given(const MatrixView<V>& v) {
  return v.data != nullptr || !v.empty();
}
template <class V>
bool given(const VectorView<V>& v) {
  return v.data != nullptr || !v.empty();
}

template <class V>
void check_matrix_shape(const char* arg, const MatrixView<V>& v, std::int64_t rows,
                        std::int64_t cols) {
  detail::check_view(kOp, arg, v);
  if (v.rows != rows || v.cols != cols) {
    throw InvalidArgument(kOp, arg,
                          std::to_string(v.rows) + " x " + std::to_string(v.cols) + " but " +
                              std::to_string(rows) + " x " + std::to_string(cols) + " is needed");
  }
}
template <class V>
void check_vector_size(const char* arg, const VectorView<V>& v, std::int64_t size,
                       const char* what) {
  detail::check_view(kOp, arg, v);
  if (v.size != size) {
    throw InvalidArgument(kOp, arg,
                          "size = " + std::to_string(v.size) + " but " + std::to_string(size) +
                              " (" + what + ") is needed");
  }
}

/// Launches dst = src rounded to T (both rows x cols).
template <class T>
void launch_round_copy(MatrixView<const float> src, MatrixView<T> dst, cudaStream_t stream) {
  if (dst.empty()) return;
  constexpr int kPack = detail::kPackElements<T>;
  const bool packs = detail::can_use_packs<4>(src.data, src.ld) && src.ld % kPack == 0 &&
                     detail::can_use_packs<kPack>(dst.data, dst.ld);
  const std::int64_t per = packs ? kPack : 1;
  const std::int64_t items = dst.rows * ((dst.cols + per - 1) / per);
  const std::int64_t work_blocks =
      (items + detail::kLinearCrossEntropyThreads - 1) / detail::kLinearCrossEntropyThreads;
  const auto run = [&](auto kernel, const char* name) {
    detail::launch(detail::wave_config(kernel, work_blocks,
                                       dim3(detail::kLinearCrossEntropyThreads), 0, stream),
                   name, kernel, src.data, src.ld, dst.data, dst.ld, dst.rows, dst.cols);
  };
  if (packs) {
    run(detail::round_copy_kernel<T, kPack>, "round_copy_kernel");
  } else {
    run(detail::round_copy_kernel<T, 1>, "round_copy_kernel");
  }
}

template <class T, class Index>
void run(Blas& blas, MatrixView<const T> hidden, MatrixView<const T> weight,
         VectorView<const T> bias, VectorView<const Index> targets,
         const LinearCrossEntropyOutputs<T>& out, const Workspace& workspace,
         const LinearCrossEntropyOptions& options, VectorView<const float> class_weight,
         cudaStream_t stream) {
  // --- inputs and options
  detail::check_view(kOp, "hidden", hidden);
  detail::check_view(kOp, "weight", weight);
  detail::check_view(kOp, "bias", bias);
  detail::check_view(kOp, "targets", targets);
  detail::check_view(kOp, "class_weight", class_weight);
  const std::int64_t rows = hidden.rows, d = hidden.cols, vocab = weight.rows;
  if (d < 1) throw InvalidArgument(kOp, "hidden", "cols = 0: the hidden size must be >= 1");
  if (vocab < 1) throw InvalidArgument(kOp, "weight", "rows = 0: there must be at least one class");
  if (weight.cols != d) {
    throw InvalidArgument(kOp, "weight",
                          "cols = " + std::to_string(weight.cols) + " but hidden has " +
                              std::to_string(d) + " columns");
  }
  if (given(bias)) check_vector_size("bias", bias, vocab, "the weight's rows");
  check_vector_size("targets", targets, rows, "hidden's rows");
  if (given(class_weight)) check_vector_size("class_weight", class_weight, vocab, "classes");
  detail::check_cublas_dims(kOp, "hidden", hidden);
  detail::check_cublas_dims(kOp, "weight", weight);
  const CrossEntropyOptions& ce = options.cross_entropy;
  detail::check_cross_entropy_options(kOp, ce);
  if (options.chunk_rows < 0) {
    throw InvalidArgument(kOp, "options.chunk_rows",
                          std::to_string(options.chunk_rows) + " is negative");
  }
  const int precision = static_cast<int>(options.precision);
  if (precision < 0 || precision > static_cast<int>(GemmPrecision::bf16)) {
    throw InvalidArgument(kOp, "options.precision",
                          std::to_string(precision) + " is not a GemmPrecision");
  }

  // --- outputs
  const bool mean = ce.reduction == CrossEntropyReduction::mean;
  check_vector_size("outputs.loss", out.loss,
                    ce.reduction == CrossEntropyReduction::none ? rows : 1, "the reduction's");
  if (given(out.dhidden)) {
    check_matrix_shape("outputs.dhidden", out.dhidden, rows, d);
    detail::check_cublas_dims(kOp, "outputs.dhidden", out.dhidden);
  }
  if (given(out.dweight)) {
    check_matrix_shape("outputs.dweight", out.dweight, vocab, d);
    detail::check_cublas_dims(kOp, "outputs.dweight", out.dweight);
  }
  if (given(out.dbias)) {
    if (!given(bias)) throw InvalidArgument(kOp, "outputs.dbias", "there is no bias");
    check_vector_size("outputs.dbias", out.dbias, vocab, "classes");
  }
  if (given(out.dhidden_copy)) {
    if (!given(out.dhidden)) {
      throw InvalidArgument(kOp, "outputs.dhidden_copy", "needs outputs.dhidden (its fp32 source)");
    }
    check_matrix_shape("outputs.dhidden_copy", out.dhidden_copy, rows, d);
  }
  if (given(out.dweight_copy)) {
    if (!given(out.dweight)) {
      throw InvalidArgument(kOp, "outputs.dweight_copy", "needs outputs.dweight (its fp32 source)");
    }
    check_matrix_shape("outputs.dweight_copy", out.dweight_copy, vocab, d);
  }
  if (given(out.dbias_copy)) {
    if (!given(out.dbias)) {
      throw InvalidArgument(kOp, "outputs.dbias_copy", "needs outputs.dbias (its fp32 source)");
    }
    check_vector_size("outputs.dbias_copy", out.dbias_copy, vocab, "classes");
  }
  const VectorView<float> extras[] = {out.logsumexp, out.z_loss_term, out.correct, out.entropy};
  const char* const extra_names[] = {"outputs.logsumexp", "outputs.z_loss_term", "outputs.correct",
                                     "outputs.entropy"};
  for (int i = 0; i < 4; ++i) {
    if (given(extras[i])) check_vector_size(extra_names[i], extras[i], rows, "hidden's rows");
  }
  // No output shares a byte with an input, the workspace or another output.
  const detail::ByteSpan inputs[] = {detail::span_of(hidden),       detail::span_of(weight),
                                     detail::span_of(bias),         detail::span_of(targets),
                                     detail::span_of(class_weight), detail::span_of(workspace)};
  const char* const input_names[] = {"hidden",  "weight",       "bias",
                                     "targets", "class_weight", "workspace"};
  const detail::ByteSpan outputs[] = {
      detail::span_of(out.loss),         detail::span_of(out.dhidden),
      detail::span_of(out.dweight),      detail::span_of(out.dbias),
      detail::span_of(out.dhidden_copy), detail::span_of(out.dweight_copy),
      detail::span_of(out.dbias_copy),   detail::span_of(extras[0]),
      detail::span_of(extras[1]),        detail::span_of(extras[2]),
      detail::span_of(extras[3])};
  const char* const output_names[] = {
      "outputs.loss",         "outputs.dhidden",      "outputs.dweight",    "outputs.dbias",
      "outputs.dhidden_copy", "outputs.dweight_copy", "outputs.dbias_copy", extra_names[0],
      extra_names[1],         extra_names[2],         extra_names[3]};
  constexpr int kOutputs = sizeof(outputs) / sizeof(outputs[0]);
  for (int i = 0; i < kOutputs; ++i) {
    for (int j = 0; j < 6; ++j) {
      detail::check_disjoint(kOp, output_names[i], outputs[i], input_names[j], inputs[j]);
    }
    for (int j = i + 1; j < kOutputs; ++j) {
      detail::check_disjoint(kOp, output_names[i], outputs[i], output_names[j], outputs[j]);
    }
  }

  // --- workspace and chunk
  const auto element = static_cast<std::int64_t>(sizeof(T));
  const std::int64_t chunk = chunk_for(rows, vocab, element, workspace.bytes, options.chunk_rows);
  if (chunk == 0) {
    const Layout one = layout_for(rows, vocab, element, 1);
    throw InvalidArgument(
        kOp, "workspace",
        std::to_string(workspace.bytes) + " bytes do not hold one row's logits: " + "at least " +
            std::to_string(one.bytes) + " are needed (linear_cross_entropy_workspace_bytes(" +
            std::to_string(rows) + ", " + std::to_string(vocab) + ", ..., 1))");
  }
  const detail::LossScratch scratch = detail::prepare_loss_workspace(
      kOp, "linear_cross_entropy_workspace_bytes", workspace, rows, stream);
  const Layout layout = layout_for(rows, vocab, element, chunk);
  auto* base = static_cast<unsigned char*>(workspace.data);
  T* ones = reinterpret_cast<T*>(base + layout.loss_bytes);
  T* logits = reinterpret_cast<T*>(base + layout.loss_bytes + layout.ones_bytes);

  const bool gradient = given(out.dhidden) || given(out.dweight) || given(out.dbias);
  const float* class_weight_data = class_weight.size > 0 ? class_weight.data : nullptr;
  detail::launch_cross_entropy_prepare(
      detail::IndexCountedWeight<Index>{targets.data, vocab,
                                        static_cast<long long>(ce.ignore_index), class_weight_data},
      rows, vocab, class_weight_data, ce.grad_scale, scratch, stream);
  const bool has_bias = given(bias);
  if (has_bias && rows > 0) {
    const auto kernel = detail::fill_ones_kernel<T>;
    const std::int64_t blocks =
        (chunk + detail::kLinearCrossEntropyThreads - 1) / detail::kLinearCrossEntropyThreads;
    detail::launch(
        detail::wave_config(kernel, blocks, dim3(detail::kLinearCrossEntropyThreads), 0, stream),
        "fill_ones_kernel", kernel, ones, chunk);
  }
  if (rows == 0 && !options.accumulate) {
    // No chunk runs: the overwritten gradients are zero.
    if (given(out.dweight) && !out.dweight.empty()) {
      WARPFUSE_CUDA_CHECK(cudaMemset2DAsync(out.dweight.data, out.dweight.ld * sizeof(float), 0,
                                            d * sizeof(float), vocab, stream));
    }
    if (given(out.dbias) && !out.dbias.empty()) {
      WARPFUSE_CUDA_CHECK(cudaMemsetAsync(out.dbias.data, 0, vocab * sizeof(float), stream));
    }
  }

  const GemmPrecision gemm_precision = options.precision;
  const MatrixView<const T> bias_row(bias.data, 1, vocab, vocab);
  for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const std::int64_t n = std::min(chunk, rows - r0);
    const MatrixView<const T> h(hidden.data + r0 * hidden.ld, n, d, hidden.ld);
    const MatrixView<T> z(logits, n, vocab, layout.logits_ld);
    const MatrixView<const T> ones_column(ones, n, 1, 1);
    // 1. z = h W^T (+ 1 b^T): the bias first (exact: k = 1), then the product added to it, so z is
    //    rounded to T once.
    if (has_bias) {
      gemm<T>(blas, false, false, 1.0f, ones_column, bias_row, 0.0f, z, GemmPrecision::fp32,
              stream);
    }
    gemm<T>(blas, false, true, 1.0f, h, weight, has_bias ? 1.0f : 0.0f, z, gemm_precision, stream);
    // 2. The loss of these rows and dz in place.
    CrossEntropyOutputs<T> rows_out;
    if (gradient) rows_out.dlogits = z;
    const auto slice = [&](VectorView<float> v) {
      return given(v) ? VectorView<float>(v.data + r0, n) : VectorView<float>{};
    };
    rows_out.logsumexp = slice(out.logsumexp);
    rows_out.z_loss_term = slice(out.z_loss_term);
    rows_out.correct = slice(out.correct);
    rows_out.entropy = slice(out.entropy);
    float* row_loss = ce.reduction == CrossEntropyReduction::none ? out.loss.data + r0
                                                                  : scratch.row_partials + r0;
    detail::launch_cross_entropy_rows(
        kOp, MatrixView<const T>(z),
        detail::IndexTargets<Index>{targets.data + r0, ce.ignore_index}, rows_out, ce, class_weight,
        row_loss, ce.grad_scale, mean, scratch.header, r0, stream);
    if (!gradient) continue;
    // 3. The backward GEMMs from dz (T), accumulated in fp32.
    const MatrixView<const T> dz(z);
    const float beta = r0 == 0 && !options.accumulate ? 0.0f : 1.0f;
    if (given(out.dhidden)) {
      const MatrixView<float> dh(out.dhidden.data + r0 * out.dhidden.ld, n, d, out.dhidden.ld);
      gemm<T>(blas, false, false, 1.0f, dz, weight, 0.0f, dh, gemm_precision, stream);
    }
    if (given(out.dweight)) {
      gemm<T>(blas, true, false, 1.0f, dz, h, beta, out.dweight, gemm_precision, stream);
    }
    if (given(out.dbias)) {
      gemm<T>(blas, true, false, 1.0f, ones_column, dz, beta,
              MatrixView<float>(out.dbias.data, 1, vocab, vocab), GemmPrecision::fp32, stream);
    }
  }
  detail::launch_cross_entropy_reduce(ce.reduction, false, rows, scratch, out.loss.data, stream);

  // --- the T copies
  if (given(out.dhidden_copy)) {
    launch_round_copy<T>(MatrixView<const float>(out.dhidden), out.dhidden_copy, stream);
  }
  if (given(out.dweight_copy)) {
    launch_round_copy<T>(MatrixView<const float>(out.dweight), out.dweight_copy, stream);
  }
  if (given(out.dbias_copy)) {
    launch_round_copy<T>(MatrixView<const float>(out.dbias.data, 1, vocab, vocab),
                         MatrixView<T>(out.dbias_copy.data, 1, vocab, vocab), stream);
  }
}

}  // namespace

std::size_t linear_cross_entropy_workspace_bytes(std::int64_t rows, std::int64_t vocab, DType dtype,
                                                 std::int64_t chunk_rows) {
  const char* query = "linear_cross_entropy_workspace_bytes";
  check_sizes(query, rows, vocab, chunk_rows);
  const auto element = static_cast<std::int64_t>(detail::dtype_bytes(dtype));
  const Layout l = layout_for(rows, vocab, element, requested_chunk(rows, chunk_rows));
  if (l.bytes < 0) {
    throw InvalidArgument(query, "vocab",
                          std::to_string(vocab) + " classes in chunks of " +
                              std::to_string(requested_chunk(rows, chunk_rows)) +
                              " rows overflow a 64-bit byte count");
  }
  return static_cast<std::size_t>(l.bytes);
}

std::int64_t linear_cross_entropy_chunk_rows(std::int64_t rows, std::int64_t vocab, DType dtype,
                                             std::size_t workspace_bytes, std::int64_t chunk_rows) {
  check_sizes("linear_cross_entropy_chunk_rows", rows, vocab, chunk_rows);
  return chunk_for(rows, vocab, static_cast<std::int64_t>(detail::dtype_bytes(dtype)),
                   workspace_bytes, chunk_rows);
}

template <class T, class Index>
void linear_cross_entropy(Blas& blas, nondeduced_t<MatrixView<const T>> hidden,
                          nondeduced_t<MatrixView<const T>> weight,
                          nondeduced_t<VectorView<const T>> bias, VectorView<Index> targets,
                          const LinearCrossEntropyOutputs<T>& outputs, const Workspace& workspace,
                          const LinearCrossEntropyOptions& options,
                          VectorView<const float> class_weight, cudaStream_t stream) {
  using I = std::remove_const_t<Index>;
  static_assert(std::is_same_v<I, std::int32_t> || std::is_same_v<I, std::int64_t>,
                "linear_cross_entropy: class indices are std::int32_t or std::int64_t");
  run<T, I>(blas, hidden, weight, bias, VectorView<const I>(targets), outputs, workspace, options,
            class_weight, stream);
}

#define WARPFUSE_INSTANTIATE_LINEAR_CE_INDEX(T, Index)                                         \
  template void linear_cross_entropy<T, Index>(                                                \
      Blas&, MatrixView<const T>, MatrixView<const T>, VectorView<const T>, VectorView<Index>, \
      const LinearCrossEntropyOutputs<T>&, const Workspace&, const LinearCrossEntropyOptions&, \
      VectorView<const float>, cudaStream_t);
#define WARPFUSE_INSTANTIATE_LINEAR_CE(T)                     \
  WARPFUSE_INSTANTIATE_LINEAR_CE_INDEX(T, std::int32_t)       \
  WARPFUSE_INSTANTIATE_LINEAR_CE_INDEX(T, const std::int32_t) \
  WARPFUSE_INSTANTIATE_LINEAR_CE_INDEX(T, std::int64_t)       \
  WARPFUSE_INSTANTIATE_LINEAR_CE_INDEX(T, const std::int64_t)
WARPFUSE_INSTANTIATE_LINEAR_CE(float)
WARPFUSE_INSTANTIATE_LINEAR_CE(__half)
WARPFUSE_INSTANTIATE_LINEAR_CE(__nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_LINEAR_CE
#undef WARPFUSE_INSTANTIATE_LINEAR_CE_INDEX

}  // namespace warpfuse
