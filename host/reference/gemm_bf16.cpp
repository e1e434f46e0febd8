// warpfuse::ref — sgemm with bf16 inputs (MatmulPrecision::bf16). See warpfuse/ref/nn_cpu.h.
//
// On a CPU with AMX (Intel Sapphire Rapids and later) the product runs on the tile unit:
// TDPBF16PS multiplies 16 x 32 bf16 by 32 x 16 bf16 into 16 x 16 fp32 in one instruction. Both
// operands are first packed into bf16 buffers the tiles load with a stride:
//   A (op(A), m x k) row-major, k padded to a multiple of 32;
//   B (op(B), k x n) in the pair layout TDPBF16PS reads: element (k, j) at pair row k / 2,
//     column j, half k % 2, i.e. 32-bit words [k / 2][j] = (B[2p][j], B[2p + 1][j]).
// A transposed operand becomes a 32-bit transpose of rows of pairs (16 x 16 blocks in registers),
// so every packing step is vector code. Rounding is the hardware's (VCVTNEPS2BF16: nearest even,
// NaN kept NaN), the same rounding the portable path gets from __float2bfloat16_rn.
//
// Anywhere else (no AMX, or WARPFUSE_CPU_AMX=0) the portable path rounds both operands to bf16
// in float buffers and multiplies them with cblas_sgemm: the same products (a bf16 x bf16 product
// is exact in fp32), summed in fp32 in another order.
#include <cblas.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "host/reference/thread_pool.h"
#include "warpfuse/ref/nn_cpu.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define WARPFUSE_HAVE_AMX_CODE 1
#include <cpuid.h>
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* (GCC bug
// 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace warpfuse::ref {
namespace {

/// bf16 GEMMs of at least this many multiply-adds use every pool thread (a smaller one finishes
/// in a few microseconds on one core: less than the hand-off).
constexpr double kThreadedBf16MultiplyAdds = 4.0 * 1024 * 1024;

std::int64_t round_up(std::int64_t v, std::int64_t to) {
  return (v + to - 1) / to * to;
}

/// Buffers that grow and are kept (per thread), so a training step allocates nothing.
struct Scratch {
  std::vector<std::uint32_t> a, b, pairs, b_rows;
  std::vector<float> a_rounded, b_rounded;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// ---- portable path ------------------------------------------------------------------------------

float to_bf16_and_back(float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}

void sgemm_bf16_portable(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                         float alpha, const float* a, std::int64_t lda, const float* b,
                         std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  Scratch& s = scratch();
  // The operands as stored (rows x cols, row stride ld), rounded into dense copies.
  const std::int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  const std::int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  s.a_rounded.resize(static_cast<std::size_t>(a_rows * a_cols));
  s.b_rounded.resize(static_cast<std::size_t>(b_rows * b_cols));
  for (std::int64_t r = 0; r < a_rows; ++r) {
    for (std::int64_t col = 0; col < a_cols; ++col) {
      s.a_rounded[r * a_cols + col] = to_bf16_and_back(a[r * lda + col]);
    }
  }
  for (std::int64_t r = 0; r < b_rows; ++r) {
    for (std::int64_t col = 0; col < b_cols; ++col) {
      s.b_rounded[r * b_cols + col] = to_bf16_and_back(b[r * ldb + col]);
    }
  }
  sgemm(trans_a, trans_b, m, n, k, alpha, s.a_rounded.data(), a_cols, s.b_rounded.data(), b_cols,
        beta, c, ldc, nn::MatmulPrecision::fp32);
}

#if defined(WARPFUSE_HAVE_AMX_CODE)

// ---- AMX path -----------------------------------------------------------------------------------

#define WARPFUSE_AMX_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))

/// The CPU has AMX-BF16 and AVX512-BF16, the kernel enables the tile state (XCR0 bits 17, 18) and
/// grants this process the tile data permission (Linux 5.16+: ARCH_REQ_XCOMP_PERM).
bool detect_amx() {
  const char* env = std::getenv("WARPFUSE_CPU_AMX");
  if (env != nullptr && std::strcmp(env, "0") == 0) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(1, 0, eax, ebx, ecx, edx);
  if ((ecx & (1u << 27)) == 0) return false;  // OSXSAVE: xgetbv is usable
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool amx_tile = (edx & (1u << 24)) != 0, amx_bf16 = (edx & (1u << 22)) != 0;
  const bool avx512f = (ebx & (1u << 16)) != 0, avx512bw = (ebx & (1u << 30)) != 0;
  const bool avx512vl = (ebx & (1u << 31)) != 0;
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  const bool avx512_bf16 = (eax & (1u << 5)) != 0;
  if (!(amx_tile && amx_bf16 && avx512f && avx512bw && avx512vl && avx512_bf16)) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const unsigned needed = (1u << 1) | (1u << 2) | (7u << 5) | (3u << 17);  // SSE AVX AVX-512 AMX
  if ((xcr0_lo & needed) != needed) return false;
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

/// Round 16 floats to bf16 (nearest even) and widen each to the low half of a 32-bit lane.
WARPFUSE_AMX_TARGET inline __m512i bf16_lanes(__m512 v) {
  return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
}

WARPFUSE_AMX_TARGET inline __m512 load_floats(const float* p, std::int64_t count) {
  if (count >= 16) return _mm512_loadu_ps(p);
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p);
}

/// The bf16 of src[0, cols) as 32-bit words of two values each (zeros past cols), 16 words at a
/// time to word_at(w) for w = 0, 16, ... < words.
template <class WordAt>
WARPFUSE_AMX_TARGET void row_to_words(const float* src, std::int64_t cols, std::int64_t words,
                                      WordAt word_at) {
  for (std::int64_t w = 0; w < words; w += 16) {
    const std::int64_t left = cols - 2 * w;
    const __m512 lo = left > 0 ? load_floats(src + 2 * w, left) : _mm512_setzero_ps();
    const __m512 hi = left > 16 ? load_floats(src + 2 * w + 16, left - 16) : _mm512_setzero_ps();
    _mm512_storeu_si512(word_at(w), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

/// Words (bf16(lo[j]), bf16(hi[j])) for j < cols (hi may be null: zeros), zeros to cols_pad, 16
/// at a time to word_at(j) for j = 0, 16, ...
template <class WordAt>
WARPFUSE_AMX_TARGET void rows_to_pairs(const float* lo, const float* hi, std::int64_t cols,
                                       std::int64_t cols_pad, WordAt word_at) {
  for (std::int64_t c = 0; c < cols_pad; c += 16) {
    const std::int64_t left = cols - c;
    const __m512 l = left > 0 ? load_floats(lo + c, left) : _mm512_setzero_ps();
    const __m512 h = left > 0 && hi != nullptr ? load_floats(hi + c, left) : _mm512_setzero_ps();
    const __m512i word = _mm512_or_si512(bf16_lanes(l), _mm512_slli_epi32(bf16_lanes(h), 16));
    _mm512_storeu_si512(word_at(c), word);
  }
}

/// The transpose of src (rows x cols words, row stride ld_src; both multiples of 16), in 16 x 16
/// register blocks: column c of src, rows r0 .. r0 + 15, goes to the 16 words at row_at(c, r0).
template <class RowAt>
WARPFUSE_AMX_TARGET void transpose_words(const std::uint32_t* src, std::int64_t rows,
                                         std::int64_t cols, std::int64_t ld_src, RowAt row_at) {
  for (std::int64_t r0 = 0; r0 < rows; r0 += 16) {
    for (std::int64_t c0 = 0; c0 < cols; c0 += 16) {
      __m512i v[16], t[16];
      for (int i = 0; i < 16; ++i) v[i] = _mm512_loadu_si512(src + (r0 + i) * ld_src + c0);
      // 32-bit, then 64-bit interleaves within 128-bit lanes, then 128-bit lane shuffles.
      for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
      }
      for (int i = 0; i < 16; i += 4) {
        v[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        v[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        v[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        v[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
      }
      // v[4q + s] holds, in 128-bit lane L, column 4L + s of rows 4q .. 4q + 3.
      for (int q = 0; q < 16; q += 8) {
        for (int s = 0; s < 4; ++s) {
          t[q + s] = _mm512_shuffle_i32x4(v[q + s], v[q + 4 + s], 0x88);      // lanes 0, 2
          t[q + 4 + s] = _mm512_shuffle_i32x4(v[q + s], v[q + 4 + s], 0xdd);  // lanes 1, 3
        }
      }
      for (int s = 0; s < 4; ++s) {
        // t[s]: lanes (L0 of rows 0-3, L2 of 0-3, L0 of 4-7, L2 of 4-7); t[8 + s] likewise 8-15.
        const __m512i lo02 = t[s], hi02 = t[8 + s], lo13 = t[4 + s], hi13 = t[12 + s];
        v[s] = _mm512_shuffle_i32x4(lo02, hi02, 0x88);       // column s      (lane 0)
        v[8 + s] = _mm512_shuffle_i32x4(lo02, hi02, 0xdd);   // column 8 + s  (lane 2)
        v[4 + s] = _mm512_shuffle_i32x4(lo13, hi13, 0x88);   // column 4 + s  (lane 1)
        v[12 + s] = _mm512_shuffle_i32x4(lo13, hi13, 0xdd);  // column 12 + s (lane 3)
      }
      for (int i = 0; i < 16; ++i) _mm512_storeu_si512(row_at(c0 + i, r0), v[i]);
    }
  }
}

struct TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};

/// The packed operands of sgemm_bf16_amx (layouts there) and where C goes.
struct Packed {
  const std::uint32_t* a;
  const std::uint32_t* b;
  std::int64_t pairs, i_blocks, m, n;
  float alpha, beta;
  float* c;
  std::int64_t ldc;
  const std::uint32_t* a_at(std::int64_t i, std::int64_t p) const {
    return a + ((i / 16) * (pairs / 16) + p / 16) * 256 + (i % 16) * 16 + p % 16;
  }
  const std::uint32_t* b_at(std::int64_t p, std::int64_t j) const {
    return b + (j / 32) * pairs * 32 + p * 32 + j % 32;
  }
};

/// C blocks [first, last) (32 x 32, j-major) from the packed operands, on the calling thread's
/// tiles: 4 accumulators (2 x 2 tiles of 16 x 16), 2 A tiles, 2 B tiles.
WARPFUSE_AMX_TARGET void compute_blocks(const Packed& pk, std::int64_t first, std::int64_t last) {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {  // C: 16 rows of 16 fp32; A, B: 16 rows of 16 words
    config.rows[t] = 16;
    config.bytes_per_row[t] = 64;
  }
  _tile_loadconfig(&config);
  alignas(64) float block[32][32];
  for (std::int64_t blk = first; blk < last; ++blk) {
    const std::int64_t j0 = (blk / pk.i_blocks) * 32, i0 = (blk % pk.i_blocks) * 32;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (std::int64_t p0 = 0; p0 < pk.pairs; p0 += 16) {
      const std::uint32_t* b0 = pk.b_at(p0, j0);
      _tile_loadd(4, pk.a_at(i0, p0), 64);
      _tile_loadd(5, pk.a_at(i0 + 16, p0), 64);
      _tile_loadd(6, b0, 128);
      _tile_loadd(7, b0 + 16, 128);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, &block[0][0], 128);
    _tile_stored(1, &block[0][16], 128);
    _tile_stored(2, &block[16][0], 128);
    _tile_stored(3, &block[16][16], 128);
    const std::int64_t rows = std::min<std::int64_t>(32, pk.m - i0);
    const std::int64_t cols = std::min<std::int64_t>(32, pk.n - j0);
    for (std::int64_t i = 0; i < rows; ++i) {
      float* out = pk.c + (i0 + i) * pk.ldc + j0;
      if (pk.beta == 0.0f) {
        for (std::int64_t j = 0; j < cols; ++j) out[j] = pk.alpha * block[i][j];
      } else {
        for (std::int64_t j = 0; j < cols; ++j) out[j] = pk.alpha * block[i][j] + pk.beta * out[j];
      }
    }
  }
  _tile_release();
}

/// C = alpha op(A) op(B) + beta C on the tile unit (beta 0: C is not read).
///
/// Packed layouts, in 32-bit words of two bf16 along k (pair p = k / 2), so that every tile is
/// contiguous (a strided tile load whose rows are 2 or 4 KiB apart lands in one L1 set):
///   A word (i, p) at ((i / 16) * (pairs / 16) + p / 16) * 256 + (i % 16) * 16 + p % 16: each
///     16 x 16-word tile (16 rows x 32 k) is 1 KiB, loaded with a 64-byte stride;
///   B word (p, j) at (j / 32) * pairs * 32 + p * 32 + j % 32: a panel of 32 columns, rows of
///     128 bytes, two tiles side by side.
WARPFUSE_AMX_TARGET void sgemm_bf16_amx(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                                        std::int64_t k, float alpha, const float* a,
                                        std::int64_t lda, const float* b, std::int64_t ldb,
                                        float beta, float* c, std::int64_t ldc) {
  Scratch& s = scratch();
  const std::int64_t m_pad = round_up(m, 32), n_pad = round_up(n, 32), k_pad = round_up(k, 32);
  const std::int64_t pairs = k_pad / 2;  // a multiple of 16
  s.a.resize(static_cast<std::size_t>(m_pad * pairs));
  s.b.resize(static_cast<std::size_t>(pairs * n_pad));
  std::uint32_t* const a_words = s.a.data();
  std::uint32_t* const b_words = s.b.data();
  const auto a_at = [a_words, pairs](std::int64_t i, std::int64_t p) {
    return a_words + ((i / 16) * (pairs / 16) + p / 16) * 256 + (i % 16) * 16 + p % 16;
  };
  const auto b_at = [b_words, pairs](std::int64_t p, std::int64_t j) {
    return b_words + (j / 32) * pairs * 32 + p * 32 + j % 32;
  };
  if (trans_a) s.pairs.resize(static_cast<std::size_t>(pairs * m_pad));
  if (trans_b) s.b_rows.resize(static_cast<std::size_t>(n_pad * pairs));
  std::uint32_t* const q = s.pairs.data();
  std::uint32_t* const rows_b = s.b_rows.data();

  // Packing, in units of 16 along the dimension each layout is built by: A by rows i (or pairs p
  // when transposed), B by pairs p (or columns j when transposed).
  const std::int64_t a_units = (trans_a ? pairs : m_pad) / 16;
  const std::int64_t b_units = (trans_b ? n_pad : pairs) / 16;
  const auto pack_a = [&](std::int64_t u0, std::int64_t u1) {
    if (!trans_a) {
      for (std::int64_t i = 16 * u0; i < 16 * u1; ++i) {
        row_to_words(i < m ? a + i * lda : nullptr, i < m ? k : 0, pairs,
                     [&](std::int64_t w) { return a_at(i, w); });
      }
      return;
    }
    // op(A)[i][kk] = a[kk][i]: pair rows kk, kk + 1 along i, then transpose the words.
    for (std::int64_t p = 16 * u0; p < 16 * u1; ++p) {
      const std::int64_t k0 = 2 * p;
      const float* lo = k0 < k ? a + k0 * lda : nullptr;
      const float* hi = k0 + 1 < k ? a + (k0 + 1) * lda : nullptr;
      rows_to_pairs(lo, hi, lo != nullptr ? m : 0, m_pad,
                    [&](std::int64_t i) { return q + p * m_pad + i; });
    }
    transpose_words(q + 16 * u0 * m_pad, 16 * (u1 - u0), m_pad, m_pad,
                    [&](std::int64_t i, std::int64_t p0) { return a_at(i, 16 * u0 + p0); });
  };
  const auto pack_b = [&](std::int64_t u0, std::int64_t u1) {
    if (!trans_b) {
      for (std::int64_t p = 16 * u0; p < 16 * u1; ++p) {
        const std::int64_t k0 = 2 * p;
        const float* lo = k0 < k ? b + k0 * ldb : nullptr;
        const float* hi = k0 + 1 < k ? b + (k0 + 1) * ldb : nullptr;
        rows_to_pairs(lo, hi, lo != nullptr ? n : 0, n_pad,
                      [&](std::int64_t j) { return b_at(p, j); });
      }
      return;
    }
    // op(B)[kk][j] = b[j][kk]: row j in bf16 is already the pairs of column j; transpose.
    for (std::int64_t j = 16 * u0; j < 16 * u1; ++j) {
      row_to_words(j < n ? b + j * ldb : nullptr, j < n ? k : 0, pairs,
                   [&](std::int64_t w) { return rows_b + j * pairs + w; });
    }
    transpose_words(rows_b + 16 * u0 * pairs, 16 * (u1 - u0), pairs, pairs,
                    [&](std::int64_t p, std::int64_t j0) { return b_at(p, 16 * u0 + j0); });
  };

  // The 32 x 32 blocks of C, j-major (a task's blocks share B panels).
  const std::int64_t i_blocks = m_pad / 32, blocks = i_blocks * (n_pad / 32);
  const Packed packed{a_words, b_words, pairs, i_blocks, m, n, alpha, beta, c, ldc};
  const auto compute = [&](std::int64_t first, std::int64_t last) {
    compute_blocks(packed, first, last);
  };

  // One thread below kThreadedBf16MultiplyAdds; else every pool thread, packing split into
  // `threads` parts of each operand, then the blocks into `threads` contiguous ranges.
  const double multiply_adds =
      static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int threads = multiply_adds >= kThreadedBf16MultiplyAdds ? detail::parallel_threads() : 1;
  if (threads <= 1) {
    pack_a(0, a_units);
    pack_b(0, b_units);
    compute(0, blocks);
    return;
  }
  const auto part = [](std::int64_t total, int parts, int index) { return total * index / parts; };
  detail::parallel_for(2 * threads, [&](int task) {
    const int t = task % threads;
    if (task < threads) {
      pack_a(part(a_units, threads, t), part(a_units, threads, t + 1));
    } else {
      pack_b(part(b_units, threads, t), part(b_units, threads, t + 1));
    }
  });
  detail::parallel_for(threads, [&](int task) {
    compute(part(blocks, threads, task), part(blocks, threads, task + 1));
  });
}

#endif  // WARPFUSE_HAVE_AMX_CODE

}  // namespace

bool cpu_has_amx_bf16() {
#if defined(WARPFUSE_HAVE_AMX_CODE)
  static const bool available = detect_amx();
  return available;
#else
  return false;
#endif
}

void sgemm_bf16(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                float beta, float* c, std::int64_t ldc, bool use_amx) {
  if (m == 0 || n == 0) return;
#if defined(WARPFUSE_HAVE_AMX_CODE)
  if (use_amx && cpu_has_amx_bf16()) {
    sgemm_bf16_amx(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  static_cast<void>(use_amx);
  sgemm_bf16_portable(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace warpfuse::ref
