// warpfuse::nn internals — the one GEMM wrapper of the CUDA backend.
//
// Row-major C = alpha op(A) op(B) + beta C on fp32 device memory, on the backend's stream, through
// the library's public warpfuse::gemm (cuBLAS; CBLAS in the emulated build), like any user.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "warpfuse/gemm.h"
#include "warpfuse/nn/config.h"

namespace warpfuse::nn::detail {

class Gemm {
 public:
  explicit Gemm(cudaStream_t stream) : stream_(stream) {}

  /// op(A) is m x k, op(B) is k x n, C is m x n; lda, ldb, ldc are row strides as stored.
  /// precision bf16: operands rounded to bf16, fp32 sums (GemmPrecision::bf16).
  void operator()(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                  float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                  float beta, float* c, std::int64_t ldc,
                  MatmulPrecision precision = MatmulPrecision::fp32);

 private:
  Blas blas_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace warpfuse::nn::detail
