// warpfuse::ref — the trainer's CPU backend (warpfuse::nn on Device::cpu): what it needs beyond the
// reference ops it calls for float (activations, softmax, the optimizer, the metrics).
//
// GEMMs through CBLAS (OpenBLAS), the bias helpers, and nn_loss: Keras' per-sample losses and the
// gradient of the batch mean, computed by the reference's elementwise losses and cross-entropy
// (the oracles of the CUDA ops, so both devices share one formula) with only the Keras
// reductions done here. Matrices are row-major with rows = samples; a Dense layer's kernel W is
// (inputs x units) as in Keras. Column sums run in a fixed order, so results are bitwise
// reproducible run to run.
#pragma once

#include <cstdint>

#include "warpfuse/nn/config.h"

namespace warpfuse::ref {

/// C = alpha op(A) op(B) + beta C for row-major float matrices (op = transpose when asked):
/// op(A) is m x k, op(B) is k x n, C is m x n; lda, ldb, ldc are the row strides as stored.
/// precision bf16: sgemm_bf16 below (on AMX where the CPU has it).
void sgemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
           const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
           std::int64_t ldc, nn::MatmulPrecision precision = nn::MatmulPrecision::fp32);

/// sgemm with both operands rounded to bfloat16 (nearest even, NaN stays NaN), exact products
/// and fp32 sums. With `use_amx` and an AMX-BF16 CPU (cpu_has_amx_bf16()) it runs on the tile
/// unit; otherwise it rounds into float copies and calls CBLAS (same products, other sum order).
/// beta 0: C is not read. Scratch grows per thread and is kept (no allocation per call).
void sgemm_bf16(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                float beta, float* c, std::int64_t ldc, bool use_amx = true);

/// The CPU has AMX-BF16 and AVX512-BF16 and the OS grants this process the tile state; false when
/// the environment sets WARPFUSE_CPU_AMX=0. Checked once.
bool cpu_has_amx_bf16();

/// Caps the threads sgemm, sgemm_bf16 and the optimizer step may use (default: OpenBLAS's own
/// count, OPENBLAS_NUM_THREADS or one per core). sgemm keeps OpenBLAS itself single-threaded
/// (openblas_set_num_threads(1) on first use, process-wide) and splits a product of at least 2 M
/// multiply-adds into slabs of C that the threads multiply at once; smaller products run on the
/// caller. One set of threads serves the GEMMs and the work between them, so more threads never
/// make a small network slower.
void set_blas_threads(int threads);

/// z[r][c] += bias[c].
void nn_add_bias(float* z, std::int64_t rows, std::int64_t cols, const float* bias);

/// sums[c] = sum over r of x[r][c], in row order.
void nn_column_sums(const float* x, std::int64_t rows, std::int64_t cols, float* sums);

/// The loss summed over the rows of a batch (Keras' per-sample loss: the mean over columns for
/// mse, mae, huber and binary crossentropy, the sum for the categorical ones), and, when `grad` is
/// not null, the gradient of the batch MEAN with respect to `input`.
///
/// `input` holds logits when `logits` is true: a crossentropy applies softmax (categorical,
/// sparse) or the logistic function (binary) itself, in log space, and the gradient is the
/// stable (p - y) form. The trainer passes the pre-activation of a softmax / sigmoid output layer
/// this way, fusing activation and loss as Keras does. Otherwise a crossentropy reads
/// probabilities, clipped to [1e-7, 1 - 1e-7] (Keras' epsilon). Sparse `y` is one column of class
/// indices (validated by the caller); other losses read y with as many columns as `input`.
double nn_loss(const nn::Loss& loss, bool logits, const float* input, const float* y,
               std::int64_t rows, std::int64_t cols, float* grad);

}  // namespace warpfuse::ref
