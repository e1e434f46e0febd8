// warpfuse — row-major GEMMs on the caller's stream: C = alpha op(A) op(B) + beta C, fp32
// accumulation, through cuBLAS (the one cuBLAS wrapper of the library, the trainer and
// linear_cross_entropy).
//
//   op(A) is m x k, op(B) is k x n, C is m x n (op = transpose when asked); every matrix is a
//   row-major view (row stride ld) of device memory. A and B are one type T (float, __half,
//   __nv_bfloat16); C is float or T. Products and sums are fp32 (16-bit operands: exact products);
//   a 16-bit C is rounded once. GemmPrecision::bf16 rounds fp32 operands to bf16 first
//   (CUBLAS_COMPUTE_32F_FAST_16BF); 16-bit operands ignore it. beta = 0: C is not read (NaN in it
//   is overwritten).
//
// cuBLAS is opened at run time (dlopen of libcublas.so.<major> on the first Blas): a program that
// links warpfuse but never multiplies maps no cuBLAS. A Blas owns a cuBLAS handle and a 32 MiB
// workspace given to cuBLAS up front, so no call allocates: safe under CUDA Graph capture. One
// Blas serves any stream, one call at a time (it is not thread-safe; use one per host thread).
//
// Checks (warpfuse::InvalidArgument naming the op 'gemm' and the argument): views valid, shapes
// agreeing, every dimension and row stride below 2^31 (cuBLAS's int), C sharing no byte with A or
// B. An empty C launches nothing; k = 0 gives C = beta C.
//
// The emulated build (WARPFUSE_SIMT) runs the same calls through CBLAS in stream order (16-bit
// operands widened to float: the same exact products, summed in another order).
#pragma once

#include <cuda_runtime_api.h>

#include "warpfuse/gemm_types.h"
#include "warpfuse/view.h"

namespace warpfuse {

/// A cuBLAS handle and its workspace (see above). Throws CublasError when cuBLAS cannot be loaded
/// or initialised, CudaError when the workspace cannot be allocated.
class Blas {
 public:
  Blas();
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  /// The cuBLAS handle (cublasHandle_t), for a caller that adds its own cuBLAS calls; null in the
  /// emulated build.
  void* handle() const { return handle_; }

 private:
  void* handle_ = nullptr;     // cublasHandle_t, opaque so this header needs no cuBLAS
  void* workspace_ = nullptr;  // cuBLAS's workspace
};

/// C = alpha op(A) op(B) + beta C (see above). Instantiated for T = float, __half,
/// __nv_bfloat16 with TC = float or T; T is named at the call: gemm<__nv_bfloat16>(...).
template <class T, class TC>
void gemm(Blas& blas, bool trans_a, bool trans_b, float alpha, nondeduced_t<MatrixView<const T>> a,
          nondeduced_t<MatrixView<const T>> b, float beta, MatrixView<TC> c,
          GemmPrecision precision = GemmPrecision::fp32, cudaStream_t stream = nullptr);

}  // namespace warpfuse
