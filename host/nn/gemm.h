// warpfuse::nn internals — the one GEMM wrapper of the CUDA backend.
//
// Row-major C = alpha op(A) op(B) + beta C on device memory, on the backend's stream: cublasSgemm
// in the CUDA build (fp32 model); in the emulated build (WARPFUSE_SIMT, where device memory is
// host memory) cblas_sgemm through warpfuse::ref::sgemm, so the CUDA path runs in CI.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "warpfuse/nn/config.h"

namespace warpfuse::nn::detail {

class Gemm {
 public:
  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  /// op(A) is m x k, op(B) is k x n, C is m x n; lda, ldb, ldc are row strides as stored.
  /// precision bf16: operands rounded to bf16, fp32 sums (cuBLAS: CUBLAS_COMPUTE_32F_FAST_16BF;
  /// the emulated build: ref::sgemm_bf16).
  void operator()(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                  float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                  float beta, float* c, std::int64_t ldc,
                  MatmulPrecision precision = MatmulPrecision::fp32);

 private:
  void* handle_ = nullptr;         // cublasHandle_t, kept opaque so this header needs no cuBLAS
  void* workspace_ = nullptr;      // cuBLAS's workspace, set explicitly (see gemm.cpp)
  cudaStream_t stream_ = nullptr;  // the emulated build's GEMMs run in this stream's order
};

}  // namespace warpfuse::nn::detail
