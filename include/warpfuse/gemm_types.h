// warpfuse — how a GEMM multiplies, without CUDA: shared by the library's GEMM (<warpfuse/gemm.h>),
// the CPU reference's sgemm (<warpfuse/ref/nn_cpu.h>) and the trainer (nn::MatmulPrecision).
#pragma once

namespace warpfuse {

/// For fp32 operands:
///   fp32  fp32 products and sums (cuBLAS's default math: no TF32);
///   bf16  each operand rounded to bfloat16 (nearest even), exact products, fp32 sums
///         (CUBLAS_COMPUTE_32F_FAST_16BF; PyTorch's set_float32_matmul_precision("medium")).
/// 16-bit operands always multiply exactly and sum in fp32.
enum class GemmPrecision { fp32, bf16 };

}  // namespace warpfuse
