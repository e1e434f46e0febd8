// warpfuse::nn internals — the GEMM wrapper (gemm.h).
#include "host/nn/gemm.h"

#if defined(WARPFUSE_SIMT)
#include "warpfuse/ref/nn_cpu.h"
#else
#include <cublas_v2.h>  // types and status codes; the library itself is opened at run time
#include <dlfcn.h>

#include <cstddef>
#include <string>

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

namespace {

/// cuBLAS, opened (dlopen) when the first CUDA model is compiled: a program that links the trainer
/// but trains on the CPU, or only prints --help, never maps libcublas and libcublasLt (about
/// 200 MiB of resident memory at start-up when they were linked).
struct Cublas {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSetWorkspace_v2) set_workspace = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  // cublasGemmEx is overloaded in C++ (cuBLAS 13): the C entry point's type, spelled out.
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                            const void*, const void*, cudaDataType, int, const void*, cudaDataType,
                            int, const void*, void*, cudaDataType, int, cublasComputeType_t,
                            cublasGemmAlgo_t) = nullptr;
  decltype(&cublasGetStatusName) status_name = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
};

template <class F>
void bind(void* library, const char* symbol, F& f, const std::string& file) {
  f = reinterpret_cast<F>(dlsym(library, symbol));
  if (f == nullptr) {
    throw Error(ErrorKind::cublas, "nn: " + file + " has no " + symbol + " (" +
                                       std::string(dlerror() != nullptr ? dlerror() : "?") + ")");
  }
}

const Cublas& cublas() {
  static const Cublas api = [] {
    const std::string file = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* library = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char* why = dlerror();
      throw Error(ErrorKind::cublas, "nn: the CUDA backend needs " + file + " (cuBLAS), which " +
                                         "could not be loaded: " + (why != nullptr ? why : "?"));
    }
    Cublas c;
    bind(library, "cublasCreate_v2", c.create, file);
    bind(library, "cublasDestroy_v2", c.destroy, file);
    bind(library, "cublasSetStream_v2", c.set_stream, file);
    bind(library, "cublasSetMathMode", c.set_math_mode, file);
    bind(library, "cublasSetWorkspace_v2", c.set_workspace, file);
    bind(library, "cublasSgemm_v2", c.sgemm, file);
    bind(library, "cublasGemmEx", c.gemm_ex, file);
    bind(library, "cublasGetStatusName", c.status_name, file);
    bind(library, "cublasGetStatusString", c.status_string, file);
    return c;  // the library stays open for the process
  }();
  return api;
}

void check(cublasStatus_t status, const char* call, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const Cublas& c = cublas();
  ::warpfuse::detail::throw_cublas_error(status, call, __FILE__, line, c.status_name(status),
                                         c.status_string(status));
}

}  // namespace

// WARPFUSE_CUBLAS_CHECK for the entry points opened above.
#define WARPFUSE_NN_CUBLAS_CHECK(call) check((call), #call, __LINE__)

Gemm::Gemm(cudaStream_t stream) {
  cublasHandle_t handle = nullptr;
  WARPFUSE_NN_CUBLAS_CHECK(cublas().create(&handle));
  handle_ = handle;
  WARPFUSE_NN_CUBLAS_CHECK(cublas().set_stream(handle, stream));
  // The default math mode keeps sgemm in fp32 (no TF32 tensor cores, which would need
  // CUBLAS_TF32_TENSOR_OP_MATH): the CUDA model must agree with the CPU one within float tolerance.
  WARPFUSE_NN_CUBLAS_CHECK(cublas().set_math_mode(handle, CUBLAS_DEFAULT_MATH));
  // The training step is captured as a CUDA Graph: give cuBLAS its workspace up front so it
  // never allocates during capture (32 MiB, NVIDIA's recommendation for Hopper).
  constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;
  try {
    WARPFUSE_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
    WARPFUSE_NN_CUBLAS_CHECK(cublas().set_workspace(handle, workspace_, kWorkspaceBytes));
  } catch (...) {
    // A throwing constructor runs no destructor: release what we hold.
    static_cast<void>(cublas().destroy(handle));
    if (workspace_ != nullptr) static_cast<void>(cudaFree(workspace_));
    throw;
  }
}

Gemm::~Gemm() {
  if (handle_ != nullptr) static_cast<void>(cublas().destroy(static_cast<cublasHandle_t>(handle_)));
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
    WARPFUSE_NN_CUBLAS_CHECK(cublas().gemm_ex(
        static_cast<cublasHandle_t>(handle_), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
        trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
        static_cast<int>(k), &alpha, b, CUDA_R_32F, static_cast<int>(ldb), a, CUDA_R_32F,
        static_cast<int>(lda), &beta, c, CUDA_R_32F, static_cast<int>(ldc),
        CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    return;
  }
  WARPFUSE_NN_CUBLAS_CHECK(
      cublas().sgemm(static_cast<cublasHandle_t>(handle_), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                     trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                     static_cast<int>(k), &alpha, b, static_cast<int>(ldb), a,
                     static_cast<int>(lda), &beta, c, static_cast<int>(ldc)));
}

#endif

}  // namespace warpfuse::nn::detail
