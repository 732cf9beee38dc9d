// ISA: AVX-512F, 16 floats per vector, 32 vector registers.
// Header included by a generated kernel.cpp inside its layer namespace; needs <immintrin.h> (AVX-512F enabled) included
// before it. The engine headers call the vector operations through simd::.

// GCC 12's avx512fintrin.h passes `_mm512_undefined_ps()` (a self-initialized __Y) as the unused
// merge operand of some intrinsics (unpack, permute, extract), and -Wall then flags every kernel that
// inlines them: silenced for these wrappers only (test/codegen/warnings.test.ts).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace simd {
constexpr int VW = 16;
// vcompressps: weight panels compress kept entries in a register (engine/common.hpp).
constexpr bool HAS_COMPRESS = true;
// The FMA reads its broadcast from memory ({1to16}): no broadcast to share.
constexpr bool BROADCAST_IS_LOAD = false;
constexpr int REGISTERS = 32;
using vec = __m512;
inline vec zero() { return _mm512_setzero_ps(); }
inline vec broadcast(float a) { return _mm512_set1_ps(a); }
inline vec loadu(const float* p) { return _mm512_loadu_ps(p); }
inline void storeu(float* p, vec v) { _mm512_storeu_ps(p, v); }
inline vec fmadd(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
inline float hsum(vec v) { return _mm512_reduce_add_ps(v); }
// Pin a loaded value in a register: stops g++ from folding the load into every FMA that uses it
// (which would repeat the load once per use and make the loop load-bound).
inline void keep(vec& v) { asm("" : "+v"(v)); }
// Masked stores run like plain ones (AVX-512 mask registers).
constexpr bool CHEAP_MASKED_STORE = true;
// A store that writes the line without reading it first (p 64-byte aligned); fence() orders it.
inline void stream(float* p, vec v) { _mm512_stream_ps(p, v); }
inline void fence() { _mm_sfence(); }
inline void spill(float* out, vec v) { _mm512_storeu_ps(out, v); }
// p[0 .. count) = lanes [first, first + count) of v: a run of lanes whose destinations follow one
// another (a tile crossing a row end stores one run per row; nothing outside the run is touched).
inline void storeLanes(float* p, vec v, int first, int count) {
  const __m512i lane = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                        _mm512_set1_epi32(first));
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << count) - 1), _mm512_permutexvar_ps(lane, v));
}
// The shuffles of transpose: rows r[0..16) in, output row j (column j of the rows) to
// dst + j * dstStride for j < n. Always inlined: out of line, r lives in memory.
[[gnu::always_inline]] inline void transposeRegs(__m512 (&r)[16], float* dst, long dstStride, int n) {
  __m512 t[16];
  // Per 128-bit lane k: t[2i] = (r2i[4k], r2i+1[4k], r2i[4k+1], r2i+1[4k+1]), t[2i+1] the same for 4k+2, 4k+3.
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4g + m], lane k: column 4k + m of rows 4g .. 4g+3.
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // Column 4k + m gathers lane k of r[m], r[4 + m], r[8 + m], r[12 + m]: a 4x4 transpose of lanes.
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {
    const __m512 u0 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44), u1 = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xEE);
    const __m512 u2 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44), u3 = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xEE);
    if (m < n) _mm512_storeu_ps(dst + (0 + m) * dstStride, _mm512_shuffle_f32x4(u0, u2, 0x88));
    if (4 + m < n) _mm512_storeu_ps(dst + (4 + m) * dstStride, _mm512_shuffle_f32x4(u0, u2, 0xDD));
    if (8 + m < n) _mm512_storeu_ps(dst + (8 + m) * dstStride, _mm512_shuffle_f32x4(u1, u3, 0x88));
    if (12 + m < n) _mm512_storeu_ps(dst + (12 + m) * dstStride, _mm512_shuffle_f32x4(u1, u3, 0xDD));
  }
}
// dst[j * dstStride + i] = src[i][j] for i, j < 16: a 16x16 block transposed in registers, so
// every store writes a whole line (a strided scalar transpose with a 4 KiB dst stride thrashed one
// L1 set and cost half of a 1x1 backward-weights pass).
inline void transpose(const float* const* src, float* dst, long dstStride) {
  __m512 r[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src[i]);
  transposeRegs(r, dst, dstStride, 16);
}
// dst[j * dstStride + i] = src[i][j] for i < 16, j < n <= 16: the first n columns only (masked
// loads: nothing past src[i][n - 1] is read).
inline void transposeN(const float* const* src, float* dst, long dstStride, int n) {
  const __mmask16 m = (__mmask16)((1u << n) - 1);
  __m512 r[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_ps(m, src[i]);
  transposeRegs(r, dst, dstStride, n);
}
// Lane l of output vector q is flat entry 16q + l of the interleaved rows: row (16q + l) % M,
// lane (16q + l) / M. The permute indices and lane masks per (q, row), built at compile time.
template <int M>
struct InterleaveTable {
  int idx[M][M][16] = {};
  unsigned short mask[M][M] = {};
  constexpr InterleaveTable() {
    for (int q = 0; q < M; ++q)
      for (int l = 0; l < 16; ++l) {
        const int f = 16 * q + l;
        idx[q][f % M][l] = f / M;
        mask[q][f % M] |= (unsigned short)(1u << l);
      }
  }
};
// dst[u * M + i] = rows[i][u] for i < M < 16, u < n <= 16: M rows interleaved, M whole vectors
// out (the last n * M floats masked), each from M masked permutes (rows[i][0 .. 16) are read).
template <int M>
inline void interleave(const float* const* rows, float* dst, int n) {
  static_assert(M > 0 && M < 16, "fewer rows than lanes");
  static constexpr InterleaveTable<M> T{};
  __m512 r[M];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) r[i] = _mm512_loadu_ps(rows[i]);
  const int total = n * M;
#pragma GCC unroll 16
  for (int q = 0; q < M; ++q) {
    if (16 * q >= total) break;
    __m512 out = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i)
      out = _mm512_mask_permutexvar_ps(out, T.mask[q][i], _mm512_loadu_si512(T.idx[q][i]), r[i]);
    const int left = total - 16 * q;
    if (left >= 16) _mm512_storeu_ps(dst + 16 * q, out);
    else _mm512_mask_storeu_ps(dst + 16 * q, (__mmask16)((1u << left) - 1), out);
  }
}
// dst[i] = src[2 * i] for i < n (a row of a stride-2 grid): per 16, masked loads of the floats from
// src[2i] to the last one kept (nothing past it is read) and one permute of their even lanes.
inline void copyEvens(float* dst, const float* src, int n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int i = 0; i < n; i += 16) {
    const int k = n - i < 16 ? n - i : 16, floats = 2 * k - 1;  // src[2i .. 2i + floats)
    const __mmask16 lo = (__mmask16)(floats >= 16 ? 0xFFFFu : (1u << floats) - 1);
    const __mmask16 hi = (__mmask16)(floats > 16 ? (1u << (floats - 16)) - 1 : 0u);
    const __m512 a = _mm512_maskz_loadu_ps(lo, src + 2 * i), b = _mm512_maskz_loadu_ps(hi, src + 2 * i + 16);
    _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << k) - 1), _mm512_permutex2var_ps(a, even, b));
  }
}
// p[2k] = v[first + k], p[2k + 1] = 0 for the first len floats (len <= 2 * (16 - first)): lanes
// along a stride-2 grid row stored into dx with the zeros between their positions, in one or
// two stores.
inline void storeSpread2(float* p, vec v, int first, int len) {
  const __m512i half = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i loIdx = _mm512_add_epi32(half, _mm512_set1_epi32(first));
  const __m512 lo = _mm512_maskz_permutexvar_ps((__mmask16)0x5555, loIdx, v);
  if (len >= 16) _mm512_storeu_ps(p, lo);
  else _mm512_mask_storeu_ps(p, (__mmask16)((1u << len) - 1), lo);
  if (len <= 16) return;
  const __m512i hiIdx = _mm512_add_epi32(half, _mm512_set1_epi32(first + 8));
  const __m512 hi = _mm512_maskz_permutexvar_ps((__mmask16)0x5555, hiIdx, v);
  if (len == 32) _mm512_storeu_ps(p + 16, hi);
  else _mm512_mask_storeu_ps(p + 16, (__mmask16)((1u << (len - 16)) - 1), hi);
}
// The columns of kept entries of an 8-float segment of M <= 8 rows: dst[u * dstStride + i] =
// rows[i][j_u] for i < M and the set bits j_0 < j_1 < ... of m (8 bits); returns their count.
// Reads rows[i][j] for set bits only. Weight panels do not use it here (HAS_COMPRESS): every ISA
// has the same primitives, and the engines pick by the trait.
template <int M>
inline int transposeKept(const float* const* rows, unsigned m, float* dst, long dstStride) {
  int u = 0;
  for (; m; m &= m - 1, ++u)
    for (int i = 0; i < M; ++i) dst[u * dstStride + i] = rows[i][__builtin_ctz(m)];
  return u;
}
// dst[0 .. k) = the src[j] whose bit j of mask (16 bits) is set, in order; returns k. A masked
// load (the other floats are not read) compressed in a register, one full store: dst[k .. 16)
// gets garbage. (vcompressps straight to memory is the slow form on Zen 4.)
// dst[0 .. n) = src[0 .. n), n <= 16: one masked load and store.
inline void copyShort(float* dst, const float* src, int n) {
  const __mmask16 m = (__mmask16)((1u << n) - 1);
  _mm512_mask_storeu_ps(dst, m, _mm512_maskz_loadu_ps(m, src));
}
inline int compress16(float* dst, const float* src, unsigned mask) {
  const __mmask16 m = (__mmask16)mask;
  _mm512_storeu_ps(dst, _mm512_maskz_compress_ps(m, _mm512_maskz_loadu_ps(m, src)));
  return __builtin_popcount(mask);
}
// dst[0 .. len) (len <= 16) = src's values in order at the lanes whose bit of mask is set, zeros
// elsewhere; returns the values used. Reads src[0 .. 16).
inline int expand16(float* dst, const float* src, unsigned mask, int len) {
  const __m512 v = _mm512_maskz_expand_ps((__mmask16)mask, _mm512_loadu_ps(src));
  if (len == 16) _mm512_storeu_ps(dst, v);
  else _mm512_mask_storeu_ps(dst, (__mmask16)((1u << len) - 1), v);
  return __builtin_popcount(mask);
}
}  // namespace simd
#pragma GCC diagnostic pop
