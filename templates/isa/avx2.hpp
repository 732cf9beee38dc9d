// ISA: AVX2 + FMA, 8 floats per vector, 16 vector registers.
// Header included by a generated kernel.cpp inside its layer namespace; needs <immintrin.h> (AVX2 + FMA enabled) included
// before it. The engine headers call the vector operations through simd::.

namespace simd {
constexpr int VW = 8;
// No vector compress: weight panels gather kept entries by transposeKept (engine/common.hpp).
constexpr bool HAS_COMPRESS = false;
// A broadcast takes a load slot and a register of its own: one-vector direct tiles share each
// broadcast among the column taps that read it (engine/direct.hpp, RowShare).
constexpr bool BROADCAST_IS_LOAD = true;
constexpr int REGISTERS = 16;
using vec = __m256;
inline vec zero() { return _mm256_setzero_ps(); }
inline vec broadcast(float a) { return _mm256_set1_ps(a); }
inline vec loadu(const float* p) { return _mm256_loadu_ps(p); }
inline void storeu(float* p, vec v) { _mm256_storeu_ps(p, v); }
inline vec fmadd(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
inline float hsum(vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// Pin a loaded value in a register: stops g++ from folding the load into every FMA that uses it
// (which would repeat the load once per use and make the loop load-bound).
inline void keep(vec& v) { asm("" : "+x"(v)); }
// Whether the direct engine stores row tails through storeLanes: through vmaskmovps (slow on AMD
// cores) a 3x3 forward ran 1.3x slower; through the two-store storeLanes below 0.90-1.05x (Zen 3,
// 3x3 on 7- to 30-wide planes). Its tails stay scalar stores.
constexpr bool CHEAP_MASKED_STORE = false;
// A store that writes the line without reading it first (p 32-byte aligned); fence() orders it.
inline void stream(float* p, vec v) { _mm256_stream_ps(p, v); }
inline void fence() { _mm_sfence(); }
inline void spill(float* out, vec v) { _mm256_storeu_ps(out, v); }
// p[0 .. count) = lanes [first, first + count) of v: a run of lanes whose destinations follow one
// another (a tile crossing a row end stores one run per row; nothing outside the run is touched).
// No vmaskmovps (~25 cycles a store on Zen 3): the run shifted down to lane 0 goes out as two
// overlapping stores of 4, 2 or 1 lanes, the second ending at the run's end.
inline void storeLanes(float* p, vec v, int first, int count) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m128 head = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(v, _mm256_add_epi32(iota, _mm256_set1_epi32(first))));
  const int last = first + count - (count >= 4 ? 4 : count >= 2 ? 2 : 1);  // the second store's first lane
  const __m128 tail = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(v, _mm256_add_epi32(iota, _mm256_set1_epi32(last))));
  float* second = p + (last - first);
  if (count >= 4) {
    _mm_storeu_ps(p, head);
    _mm_storeu_ps(second, tail);
  } else if (count >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), head);
    _mm_storel_pi(reinterpret_cast<__m64*>(second), tail);
  } else if (count == 1) {
    _mm_store_ss(p, head);
  }
}
// The in-lane shuffles of an 8x8 transpose, rows r[0..8) in place: then column j < 4 of the rows
// is permute2f128(r[j], r[4 + j], 0x20), column 4 + j the same with 0x31. Always inlined: out of
// line, r lives in memory.
[[gnu::always_inline]] inline void transposeLanes(__m256 (&r)[8]) {
  __m256 t[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4g + m], lane k: column 4k + m of rows 4g .. 4g+3.
#pragma GCC unroll 2
  for (int g = 0; g < 2; ++g) {
    r[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    r[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    r[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    r[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
}
// Rows r[0..8) in, output row j (column j of the rows) to dst + j * dstStride for j < n.
[[gnu::always_inline]] inline void transposeRegs(__m256 (&r)[8], float* dst, long dstStride, int n) {
  transposeLanes(r);
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {
    if (m < n) _mm256_storeu_ps(dst + m * dstStride, _mm256_permute2f128_ps(r[m], r[4 + m], 0x20));
    if (4 + m < n) _mm256_storeu_ps(dst + (4 + m) * dstStride, _mm256_permute2f128_ps(r[m], r[4 + m], 0x31));
  }
}
// dst[j * dstStride + i] = src[i][j] for i, j < 8: an 8x8 block transposed in registers.
inline void transpose(const float* const* src, float* dst, long dstStride) {
  __m256 r[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src[i]);
  transposeRegs(r, dst, dstStride, 8);
}
// dst[j * dstStride + i] = src[i][j] for i < 8, j < n <= 8: the first n columns only (masked
// loads: nothing past src[i][n - 1] is read).
inline void transposeN(const float* const* src, float* dst, long dstStride, int n) {
  const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256 r[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = _mm256_maskload_ps(src[i], m);
  transposeRegs(r, dst, dstStride, n);
}
// p[0 .. M) = lanes [0, M) of v (M < 8), nothing past them written.
template <int M>
[[gnu::always_inline]] inline void storeFirst(float* p, __m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  if constexpr (M == 1) _mm_store_ss(p, lo);
  if constexpr (M >= 4) _mm_storeu_ps(p, lo);
  if constexpr (M == 2 || M == 3) _mm_storel_pi(reinterpret_cast<__m64*>(p), lo);
  if constexpr (M == 3) _mm_store_ss(p + 2, _mm_movehl_ps(lo, lo));
  if constexpr (M == 5) _mm_store_ss(p + 4, hi);
  if constexpr (M >= 6) _mm_storel_pi(reinterpret_cast<__m64*>(p + 4), hi);
  if constexpr (M == 7) _mm_store_ss(p + 6, _mm_movehl_ps(hi, hi));
}
// dst[u * M + i] = rows[i][u] for i < M < 8, u < n <= 8: M rows interleaved (rows[i][0 .. 8) are
// read). One register transpose, rows past M zero, then the first M lanes of each column; scalar,
// the interleave of 6-row panels took 40% of a 1x1 forward's weight pack. (The compressing panel
// pack that calls it runs on AVX-512 only now: AVX2 panels go by transposeKept.)
template <int M>
inline void interleave(const float* const* rows, float* dst, int n) {
  static_assert(M > 0 && M < 8, "fewer rows than lanes");
  if constexpr (M == 1) {
    for (int u = 0; u < n; ++u) dst[u] = rows[0][u];
  } else if (M == 2 && n == 8) {  // two whole rows: one unpack
    const __m256 a = _mm256_loadu_ps(rows[0]), b = _mm256_loadu_ps(rows[1]);
    const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  } else {
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = i < M ? _mm256_loadu_ps(rows[i]) : _mm256_setzero_ps();
    transposeLanes(r);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      if (j < n) storeFirst<M>(dst + j * M, _mm256_permute2f128_ps(r[j], r[4 + j], 0x20));
      if (4 + j < n) storeFirst<M>(dst + (4 + j) * M, _mm256_permute2f128_ps(r[j], r[4 + j], 0x31));
    }
  }
}
// Lanes whose bit of m (8 bits) is set: all ones, the others zero.
inline __m256i laneMask(unsigned m) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m), bit), bit);
}
// The columns of kept entries of an 8-float segment of M <= 8 rows: dst[u * dstStride + i] =
// rows[i][j_u] for i < M and the set bits j_0 < j_1 < ... of m (8 bits); returns their count.
// Reads rows[i][j] for set bits only (masked loads), writes nothing else: one register transpose
// and one store a kept column, where a compress (scalar on AVX2) and a transpose of the compressed
// block took a scalar copy per kept entry.
template <int M>
[[gnu::always_inline]] inline int transposeKept(const float* const* rows, unsigned m, float* dst, long dstStride) {
  static_assert(M > 0 && M <= 8, "at most a vector of rows");
  const __m256i on = laneMask(m);
  __m256 r[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = i < M ? _mm256_maskload_ps(rows[i], on) : _mm256_setzero_ps();
  transposeLanes(r);
  int u = 0;
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    if (!((m >> j) & 1u)) continue;
    const __m256 column = j < 4 ? _mm256_permute2f128_ps(r[j % 4], r[4 + j % 4], 0x20)
                                : _mm256_permute2f128_ps(r[j % 4], r[4 + j % 4], 0x31);
    if constexpr (M == 8) _mm256_storeu_ps(dst + u * dstStride, column);
    else storeFirst<M>(dst + u * dstStride, column);
    ++u;
  }
  return u;
}
// dst[i] = src[2 * i] for i < n (a row of a stride-2 grid); reads nothing past src[2n - 2]. Eight
// at a time from two loads: the evens of each 128-bit lane by one shuffle (a0 a2 b0 b2 | a4 a6 b4
// b6), then the 64-bit pairs put in order.
inline void copyEvens(float* dst, const float* src, int n) {
  int i = 0;
  for (; i + 8 < n; i += 8) {  // src[2i + 15] comes before src[2n - 2]
    const __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
    const __m256 evens = _mm256_shuffle_ps(a, b, 0x88);
    _mm256_storeu_ps(dst + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(evens), 0xD8)));
  }
  for (; i < n; ++i) dst[i] = src[2 * i];
}
// p[2k] = v[first + k], p[2k + 1] = 0 for the first len floats (len <= 2 * (8 - first)): lanes
// along a stride-2 grid row stored into dx with the zeros between their positions.
inline void storeSpread2(float* p, vec v, int first, int len) {
  if (first == 0 && len == 16) {
    const __m256 zero = _mm256_setzero_ps();
    const __m256 lo = _mm256_unpacklo_ps(v, zero), hi = _mm256_unpackhi_ps(v, zero);
    _mm256_storeu_ps(p, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(p + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    return;
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, v);
  for (int k = 0; k < len; ++k) p[k] = k % 2 ? 0.f : lanes[first + k / 2];
}
// Lane tables of 8-lane masks m, a 3-bit lane index per field (bits 3i..3i+2) and m's set-bit
// count in bits 24-27 (popcnt is not among the target's instructions). compress[m]: field k holds
// the k-th set bit of m (where output lane k comes from); expand[m]: field j holds the number of
// set bits below bit j (where lane j's value comes from, for the lanes whose bit is set).
struct LaneTables {
  uint32_t compress[256], expand[256];
  constexpr LaneTables() : compress(), expand() {
    for (int m = 0; m < 256; ++m) {
      uint32_t c = 0, e = 0, k = 0;
      for (uint32_t j = 0; j < 8; ++j)
        if ((m >> j) & 1) c |= j << (3 * k), e |= k << (3 * j), ++k;
      compress[m] = c | k << 24;
      expand[m] = e | k << 24;
    }
  }
};
inline constexpr LaneTables laneTables{};
// The permute indices of a table entry: field i for lane i (vpermps reads the low 3 bits of each
// index, so the fields above a lane's do not matter).
inline __m256i tableIndices(uint32_t entry) {
  return _mm256_srlv_epi32(_mm256_set1_epi32((int)entry), _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21));
}
// dst[0 .. k) = the src[j] whose bit j of m (8 bits) is set, in order; returns k. One masked load,
// one permute from the table, one store of 8 floats (dst[k .. 8) gets the rest).
inline int compress8(float* dst, const float* src, unsigned m) {
  const uint32_t e = laneTables.compress[m];
  _mm256_storeu_ps(dst, _mm256_permutevar8x32_ps(_mm256_maskload_ps(src, laneMask(m)), tableIndices(e)));
  return (int)(e >> 24);
}
// dst[0 .. k) = the src[j] whose bit j of mask (16 bits) is set, in order; returns k. Reads only
// those floats; may write dst[k .. 16) too. Two table permutes, not a copy per set bit: the 1x1
// backward-data panels of neighbour rows (DirectPass::packNeighbourRows) ran 256 -> 256 @2x2 b1
// 1.52x, 128 -> 128 @4x4 b1 1.28x, 1024 -> 1024 @7 b1 1.16x faster (Zen 3, d=0.5).
// dst[0 .. n) = src[0 .. n) (no cheap masked stores here: callers keep their scalar copies).
inline void copyShort(float* dst, const float* src, int n) {
  for (int i = 0; i < n; ++i) dst[i] = src[i];
}
inline int compress16(float* dst, const float* src, unsigned mask) {
  const int lo = compress8(dst, src, mask & 0xFFu);
  return lo + compress8(dst + lo, src + 8, (mask >> 8) & 0xFFu);
}
// src's first values in order at the lanes whose bit of m (8 bits) is set, zeros elsewhere; sets
// used to the values taken. Reads src[0 .. 8).
inline __m256 expand8(const float* src, unsigned m, int& used) {
  const uint32_t e = laneTables.expand[m];
  used = (int)(e >> 24);
  const __m256 values = _mm256_permutevar8x32_ps(_mm256_loadu_ps(src), tableIndices(e));
  return _mm256_and_ps(values, _mm256_castsi256_ps(laneMask(m)));
}
// dst[0 .. len) (len <= 16) = src's values in order at the lanes whose bit of mask is set, zeros
// elsewhere; returns the values used. Reads src[0 .. 16). A whole segment is two table lookups and
// permutes; the scalar form chained each value's load on the previous lane's count (a 256 -> 256
// 1x1 on a 2x2 plane spent half its backward-weights in it).
inline int expand16(float* dst, const float* src, unsigned mask, int len) {
  if (len == 16) {
    int lo, hi;
    _mm256_storeu_ps(dst, expand8(src, mask & 0xffu, lo));
    _mm256_storeu_ps(dst + 8, expand8(src + lo, (mask >> 8) & 0xffu, hi));
    return lo + hi;
  }
  int k = 0;
  for (int j = 0; j < len; ++j) dst[j] = (mask >> j) & 1u ? src[k++] : 0.f;
  return k;
}
}  // namespace simd
