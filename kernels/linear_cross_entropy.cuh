// warpfuse kernels — the two small kernels of chunked linear + cross-entropy
// (host/cuda/linear_cross_entropy.cu); the GEMMs are cuBLAS's and the loss is cross-entropy's row
// engine.
//
//   fill_ones_kernel   n ones of T (the ones vector that broadcasts the bias into a chunk's logits
//                      and sums dlogits' columns into dbias, both as GEMMs)
//   round_copy_kernel  a T copy of an fp32 matrix (dhidden, dweight, dbias), rounded once; kPack
//                      elements per item: one 16-byte store of T and 16-byte loads of the floats
//                      when both matrices' rows start 16-byte aligned, else kPack = 1
#pragma once

#include <cstdint>

#include "kernels/common/convert.cuh"
#include "kernels/common/dialect.cuh"
#include "kernels/common/pack.cuh"

namespace warpfuse::detail {

constexpr int kLinearCrossEntropyThreads = 256;

template <class T>
__global__ void __launch_bounds__(kLinearCrossEntropyThreads)
    fill_ones_kernel(T* __restrict__ out, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = from_float<T>(1.0f);
  }
}

/// dst (rows x cols, T, row stride ld_dst) = src rounded (fp32, ld_src). Grid-stride over
/// rows x items, items = ceil(cols / kPack); a whole item moves as packs, the row's last partial
/// item element by element. kPack > 1 needs both matrices' rows pack-aligned (the host checks).
template <class T, int kPack>
__global__ void __launch_bounds__(kLinearCrossEntropyThreads)
    round_copy_kernel(const float* __restrict__ src, std::int64_t ld_src, T* __restrict__ dst,
                      std::int64_t ld_dst, std::int64_t rows, std::int64_t cols) {
  const std::int64_t items = (cols + kPack - 1) / kPack;
  const std::int64_t total = rows * items;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const std::int64_t row = i / items;
    const std::int64_t col = (i - row * items) * kPack;
    const float* from = src + row * ld_src + col;
    T* to = dst + row * ld_dst + col;
    if constexpr (kPack > 1) {
      if (col + kPack <= cols) {
        Pack<T, kPack> out;
#pragma unroll
        for (int q = 0; q < kPack; q += 4) {
          const Pack<float, 4> in = load_pack<4>(from + q);
#pragma unroll
          for (int e = 0; e < 4; ++e) out.elem[q + e] = from_float<T>(in.elem[e]);
        }
        store_pack(to, out);
        continue;
      }
    }
    const std::int64_t n = cols - col < kPack ? cols - col : kPack;
    for (std::int64_t e = 0; e < n; ++e) to[e] = from_float<T>(from[e]);
  }
}

}  // namespace warpfuse::detail
