// warpfuse kernels — 16-byte vector access through an aligned Pack<T, N>.
//
// A Pack<T, N> is N elements moved as one aligned load or store (N * sizeof(T) bytes, 16 for the
// usual N = kPackElements<T>). A vector access is only legal at an address aligned to the pack's
// size; callers split an array into a scalar head (until the address is aligned), whole packs, and
// a scalar tail (split_for_packs), or check a row's start and stride (can_use_packs) and fall back
// to scalar code. The emulator faults on a misaligned pack access, as the GPU does.
#pragma once

#include <cstdint>

#include "kernels/common/dialect.cuh"

namespace warpfuse::detail {

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  static_assert(N >= 1 && (N & (N - 1)) == 0, "Pack: N must be a power of two");
  T elem[N];
};

/// Elements per 16-byte pack: 4 floats, 8 halves or bfloat16s.
template <class T>
constexpr int kPackElements = 16 / static_cast<int>(sizeof(T));

template <int N, class T>
WF_HOST_DEVICE bool is_pack_aligned(const T* ptr) {
  return reinterpret_cast<std::uintptr_t>(ptr) % (sizeof(T) * N) == 0;
}

/// Every row of a matrix at `ptr` with row stride `ld` starts pack-aligned.
template <int N, class T>
WF_HOST_DEVICE bool can_use_packs(const T* ptr, std::int64_t ld) {
  return is_pack_aligned<N>(ptr) && ld % N == 0;
}

template <int N, class T>
WF_DEVICE Pack<T, N> load_pack(const T* ptr) {
  WF_CHECK_ALIGNED(ptr, sizeof(Pack<T, N>), "load_pack");
  return *reinterpret_cast<const Pack<T, N>*>(ptr);
}

template <int N, class T>
WF_DEVICE void store_pack(T* ptr, const Pack<T, N>& pack) {
  WF_CHECK_ALIGNED(ptr, sizeof(Pack<T, N>), "store_pack");
  *reinterpret_cast<Pack<T, N>*>(ptr) = pack;
}

/// [0, n) of an array at ptr as: `head` scalar elements until ptr + head is pack-aligned, `packs`
/// whole packs, then `tail` scalar elements. head + packs * N + tail == n.
struct PackSplit {
  std::int64_t head;
  std::int64_t packs;
  std::int64_t tail;
};

template <int N, class T>
WF_HOST_DEVICE PackSplit split_for_packs(const T* ptr, std::int64_t n) {
  constexpr std::int64_t kBytes = static_cast<std::int64_t>(sizeof(T)) * N;
  const std::int64_t misalignment =
      static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(ptr) % kBytes);
  std::int64_t head =
      misalignment == 0 ? 0 : (kBytes - misalignment) / static_cast<std::int64_t>(sizeof(T));
  if (misalignment % static_cast<std::int64_t>(sizeof(T)) != 0 || head > n) head = n;
  const std::int64_t packs = (n - head) / N;
  return PackSplit{head, packs, n - head - packs * N};
}

}  // namespace warpfuse::detail
