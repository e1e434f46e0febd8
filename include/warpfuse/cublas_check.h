// warpfuse — the cuBLAS checking macro (the CUDA one is in <warpfuse/error.h>).
#pragma once

#include <cublas_api.h>

#include <string>

#include "warpfuse/error.h"

namespace warpfuse::detail {

/// The error for `status` with cuBLAS's own name and description of it (passed in, so a caller
/// that opened cuBLAS at run time can supply them from there).
[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call,
                                            const char* file, int line, const char* name,
                                            const char* description) {
  throw CublasError(static_cast<int>(status), "cuBLAS error " + std::string(name) + " (" +
                                                  std::to_string(static_cast<int>(status)) +
                                                  ") in " + call + " at " + file + ":" +
                                                  std::to_string(line) + ": " + description);
}
[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call,
                                            const char* file, int line) {
  throw_cublas_error(status, call, file, line, cublasGetStatusName(status),
                     cublasGetStatusString(status));
}

}  // namespace warpfuse::detail

/// Evaluates a cuBLAS call once; throws warpfuse::CublasError naming the call, file:line and
/// cuBLAS's description when it does not return CUBLAS_STATUS_SUCCESS.
#define WARPFUSE_CUBLAS_CHECK(call)                                                         \
  do {                                                                                      \
    const cublasStatus_t wf_cublas_status_ = (call);                                        \
    if (wf_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                       \
      ::warpfuse::detail::throw_cublas_error(wf_cublas_status_, #call, __FILE__, __LINE__); \
    }                                                                                       \
  } while (0)
