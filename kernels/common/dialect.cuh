// warpfuse kernels — the portable dialect (DESIGN.md section 3).
//
// Everything in kernels/ compiles twice: with nvcc for the GPU, and with g++ against the SIMT
// emulator (tests/simt/, force-included as simt/cuda_emu.h, which defines WARPFUSE_SIMT). The few
// places where the two differ go through the macros here, so kernel bodies never branch on the
// build:
//   WF_DYNAMIC_SHARED(T, name)   T* name = the block's dynamic shared memory (16-byte aligned)
//   WF_CHECK_ALIGNED(p, n, what) the emulator faults on a vector access at a misaligned address,
//                                as the GPU would (cudaErrorMisalignedAddress); free under nvcc
//   ex2_approx_ftz(x)            2^x by the hardware's MUFU.EX2 (PTX ex2.approx.ftz.f32: relative
//                                error <= 2^-22, results below 2^-126 flushed to 0, no fix-up
//                                code); the emulator computes 2^x exactly and flushes the same way
// Thread-block clusters (sm_90; launched by host/cuda/launch.h's launch_clustered):
//   cluster_block_rank()         the block's rank in its cluster (x fastest)
//   cluster_num_blocks()         blocks in the cluster
//   cluster_sync()               the cluster-wide barrier (all threads of all its blocks), which
//                                also orders their shared- and global-memory accesses
//   cluster_map_shared(p, rank)  p, an address in this block's dynamic shared memory, in block
//                                `rank`'s (distributed shared memory)
// These are cooperative_groups::this_cluster() under nvcc and the emulator's clusters otherwise,
// which check the rules: every thread reaches each cluster barrier, a peer is mapped only inside
// the cluster and before it exits, and a block whose shared memory peers mapped passes a cluster
// barrier after their last access before it exits. A cluster kernel keeps all of its shared
// memory dynamic (the emulator runs a cluster's blocks together; static __shared__ is one copy).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(WARPFUSE_SIMT)
#define WF_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::simt::detail::dynamic_shared())
#define WF_CHECK_ALIGNED(ptr, bytes, what) ::simt::detail::check_aligned((ptr), (bytes), (what))
#else
#define WF_DYNAMIC_SHARED(T, name)                                    \
  extern __shared__ __align__(16) unsigned char wf_dynamic_shared_[]; \
  T* name = reinterpret_cast<T*>(wf_dynamic_shared_)
#define WF_CHECK_ALIGNED(ptr, bytes, what) static_cast<void>(0)
#endif

#define WF_DEVICE __device__ __forceinline__
#define WF_HOST_DEVICE __host__ __device__ __forceinline__

#if !defined(WARPFUSE_SIMT)
#include <cooperative_groups.h>
#endif

namespace warpfuse::detail {

#if defined(WARPFUSE_SIMT)
WF_DEVICE unsigned cluster_block_rank() {
  return ::simt::detail::cluster_rank();
}
WF_DEVICE unsigned cluster_num_blocks() {
  return ::simt::detail::cluster_size();
}
// The call site (GCC's builtins as default arguments) names the barrier in the emulator's faults.
WF_DEVICE void cluster_sync(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::simt::detail::cluster_sync(file, line);
}
template <class T>
WF_DEVICE T* cluster_map_shared(T* address, unsigned rank, const char* file = __builtin_FILE(),
                                int line = __builtin_LINE()) {
  return static_cast<T*>(::simt::detail::map_shared_rank(address, rank, file, line));
}
#elif !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
WF_DEVICE unsigned cluster_block_rank() {
  return cooperative_groups::this_cluster().block_rank();
}
WF_DEVICE unsigned cluster_num_blocks() {
  return cooperative_groups::this_cluster().num_blocks();
}
WF_DEVICE void cluster_sync() {
  cooperative_groups::this_cluster().sync();
}
template <class T>
WF_DEVICE T* cluster_map_shared(T* address, unsigned rank) {
  return cooperative_groups::this_cluster().map_shared_rank(address, rank);
}
#else
// Below sm_90 there are no clusters; the host never launches a cluster kernel there
// (active_clusters is 0), so these only keep the kernels compiling.
WF_DEVICE unsigned cluster_block_rank() {
  return 0;
}
WF_DEVICE unsigned cluster_num_blocks() {
  return 1;
}
WF_DEVICE void cluster_sync() {
  __trap();
}
template <class T>
WF_DEVICE T* cluster_map_shared(T* address, unsigned) {
  __trap();
  return address;
}
#endif

}  // namespace warpfuse::detail

namespace warpfuse::detail {

/// Stores one machine word (unsigned short, unsigned int, uint2 or uint4) to global memory as one
/// access of its width. Under nvcc this is CUDA's __stwb (st.global.wb: the default write-back
/// policy), the only form nvcc never splits into narrower stores; the emulator stores plainly.
template <class Word>
WF_DEVICE void store_word(Word* ptr, const Word& word) {
#if defined(WARPFUSE_SIMT)
  *ptr = word;
#else
  __stwb(ptr, word);
#endif
}

/// 2^x, the hardware approximation with subnormal results flushed to zero (see the header).
WF_DEVICE float ex2_approx_ftz(float x) {
#if defined(WARPFUSE_SIMT)
  const float r = exp2f(x);
  return r < 1.17549435e-38f ? 0.0f : r;  // FLT_MIN: the flush the hardware does
#else
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
#endif
}

}  // namespace warpfuse::detail

namespace warpfuse::detail {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

/// The thread's index within its block, counting x fastest: the order CUDA assigns lanes in.
WF_DEVICE unsigned linear_thread_index() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
WF_DEVICE unsigned lane_index() {
  return linear_thread_index() % kWarpSize;
}
WF_DEVICE unsigned warp_index() {
  return linear_thread_index() / kWarpSize;
}
WF_DEVICE unsigned threads_per_block() {
  return blockDim.x * blockDim.y * blockDim.z;
}

}  // namespace warpfuse::detail
