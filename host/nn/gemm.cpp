// warpfuse::nn internals — the GEMM wrapper (gemm.h).
#include "host/nn/gemm.h"

#if defined(WARPFUSE_SIMT)
#include "warpfuse/ref/nn_cpu.h"
#else
#include <cublas_v2.h>

#include <cstddef>

#include "warpfuse/cublas_check.h"
#include "warpfuse/error.h"
#endif

namespace warpfuse::nn::detail {

#if defined(WARPFUSE_SIMT)

Gemm::Gemm(cudaStream_t stream) : stream_(stream) {}
Gemm::~Gemm() = default;

void Gemm::operator()(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                      float alpha, const float* a, std::int64_t lda, const float* b,
                      std::int64_t ldb, float beta, float* c, std::int64_t ldc,
                      MatmulPrecision precision) {
  if (m == 0 || n == 0) return;
  // The emulator's device memory is host memory: the GEMM is host work in stream order (recorded
  // when the stream is captured, as cuBLAS's kernels would be). C is device memory it writes: the
  // access observer counts it as written (initcheck).
  ::simt::host_work(stream_, "sgemm", [=] {
    ref::sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, precision);
    ::simt::detail::observe_host_write(c,
                                       static_cast<std::size_t>((m - 1) * ldc + n) * sizeof(float));
  });
}

#else

Gemm::Gemm(cudaStream_t stream) {
  cublasHandle_t handle = nullptr;
  WARPFUSE_CUBLAS_CHECK(cublasCreate(&handle));
  handle_ = handle;
  WARPFUSE_CUBLAS_CHECK(cublasSetStream(handle, stream));
  // The default math mode keeps sgemm in fp32 (no TF32 tensor cores, which would need
  // CUBLAS_TF32_TENSOR_OP_MATH): the CUDA model must agree with the CPU one within float tolerance.
  WARPFUSE_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  // The training step is captured as a CUDA Graph: give cuBLAS its workspace up front so it
  // never allocates during capture (32 MiB, NVIDIA's recommendation for Hopper).
  constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;
  try {
    WARPFUSE_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
    WARPFUSE_CUBLAS_CHECK(cublasSetWorkspace(handle, workspace_, kWorkspaceBytes));
  } catch (...) {
    // A throwing constructor runs no destructor: release what we hold.
    static_cast<void>(cublasDestroy(handle));
    if (workspace_ != nullptr) static_cast<void>(cudaFree(workspace_));
    throw;
  }
}

Gemm::~Gemm() {
  if (handle_ != nullptr) static_cast<void>(cublasDestroy(static_cast<cublasHandle_t>(handle_)));
  if (workspace_ != nullptr) static_cast<void>(cudaFree(workspace_));
}

void Gemm::operator()(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                      float alpha, const float* a, std::int64_t lda, const float* b,
                      std::int64_t ldb, float beta, float* c, std::int64_t ldc,
                      MatmulPrecision precision) {
  if (m == 0 || n == 0) return;
  // cuBLAS is column-major: a row-major C is a column-major C^T = op(B)^T op(A)^T, so the operands
  // swap places and keep their own transposes.
  if (precision == MatmulPrecision::bf16) {
    WARPFUSE_CUBLAS_CHECK(
        cublasGemmEx(static_cast<cublasHandle_t>(handle_), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                     trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                     static_cast<int>(k), &alpha, b, CUDA_R_32F, static_cast<int>(ldb), a,
                     CUDA_R_32F, static_cast<int>(lda), &beta, c, CUDA_R_32F, static_cast<int>(ldc),
                     CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    return;
  }
  WARPFUSE_CUBLAS_CHECK(
      cublasSgemm(static_cast<cublasHandle_t>(handle_), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                  static_cast<int>(k), &alpha, b, static_cast<int>(ldb), a, static_cast<int>(lda),
                  &beta, c, static_cast<int>(ldc)));
}

#endif

}  // namespace warpfuse::nn::detail
