// The public headers compile with a plain C++17 compiler (g++, no nvcc) and say what they promise.
// This translation unit is built by the host compiler only, with the CUDA toolkit's include path.
#include <warpfuse/warpfuse.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <utility>
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

// --- the one calling convention: T from the outputs, inputs nondeduced -------------------------

using warpfuse::MatrixView;
using warpfuse::VectorView;

template <class X, class Y, class = void>
struct SoftmaxAccepts : std::false_type {};
template <class X, class Y>
struct SoftmaxAccepts<
    X, Y, std::void_t<decltype(warpfuse::softmax(std::declval<X>(), std::declval<Y>()))>>
    : std::true_type {};
static_assert(SoftmaxAccepts<MatrixView<const float>, MatrixView<float>>::value);
static_assert(SoftmaxAccepts<MatrixView<float>, MatrixView<float>>::value, "in place");
static_assert(!SoftmaxAccepts<MatrixView<const __half>, MatrixView<float>>::value,
              "an input of another dtype must not compile");
static_assert(!SoftmaxAccepts<MatrixView<float>, MatrixView<const float>>::value,
              "a const output must not compile");

template <class X, class Y, class = void>
struct ActivationAccepts : std::false_type {};
template <class X, class Y>
struct ActivationAccepts<
    X, Y, std::void_t<decltype(warpfuse::activation_forward(std::declval<X>(), std::declval<Y>()))>>
    : std::true_type {};
static_assert(ActivationAccepts<MatrixView<float>, MatrixView<float>>::value, "in place");
static_assert(ActivationAccepts<VectorView<const float>, VectorView<float>>::value);
static_assert(!ActivationAccepts<MatrixView<float>, MatrixView<const float>>::value,
              "a const output must not compile");
static_assert(!ActivationAccepts<VectorView<float>, VectorView<const float>>::value);

template <class Logits, class Targets, class = void>
struct CrossEntropyAccepts : std::false_type {};
template <class Logits, class Targets>
struct CrossEntropyAccepts<Logits, Targets,
                           std::void_t<decltype(warpfuse::cross_entropy(
                               std::declval<Logits>(), std::declval<Targets>(),
                               warpfuse::CrossEntropyOutputs<float>{}, warpfuse::Workspace{}))>>
    : std::true_type {};
static_assert(CrossEntropyAccepts<MatrixView<float>, VectorView<std::int64_t>>::value);
static_assert(CrossEntropyAccepts<MatrixView<const float>, VectorView<const std::int32_t>>::value);
static_assert(CrossEntropyAccepts<MatrixView<float>, MatrixView<float>>::value,
              "probability targets");
static_assert(!CrossEntropyAccepts<MatrixView<const __half>, VectorView<std::int64_t>>::value);
static_assert(
    std::is_same_v<decltype(warpfuse::CrossEntropyOutputs<float>::loss), VectorView<float>>,
    "no raw float* outputs");
static_assert(std::is_same_v<decltype(warpfuse::CrossEntropyOptions::reduction),
                             warpfuse::CrossEntropyReduction>,
              "cross-entropy's reduction cannot hold per_sample");

template <class Saved, class = void>
struct BiasBackwardAccepts : std::false_type {};
template <class Saved>
struct BiasBackwardAccepts<
    Saved, std::void_t<decltype(warpfuse::bias_activation_backward(
               std::declval<Saved>(), std::declval<Saved>(),
               warpfuse::BiasActivationBackwardOutputs<float>{}, warpfuse::Workspace{}))>>
    : std::true_type {};
static_assert(BiasBackwardAccepts<MatrixView<float>>::value);
static_assert(BiasBackwardAccepts<MatrixView<const float>>::value);
static_assert(warpfuse::kWorkspaceAlignment == 256);

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
