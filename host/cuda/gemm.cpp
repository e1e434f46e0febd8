// warpfuse host — the GEMM (<warpfuse/gemm.h>): cuBLAS opened at run time, or CBLAS in the
// emulated build.
#include "warpfuse/gemm.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "host/cuda/common.h"
#include "warpfuse/error.h"

#if defined(WARPFUSE_SIMT)
#include "kernels/common/convert.cuh"
#include "warpfuse/ref/nn_cpu.h"
#else
#include <cublas_v2.h>  // types and status codes; the library itself is opened at run time
#include <dlfcn.h>

#include "warpfuse/cublas_check.h"
#endif

namespace warpfuse {
namespace {

constexpr const char* kOp = "gemm";

/// Checks the call; returns false when C is empty (nothing to do).
template <class T, class TC>
bool check_gemm(bool trans_a, bool trans_b, MatrixView<const T> a, MatrixView<const T> b,
                MatrixView<TC> c, GemmPrecision precision) {
  detail::check_view(kOp, "a", a);
  detail::check_view(kOp, "b", b);
  detail::check_view(kOp, "c", c);
  const int p = static_cast<int>(precision);
  if (p < 0 || p > static_cast<int>(GemmPrecision::bf16)) {
    throw InvalidArgument(kOp, "precision", std::to_string(p) + " is not a GemmPrecision");
  }
  const std::int64_t m = trans_a ? a.cols : a.rows, k = trans_a ? a.rows : a.cols;
  const std::int64_t kb = trans_b ? b.cols : b.rows, n = trans_b ? b.rows : b.cols;
  if (k != kb) {
    throw InvalidArgument(kOp, "b",
                          "op(a) is " + std::to_string(m) + " x " + std::to_string(k) +
                              " but op(b) is " + std::to_string(kb) + " x " + std::to_string(n));
  }
  if (c.rows != m || c.cols != n) {
    throw InvalidArgument(kOp, "c",
                          std::to_string(c.rows) + " x " + std::to_string(c.cols) +
                              " but op(a) op(b) is " + std::to_string(m) + " x " +
                              std::to_string(n));
  }
  detail::check_cublas_dims(kOp, "a", a);
  detail::check_cublas_dims(kOp, "b", b);
  detail::check_cublas_dims(kOp, "c", c);
  detail::check_disjoint(kOp, "c", detail::span_of(c), "a", detail::span_of(a));
  detail::check_disjoint(kOp, "c", detail::span_of(c), "b", detail::span_of(b));
  return !c.empty();
}

#if defined(WARPFUSE_SIMT)

/// A matrix as stored, widened to a dense float copy.
template <class V>
std::vector<float> widened(MatrixView<const V> m) {
  std::vector<float> out(static_cast<std::size_t>(m.rows * m.cols));
  for (std::int64_t r = 0; r < m.rows; ++r) {
    for (std::int64_t col = 0; col < m.cols; ++col)
      out[r * m.cols + col] = detail::to_float(m.data[r * m.ld + col]);
  }
  return out;
}

#else

/// cuBLAS, opened (dlopen) when the first Blas is made: a program that links warpfuse but never
/// multiplies (or trains on the CPU, or only prints --help) never maps libcublas and libcublasLt
/// (about 200 MiB of resident memory at start-up when they were linked).
struct Cublas {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSetWorkspace_v2) set_workspace = nullptr;
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
    throw CublasError(0, "gemm: " + file + " has no " + symbol + " (" +
                             std::string(dlerror() != nullptr ? dlerror() : "?") + ")");
  }
}

const Cublas& cublas() {
  static const Cublas api = [] {
    const std::string file = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* library = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char* why = dlerror();
      throw CublasError(
          0, "gemm: warpfuse's GEMMs need " + file +
                 " (cuBLAS), which could not be loaded: " + (why != nullptr ? why : "?"));
    }
    Cublas c;
    bind(library, "cublasCreate_v2", c.create, file);
    bind(library, "cublasDestroy_v2", c.destroy, file);
    bind(library, "cublasSetStream_v2", c.set_stream, file);
    bind(library, "cublasSetMathMode", c.set_math_mode, file);
    bind(library, "cublasSetWorkspace_v2", c.set_workspace, file);
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
  detail::throw_cublas_error(status, call, __FILE__, line, c.status_name(status),
                             c.status_string(status));
}

// WARPFUSE_CUBLAS_CHECK for the entry points opened above.
#define WARPFUSE_OPENED_CUBLAS_CHECK(call) check((call), #call, __LINE__)

template <class V>
constexpr cudaDataType data_type() {
  if constexpr (std::is_same_v<V, float>) {
    return CUDA_R_32F;
  } else if constexpr (std::is_same_v<V, __half>) {
    return CUDA_R_16F;
  } else {
    return CUDA_R_16BF;
  }
}

#endif

}  // namespace

#if defined(WARPFUSE_SIMT)

Blas::Blas() = default;
Blas::~Blas() = default;

#else

