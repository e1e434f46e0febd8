// Stream capture and CUDA Graphs in the emulator's cudart shim: work enqueued on a captured stream
// is recorded, not run, and replays in order on every cudaGraphLaunch; what CUDA forbids during
// capture fails with CUDA's error codes and invalidates the capture, through the public API too.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "host/cuda/launch.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/error.h"
#include "warpfuse/memory.h"

namespace warpfuse {
namespace {

using detail::launch;
using detail::LaunchConfig;

__global__ void add_kernel(float* x, float value) {
  x[threadIdx.x] += value;
}

std::vector<float> read(const DeviceBuffer<float>& buffer) {
  std::vector<float> host(buffer.size());
  WARPFUSE_CUDA_CHECK(
      cudaMemcpy(host.data(), buffer.data(), host.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return host;
}

class Capture : public ::testing::Test {
 protected:
  void SetUp() override { WARPFUSE_CUDA_CHECK(cudaStreamCreate(&stream_)); }
  void TearDown() override {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    static_cast<void>(cudaStreamIsCapturing(stream_, &status));
    if (status != cudaStreamCaptureStatusNone) {
      cudaGraph_t graph = nullptr;
      static_cast<void>(cudaStreamEndCapture(stream_, &graph));
      if (graph != nullptr) static_cast<void>(cudaGraphDestroy(graph));
    }
    static_cast<void>(cudaStreamDestroy(stream_));
    static_cast<void>(cudaGetLastError());
  }
  /// Ends the capture expecting it invalidated: no graph.
  void expect_invalidated() {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    ASSERT_EQ(cudaStreamIsCapturing(stream_, &status), cudaSuccess);
    EXPECT_EQ(status, cudaStreamCaptureStatusInvalidated);
    cudaGraph_t graph = nullptr;
    EXPECT_EQ(cudaStreamEndCapture(stream_, &graph), cudaErrorStreamCaptureInvalidated);
    EXPECT_EQ(graph, nullptr);
    static_cast<void>(cudaGetLastError());
  }
  cudaStream_t stream_ = nullptr;
};

TEST_F(Capture, RecordsInsteadOfRunningAndReplaysInOrder) {
  DeviceBuffer<float> x(32), copy(32);
  WARPFUSE_CUDA_CHECK(cudaMemset(x.data(), 0, 32 * sizeof(float)));
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  ASSERT_EQ(cudaStreamIsCapturing(stream_, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusActive);
  launch(LaunchConfig{dim3(1), dim3(32), 0, stream_}, "add_kernel", add_kernel, x.data(), 1.0f);
  WARPFUSE_CUDA_CHECK(cudaMemcpyAsync(copy.data(), x.data(), 32 * sizeof(float),
                                      cudaMemcpyDeviceToDevice, stream_));
  launch(LaunchConfig{dim3(1), dim3(32), 0, stream_}, "add_kernel", add_kernel, x.data(), 2.0f);
  // (A cudaMemcpy here would be refused: device memory is host memory in the emulator.)
  EXPECT_EQ(std::vector<float>(x.data(), x.data() + 32), std::vector<float>(32, 0.0f))
      << "captured work ran during the capture";
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  ASSERT_NE(graph, nullptr);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);  // the instance keeps what it needs
  ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
  EXPECT_EQ(read(copy), std::vector<float>(32, 1.0f)) << "the copy ran between the two launches";
  EXPECT_EQ(read(x), std::vector<float>(32, 3.0f));
  ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
  EXPECT_EQ(read(copy), std::vector<float>(32, 4.0f));
  EXPECT_EQ(read(x), std::vector<float>(32, 6.0f));
  ASSERT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
}

TEST_F(Capture, AllocationDuringCaptureIsRefusedAndInvalidatesIt) {
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  void* ptr = nullptr;
  EXPECT_EQ(cudaMalloc(&ptr, 256), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaGetLastError(), cudaErrorStreamCaptureUnsupported);
  expect_invalidated();
  // Relaxed mode allows it.
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&ptr, 256), cudaSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaFree(ptr), cudaSuccess);
}

TEST_F(Capture, SynchronisingTheCapturedStreamIsRefused) {
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(stream_), cudaErrorStreamCaptureUnsupported);
  expect_invalidated();
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorStreamCaptureUnsupported);
  expect_invalidated();
}

TEST_F(Capture, SynchronousCopiesAndLegacyStreamWorkAreImplicitSynchronisations) {
  DeviceBuffer<float> x(32);
  std::vector<float> host(32, 1.0f);
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(x.data(), host.data(), 32 * sizeof(float), cudaMemcpyHostToDevice),
            cudaErrorStreamCaptureImplicit);
  expect_invalidated();
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_THROW(launch(LaunchConfig{dim3(1), dim3(32)}, "add_kernel", add_kernel, x.data(), 1.0f),
               CudaError);  // the legacy stream, during a capture
  expect_invalidated();
  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal),
            cudaErrorStreamCaptureUnsupported);
  static_cast<void>(cudaGetLastError());
}

TEST_F(Capture, BadLaunchDuringCaptureFailsAtTheLaunchAndInvalidatesTheCapture) {
  DeviceBuffer<float> x(32);
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_THROW(launch(LaunchConfig{dim3(1), dim3(2048), 0, stream_}, "add_kernel", add_kernel,
                      x.data(), 1.0f),
               CudaError);
  expect_invalidated();
}

// An op that waits for its stream (here: reading back the bad-target status) cannot be captured:
// the emulated build reports it as the GPU does, naming the failing call.
TEST_F(Capture, AnOpThatSynchronisesInsideACaptureIsReported) {
  const std::int64_t rows = 4, cols = 8;
  DeviceBuffer<float> logits(rows * cols), loss(1);
  DeviceBuffer<int> targets(rows);
  DeviceBuffer<unsigned char> workspace(cross_entropy_workspace_bytes(rows));
  WARPFUSE_CUDA_CHECK(cudaMemset(logits.data(), 0, logits.size() * sizeof(float)));
  WARPFUSE_CUDA_CHECK(cudaMemset(targets.data(), 0, targets.size() * sizeof(int)));
  CrossEntropyOutputs<float> outputs;
  outputs.loss = VectorView<float>(loss.data(), 1);
  const Workspace ws{workspace.data(), workspace.size()};
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  cross_entropy(MatrixView<const float>(logits.data(), rows, cols),
                VectorView<const int>(targets.data(), rows), outputs, ws, {}, {}, stream_);
  try {
    check_cross_entropy_targets(ws, VectorView<const int>(targets.data(), rows), cols, stream_);
    ADD_FAILURE() << "a synchronising op was captured silently";
  } catch (const CudaError& error) {
    EXPECT_NE(std::string(error.what()).find("cudaErrorStreamCapture"), std::string::npos)
        << error.what();
  }
  expect_invalidated();
}

}  // namespace
}  // namespace warpfuse
