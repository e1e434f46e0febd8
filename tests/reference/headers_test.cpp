// The public headers compile with a plain C++17 compiler (g++, no nvcc) and say what they promise.
// This translation unit is built by the host compiler only, with the CUDA toolkit's include path.
#include <warpfuse/warpfuse.h>

#include <gtest/gtest.h>

#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#error "headers_test.cpp must be compiled by a plain C++ compiler"
#endif

namespace {

static_assert(warpfuse::dtype_of<float>() == warpfuse::DType::f32);
static_assert(warpfuse::dtype_of<__half>() == warpfuse::DType::f16);
static_assert(warpfuse::dtype_of<__nv_bfloat16>() == warpfuse::DType::bf16);
static_assert(std::is_base_of_v<std::runtime_error, warpfuse::Error>);
static_assert(std::is_base_of_v<warpfuse::Error, warpfuse::CudaError>);
static_assert(std::is_base_of_v<warpfuse::Error, warpfuse::CublasError>);
static_assert(std::is_base_of_v<warpfuse::Error, warpfuse::InvalidArgument>);
static_assert(std::is_base_of_v<warpfuse::Error, warpfuse::Unsupported>);
static_assert(std::is_base_of_v<warpfuse::Error, warpfuse::IoError>);
static_assert(warpfuse::activation_backward_from(warpfuse::Activation::relu) ==
              warpfuse::BackwardFrom::output);

TEST(Headers, VersionMatchesTheCMakeProject) {
  EXPECT_STREQ(warpfuse::kVersion, WARPFUSE_EXPECTED_VERSION);
}

TEST(Headers, DtypeNames) {
  EXPECT_STREQ(warpfuse::dtype_name(warpfuse::DType::f32), "f32");
  EXPECT_STREQ(warpfuse::dtype_name(warpfuse::DType::f16), "f16");
  EXPECT_STREQ(warpfuse::dtype_name(warpfuse::DType::bf16), "bf16");
}

TEST(Headers, ViewsOnHostMemory) {
  float data[12];
  const warpfuse::MatrixView<float> view(data, 3, 4);
  const warpfuse::MatrixView<const float> as_const = view;
  EXPECT_EQ(as_const.ld, 4);
  EXPECT_EQ(as_const.size(), 12);
  EXPECT_TRUE(as_const.contiguous());
  EXPECT_FALSE(warpfuse::MatrixView<float>(data, 2, 4, 6).contiguous());
  EXPECT_TRUE(warpfuse::MatrixView<float>(data, 1, 4, 6).contiguous());
}

}  // namespace
