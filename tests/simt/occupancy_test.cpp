// The emulator's occupancy model and the launchers' grid sizing: grids are one full wave at the
// kernel's real occupancy (from the kernel report of the sm_90 build), the shared-memory opt-in is
// set once per kernel, and a launch over a kernel's bounds fails as on the GPU. Emulated build
// only: it reads what the emulator recorded of each launch.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "host/cuda/common.h"
#include "host/cuda/launch.h"
#include "kernels/activation.cuh"
#include "simt/simt.h"
#include "warpfuse/activation.h"
#include "warpfuse/error.h"
#include "warpfuse/memory.h"
#include "warpfuse/softmax.h"

namespace warpfuse {
namespace {

constexpr int kMultiprocessors = 132;  // the emulated H200

using ReluFlat = decltype(&detail::activation_forward_flat_kernel<detail::ReluFn, 4, float>);
const ReluFlat kReluFlat = &detail::activation_forward_flat_kernel<detail::ReluFn, 4, float>;

/// Restores the report's view of a kernel and the launch caches when a test ends.
class OccupancyTest : public ::testing::Test {
 protected:
  void TearDown() override {
    simt::clear_kernel_resources(detail::kernel_handle(kReluFlat));
    detail::reset_launch_caches();
  }
  /// Runs relu over n floats and returns the grid the launcher chose.
  static unsigned relu_grid(std::int64_t n) {
    DeviceBuffer<float> x(static_cast<std::size_t>(n));
    DeviceBuffer<float> y(static_cast<std::size_t>(n));
    WARPFUSE_CUDA_CHECK(cudaMemset(x.data(), 0, static_cast<std::size_t>(n) * sizeof(float)));
    activation_forward(VectorView<const float>(x.data(), n), VectorView<float>(y.data(), n));
    simt::LaunchRecord record;
    EXPECT_TRUE(simt::last_launch("activation_forward_flat_kernel", &record));
    EXPECT_EQ(record.block.x, static_cast<unsigned>(detail::kActivationFlatThreads));
    return record.grid.x;
  }
};

TEST_F(OccupancyTest, ModelFollowsRegistersSharedMemoryAndBounds) {
  simt::KernelResources r;
  r.launch_bounds = 1024;
  r.registers = 32;
  EXPECT_EQ(simt::resident_blocks(r, 256, 0), 8);  // 64 warps
  r.registers = 64;
  EXPECT_EQ(simt::resident_blocks(r, 256, 0), 4);   // 32 warps
  EXPECT_EQ(simt::resident_blocks(r, 1024, 0), 1);  // one 1024-thread block at 64 registers
  r.registers = 72;                                 // rounds to 72: 7 warps per sub-partition
  EXPECT_EQ(simt::resident_blocks(r, 1024, 0), 0);  // does not fit: the launch would fail
  EXPECT_EQ(simt::resident_blocks(r, 128, 0), 7);
  r.registers = 32;
  EXPECT_EQ(simt::resident_blocks(r, 1024, 100 * 1024), 2);  // 101 KiB per block of 228
  EXPECT_EQ(simt::resident_blocks(r, 1024, 120 * 1024), 1);
  r.launch_bounds = 256;
  EXPECT_EQ(simt::resident_blocks(r, 512, 0), 0);  // over the bounds
}

#if defined(WARPFUSE_HAS_KERNEL_REPORT)
// The report of this tree's CUDA build is there, its kernels are found by name from the emulated
// ones, and the emulator's model gives the resident warps the report computed, for every kernel.
TEST_F(OccupancyTest, ReportAndEmulatorAgreeOnEveryKernel) {
  ASSERT_FALSE(simt::kernel_report_path().empty()) << "the build's kernel report is missing";
  const simt::KernelResources relu = simt::kernel_resources(detail::kernel_handle(kReluFlat));
  EXPECT_TRUE(relu.from_report) << simt::kernel_symbol(detail::kernel_handle(kReluFlat))
                                << " is not in " << simt::kernel_report_path();
  EXPECT_EQ(relu.launch_bounds, detail::kActivationFlatThreads);
  const std::vector<simt::ReportedKernel> kernels = simt::reported_kernels();
  ASSERT_GT(kernels.size(), 500u);
  int compared = 0;
  for (const simt::ReportedKernel& kernel : kernels) {
    if (kernel.resources.launch_bounds == 0) continue;  // external (CCCL) kernels
    const int threads = kernel.resources.launch_bounds;
    const int warps = simt::resident_blocks(kernel.resources, threads, 0) * ((threads + 31) / 32);
    EXPECT_EQ(warps, kernel.resident_warps) << kernel.mangled;
    ++compared;
  }
  EXPECT_GT(compared, 500);
}

TEST_F(OccupancyTest, GridFromTheReportsRegisters) {
  const simt::KernelResources relu = simt::kernel_resources(detail::kernel_handle(kReluFlat));
  const int per_sm = simt::resident_blocks(relu, detail::kActivationFlatThreads, 0);
  ASSERT_GT(per_sm, 0);
  const std::int64_t wave = static_cast<std::int64_t>(kMultiprocessors) * per_sm;
  // Enough packs for more than a wave: the grid is exactly one wave.
  EXPECT_EQ(relu_grid((wave + 7) * detail::kActivationFlatThreads * 4), wave);
}
#endif

// The grid follows the kernel's registers: the same call gets a smaller wave when the kernel
// needs more registers, and never more blocks than its work.
TEST_F(OccupancyTest, GridIsOneFullWaveAtTheKernelsOccupancy) {
  simt::KernelResources heavy;
  heavy.registers = 128;  // 16 warps per SM: 2 blocks of 256
  heavy.launch_bounds = detail::kActivationFlatThreads;
  simt::set_kernel_resources(detail::kernel_handle(kReluFlat), heavy);
  detail::reset_launch_caches();
  const std::int64_t packs_per_block = detail::kActivationFlatThreads;
  const std::int64_t n = 300 * packs_per_block * 4;  // 300 blocks of work
  EXPECT_EQ(relu_grid(n), 2u * kMultiprocessors);

  simt::KernelResources light = heavy;
  light.registers = 64;  // 4 blocks per SM: a 528-block wave, more than the work
  simt::set_kernel_resources(detail::kernel_handle(kReluFlat), light);
  detail::reset_launch_caches();
  EXPECT_EQ(relu_grid(n), 300u);
  EXPECT_EQ(relu_grid(7 * 4), 1u);  // 7 packs: one block
}

TEST_F(OccupancyTest, SharedMemoryOptInIsSetOncePerKernel) {
  detail::reset_launch_caches();
  const std::int64_t cols = 16384;  // a 64 KiB fp32 row cache: above the 48 KiB default
  DeviceBuffer<float> x(2 * cols + 2 * 20000);
  DeviceBuffer<float> y(2 * cols + 2 * 20000);
  WARPFUSE_CUDA_CHECK(cudaMemset(x.data(), 0, x.size() * sizeof(float)));
  SoftmaxOptions options;
  options.strategy = SoftmaxStrategy::block;
  const std::uint64_t before = simt::func_set_attribute_calls();
  softmax(MatrixView<const float>(x.data(), 2, cols), MatrixView<float>(y.data(), 2, cols),
          options);
  EXPECT_EQ(simt::func_set_attribute_calls(), before + 1);
  softmax(MatrixView<const float>(x.data(), 2, cols), MatrixView<float>(y.data(), 2, cols),
          options);
  softmax(MatrixView<const float>(x.data(), 2, 15000), MatrixView<float>(y.data(), 2, 15000),
          options);
  EXPECT_EQ(simt::func_set_attribute_calls(), before + 1) << "a smaller or equal row re-set it";
  softmax(MatrixView<const float>(x.data(), 2, 20000), MatrixView<float>(y.data(), 2, 20000),
          options);
  EXPECT_EQ(simt::func_set_attribute_calls(), before + 2) << "a longer row must raise the mark";
}

__global__ void __launch_bounds__(128) bounded_kernel(int* out) {
  out[threadIdx.x] = static_cast<int>(threadIdx.x);
}

TEST_F(OccupancyTest, LaunchOverTheBoundsFailsAsOnTheGpu) {
  simt::KernelResources bounded;
  bounded.launch_bounds = 128;
  simt::set_kernel_resources(detail::kernel_handle(&bounded_kernel), bounded);
  DeviceBuffer<int> out(256);
  detail::launch(detail::LaunchConfig{dim3(1), dim3(128)}, "bounded_kernel", bounded_kernel,
                 out.data());
  try {
    detail::launch(detail::LaunchConfig{dim3(1), dim3(256)}, "bounded_kernel", bounded_kernel,
                   out.data());
    ADD_FAILURE() << "a 256-thread launch of a kernel bounded to 128 threads succeeded";
  } catch (const CudaError& error) {
    EXPECT_NE(std::string(error.what()).find("bounded_kernel"), std::string::npos) << error.what();
  }
  simt::clear_kernel_resources(detail::kernel_handle(&bounded_kernel));
}

}  // namespace
}  // namespace warpfuse