Blas::Blas() {
  cublasHandle_t handle = nullptr;
  WARPFUSE_OPENED_CUBLAS_CHECK(cublas().create(&handle));
  handle_ = handle;
  try {
    // The default math mode keeps fp32 GEMMs in fp32 (no TF32 tensor cores, which would need
    // CUBLAS_TF32_TENSOR_OP_MATH): results agree with the CPU reference within float tolerance.
    WARPFUSE_OPENED_CUBLAS_CHECK(cublas().set_math_mode(handle, CUBLAS_DEFAULT_MATH));
    // Calls may be captured into CUDA Graphs: cuBLAS gets its workspace up front so it never
    // allocates during capture (32 MiB, NVIDIA's recommendation for Hopper).
    constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;
    WARPFUSE_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
    WARPFUSE_OPENED_CUBLAS_CHECK(cublas().set_workspace(handle, workspace_, kWorkspaceBytes));
  } catch (...) {
    // A throwing constructor runs no destructor: release what we hold.
    static_cast<void>(cublas().destroy(handle));
    if (workspace_ != nullptr) static_cast<void>(cudaFree(workspace_));
    throw;
  }
}

Blas::~Blas() {
  if (handle_ != nullptr) static_cast<void>(cublas().destroy(static_cast<cublasHandle_t>(handle_)));
  if (workspace_ != nullptr) static_cast<void>(cudaFree(workspace_));
}

#endif

template <class T, class TC>
void gemm(Blas& blas, bool trans_a, bool trans_b, float alpha, nondeduced_t<MatrixView<const T>> a,
          nondeduced_t<MatrixView<const T>> b, float beta, MatrixView<TC> c,
          GemmPrecision precision, cudaStream_t stream) {
  static_assert(std::is_same_v<TC, float> || std::is_same_v<TC, T>, "gemm: C is float or T");
  if (!check_gemm<T, TC>(trans_a, trans_b, a, b, c, precision)) return;
  const std::int64_t m = c.rows, n = c.cols, k = trans_a ? a.rows : a.cols;
#if defined(WARPFUSE_SIMT)
  static_cast<void>(blas);
  // The emulator's device memory is host memory: the GEMM is host work in stream order (recorded
  // when the stream is captured, as cuBLAS's kernels would be). C is device memory it writes: the
  // access observer counts it as written (initcheck).
  ::simt::host_work(stream, "gemm", [=] {
    if (k == 0) {  // C = beta C (CBLAS would refuse the empty operands' row strides)
      for (std::int64_t r = 0; r < m; ++r) {
        for (std::int64_t col = 0; col < n; ++col) {
          TC& v = c.data[r * c.ld + col];
          v = detail::from_float<TC>(beta == 0.0f ? 0.0f : beta * detail::to_float(v));
        }
      }
    } else if constexpr (std::is_same_v<T, float> && std::is_same_v<TC, float>) {
      ref::sgemm(trans_a, trans_b, m, n, k, alpha, a.data, a.ld, b.data, b.ld, beta, c.data, c.ld,
                 precision);
    } else {
      // 16-bit operands (exact in float) or a 16-bit C: dense float copies, one rounding of C.
      const std::vector<float> wa = widened(a), wb = widened(b);
      std::vector<float> wc(static_cast<std::size_t>(m * n), 0.0f);
      if (beta != 0.0f) wc = widened(MatrixView<const TC>(c.data, m, n, c.ld));
      ref::sgemm(trans_a, trans_b, m, n, k, alpha, wa.data(), a.cols, wb.data(), b.cols, beta,
                 wc.data(), n, std::is_same_v<T, float> ? precision : GemmPrecision::fp32);
      for (std::int64_t r = 0; r < m; ++r) {
        for (std::int64_t col = 0; col < n; ++col)
          c.data[r * c.ld + col] = detail::from_float<TC>(wc[r * n + col]);
      }
    }
    ::simt::detail::observe_host_write(c.data,
                                       static_cast<std::size_t>((m - 1) * c.ld + n) * sizeof(TC));
  });
#else
  // cuBLAS is column-major: a row-major C is a column-major C^T = op(B)^T op(A)^T, so the operands
  // swap places and keep their own transposes. A row stride of 0 (an empty operand, k = 0) is
  // passed as 1, which cuBLAS requires and never reads.
  const cublasHandle_t handle = static_cast<cublasHandle_t>(blas.handle());
  WARPFUSE_OPENED_CUBLAS_CHECK(cublas().set_stream(handle, stream));
  const cublasComputeType_t compute = std::is_same_v<T, float> && precision == GemmPrecision::bf16
                                          ? CUBLAS_COMPUTE_32F_FAST_16BF
                                          : CUBLAS_COMPUTE_32F;
  const auto ld = [](std::int64_t v) { return static_cast<int>(v > 0 ? v : 1); };
  WARPFUSE_OPENED_CUBLAS_CHECK(cublas().gemm_ex(
      handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b.data, data_type<T>(),
      ld(b.ld), a.data, data_type<T>(), ld(a.ld), &beta, c.data, data_type<TC>(), ld(c.ld), compute,
      CUBLAS_GEMM_DEFAULT));
#endif
}

#define WARPFUSE_INSTANTIATE_GEMM(T, TC)                                                        \
  template void gemm<T, TC>(Blas&, bool, bool, float, MatrixView<const T>, MatrixView<const T>, \
                            float, MatrixView<TC>, GemmPrecision, cudaStream_t);
WARPFUSE_INSTANTIATE_GEMM(float, float)
WARPFUSE_INSTANTIATE_GEMM(__half, float)
WARPFUSE_INSTANTIATE_GEMM(__half, __half)
WARPFUSE_INSTANTIATE_GEMM(__nv_bfloat16, float)
WARPFUSE_INSTANTIATE_GEMM(__nv_bfloat16, __nv_bfloat16)
#undef WARPFUSE_INSTANTIATE_GEMM

}  // namespace warpfuse
