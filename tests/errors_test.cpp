// Tests of the error model (include/warpfuse/error.h, cublas_check.h): kinds, and the content of
// every message. One body, in the emulated and the GPU binaries; cudart's strings come from
// whichever runtime the binary links.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "host/cuda/launch.h"
#include "test_util.h"
#include "warpfuse/cublas_check.h"
#include "warpfuse/error.h"

namespace warpfuse::test {
namespace {

using ::testing::HasSubstr;

cudaError_t returns(cudaError_t code) {
  return code;
}
cublasStatus_t returns_status(cublasStatus_t status) {
  return status;
}

TEST(Errors, CudaCheckNamesCallFileLineAndCudartMessage) {
  int line = 0;
  try {
    line = __LINE__ + 1;
    WARPFUSE_CUDA_CHECK(returns(cudaErrorInvalidValue));
    FAIL() << "no exception";
  } catch (const CudaError& error) {
    const std::string what = error.what();
    EXPECT_EQ(error.kind(), ErrorKind::cuda);
    EXPECT_EQ(error.code(), cudaErrorInvalidValue);
    EXPECT_THAT(what, HasSubstr("cudaErrorInvalidValue"));
    EXPECT_THAT(what, HasSubstr("(1)"));
    EXPECT_THAT(what, HasSubstr("returns(cudaErrorInvalidValue)"));
    EXPECT_THAT(what, HasSubstr("errors_test.cpp:" + std::to_string(line)));
    EXPECT_THAT(what, HasSubstr(cudaGetErrorString(cudaErrorInvalidValue)));
    EXPECT_THAT(what, HasSubstr("invalid argument"));
  }
}

TEST(Errors, CudaCheckPassesSuccessAndEvaluatesOnce) {
  int calls = 0;
  const auto counted = [&calls] {
    ++calls;
    return cudaSuccess;
  };
  WARPFUSE_CUDA_CHECK(counted());
  EXPECT_EQ(calls, 1);
}

TEST(Errors, CublasCheckNamesCallFileLineAndStatus) {
  try {
    WARPFUSE_CUBLAS_CHECK(returns_status(CUBLAS_STATUS_INVALID_VALUE));
    FAIL() << "no exception";
  } catch (const CublasError& error) {
    const std::string what = error.what();
    EXPECT_EQ(error.kind(), ErrorKind::cublas);
    EXPECT_EQ(error.status(), static_cast<int>(CUBLAS_STATUS_INVALID_VALUE));
    EXPECT_THAT(what, HasSubstr("CUBLAS_STATUS_INVALID_VALUE"));
    EXPECT_THAT(what, HasSubstr("returns_status(CUBLAS_STATUS_INVALID_VALUE)"));
    EXPECT_THAT(what, HasSubstr("errors_test.cpp:"));
    EXPECT_THAT(what, HasSubstr(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE)));
  }
  WARPFUSE_CUBLAS_CHECK(returns_status(CUBLAS_STATUS_SUCCESS));
}

TEST(Errors, KindsAndMessages) {
  const InvalidArgument invalid("softmax", "x", "rows = -1 is negative");
  EXPECT_EQ(invalid.kind(), ErrorKind::invalid_argument);
  EXPECT_STREQ(invalid.what(), "warpfuse::softmax: argument 'x': rows = -1 is negative");
  EXPECT_EQ(invalid.op(), "softmax");
  EXPECT_EQ(invalid.argument(), "x");
  const Unsupported unsupported("softmax", "strategy block needs 300000 columns in shared memory");
  EXPECT_EQ(unsupported.kind(), ErrorKind::unsupported);
  EXPECT_THAT(std::string(unsupported.what()), HasSubstr("warpfuse::softmax: unsupported: "));
  const IoError io("model.wf: truncated");
  EXPECT_EQ(io.kind(), ErrorKind::io);
  EXPECT_STREQ(to_string(ErrorKind::io), "io");
  EXPECT_STREQ(to_string(ErrorKind::invalid_argument), "invalid_argument");
  // Every kind is caught as warpfuse::Error and as std::runtime_error.
  EXPECT_THROW(throw InvalidArgument("a", "b", "c"), Error);
  EXPECT_THROW(throw Unsupported("a", "b"), std::runtime_error);
  EXPECT_THROW(throw IoError("x"), Error);
}

__global__ void noop_kernel(int* out) {
  if (out != nullptr) out[threadIdx.x] = 1;
}

class LaunchCheck : public DeviceTest {};

TEST_F(LaunchCheck, BadConfigurationNamesTheKernelAndLeavesTheContextUsable) {
  try {
    detail::launch(detail::LaunchConfig{dim3(0), dim3(32)}, "noop_kernel", noop_kernel,
                   static_cast<int*>(nullptr));
    FAIL() << "an empty grid must be rejected";
  } catch (const CudaError& error) {
    EXPECT_EQ(error.code(), cudaErrorInvalidConfiguration);
    EXPECT_THAT(std::string(error.what()), HasSubstr("launch of kernel noop_kernel"));
    EXPECT_THAT(std::string(error.what()), HasSubstr("cudaErrorInvalidConfiguration"));
  }
  DeviceBuffer<int> out = poisoned_buffer<int>(32);
  detail::launch(detail::LaunchConfig{dim3(1), dim3(32)}, "noop_kernel", noop_kernel, out.data());
  WARPFUSE_CUDA_CHECK(cudaDeviceSynchronize());
  for (int value : out.to_host()) EXPECT_EQ(value, 1);
}

}  // namespace
}  // namespace warpfuse::test
