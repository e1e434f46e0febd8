// warpfuse — the error model (DESIGN.md section 5).
//
// Every failure leaves the library as an exception derived from warpfuse::Error, whose kind() says
// what went wrong:
//   invalid_argument  a caller's argument is wrong; the message names the op, the argument and its
//                     value ("warpfuse::softmax: argument 'x': ld = 3 is less than cols = 8")
//   cuda              a CUDA runtime call or a kernel launch failed; the message carries the call,
//                     file:line, the error's name and cudart's description of it
//   cublas            a cuBLAS call failed; same shape, with cuBLAS's status name and description
//   unsupported       the arguments are valid but this configuration cannot run (a strategy forced
//                     on a row too long for it, a dtype an op does not offer)
//   io                reading or writing a file failed, or its contents are not in the expected
//   format
// Library code never calls exit() or abort(); it throws.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace warpfuse {

namespace detail {
/// A number as printf's %g writes it, for error messages: 1e-09, not std::to_string's 0.000000
/// (the one number formatter of the library's and the trainer's messages).
inline std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}
}  // namespace detail

enum class ErrorKind { invalid_argument, cuda, cublas, unsupported, io };

/// "invalid_argument", "cuda", "cublas", "unsupported" or "io".
inline const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_argument:
      return "invalid_argument";
    case ErrorKind::cuda:
      return "cuda";
    case ErrorKind::cublas:
      return "cublas";
    case ErrorKind::unsupported:
      return "unsupported";
    case ErrorKind::io:
      return "io";
  }
  return "unknown";
}

/// Base of every exception warpfuse throws.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

/// A caller's argument is invalid. op() is the public op ("softmax"), argument() the parameter.
class InvalidArgument : public Error {
 public:
  InvalidArgument(std::string op, std::string argument, const std::string& problem)
      : Error(ErrorKind::invalid_argument,
              "warpfuse::" + op + ": argument '" + argument + "': " + problem),
        op_(std::move(op)),
        argument_(std::move(argument)) {}
  const std::string& op() const noexcept { return op_; }
  const std::string& argument() const noexcept { return argument_; }

 private:
  std::string op_;
  std::string argument_;
};

/// Valid arguments, but a configuration this build or device cannot run.
class Unsupported : public Error {
 public:
  Unsupported(const std::string& op, const std::string& problem)
      : Error(ErrorKind::unsupported, "warpfuse::" + op + ": unsupported: " + problem) {}
};

/// A CUDA runtime call or kernel launch failed. code() is the cudaError_t value.
class CudaError : public Error {
 public:
  CudaError(cudaError_t code, const std::string& call, const char* file, int line)
      : Error(ErrorKind::cuda, format(code, call, file, line)), code_(code) {}
  cudaError_t code() const noexcept { return code_; }

 private:
  static std::string format(cudaError_t code, const std::string& call, const char* file, int line) {
    return "CUDA error " + std::string(cudaGetErrorName(code)) + " (" +
           std::to_string(static_cast<int>(code)) + ") in " + call + " at " + file + ":" +
           std::to_string(line) + ": " + cudaGetErrorString(code);
  }
  cudaError_t code_;
};

/// A cuBLAS call failed. status() is the cublasStatus_t value (see <warpfuse/cublas_check.h>).
class CublasError : public Error {
 public:
  CublasError(int status, const std::string& message)
      : Error(ErrorKind::cublas, message), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

/// Reading or writing a file failed, or its contents are malformed.
class IoError : public Error {
 public:
  explicit IoError(const std::string& message) : Error(ErrorKind::io, message) {}
};

namespace detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t code, const char* call, const char* file,
                                          int line) {
  throw CudaError(code, call, file, line);
}

/// The check that follows every kernel launch: a bad configuration or a missing kernel image is
/// reported by cudaGetLastError right after the launch, named after the kernel.
inline void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t code = cudaGetLastError();
  if (code != cudaSuccess) {
    throw_cuda_error(code, (std::string("launch of kernel ") + kernel).c_str(), file, line);
  }
}

}  // namespace detail
}  // namespace warpfuse

/// Evaluates a CUDA runtime call once; throws warpfuse::CudaError naming the call, file:line and
/// cudart's description when it does not return cudaSuccess.
#define WARPFUSE_CUDA_CHECK(call)                                                       \
  do {                                                                                  \
    const cudaError_t wf_cuda_status_ = (call);                                         \
    if (wf_cuda_status_ != cudaSuccess) {                                               \
      ::warpfuse::detail::throw_cuda_error(wf_cuda_status_, #call, __FILE__, __LINE__); \
    }                                                                                   \
  } while (0)
