// warpfuse kernels — 16-byte vector access through an aligned Pack<T, N>.
//
// A Pack<T, N> is N elements moved as one aligned load or store (N * sizeof(T) bytes, 16 for the
// usual N = kPackElements<T>). A vector access is only legal at an address aligned to the pack's
// size; callers split an array into a scalar head (until the address is aligned), whole packs, and
// a scalar tail (split_for_packs), or check a row's start and stride (can_use_packs) and fall back
// to scalar code. The emulator faults on a misaligned pack access, as the GPU does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

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

/// The machine word a pack of `Bytes` bytes moves as: a CUDA vector type. Loads of it are one
/// 128-bit (64-, 32-, 16-bit) access; stores go through store_word (dialect.cuh), because nvcc
/// splits a plain store of a pack whose elements were computed one by one into one store per
/// element (seen in the activations' sm_90 code: 4 x 32-bit and 8 x 16-bit stores per pack).
template <std::size_t Bytes>
struct PackWord;
template <>
struct PackWord<16> {
  using type = uint4;
};
template <>
struct PackWord<8> {
  using type = uint2;
};
template <>
struct PackWord<4> {
  using type = unsigned int;
};
template <>
struct PackWord<2> {
  using type = unsigned short;
};

template <int N, class T>
WF_DEVICE Pack<T, N> load_pack(const T* ptr) {
  using Word = typename PackWord<sizeof(Pack<T, N>)>::type;
  WF_CHECK_ALIGNED(ptr, sizeof(Pack<T, N>), "load_pack");
  const Word word = *reinterpret_cast<const Word*>(ptr);
  Pack<T, N> pack;
  memcpy(&pack, &word, sizeof(pack));
  return pack;
}

template <int N, class T>
WF_DEVICE void store_pack(T* ptr, const Pack<T, N>& pack) {
  using Word = typename PackWord<sizeof(Pack<T, N>)>::type;
  WF_CHECK_ALIGNED(ptr, sizeof(Pack<T, N>), "store_pack");
  Word word;
  memcpy(&word, &pack, sizeof(word));
  store_word(reinterpret_cast<Word*>(ptr), word);
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
