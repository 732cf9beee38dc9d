// ISA: portable scalar C++ (one float per "vector"); the fallback every x86-64 CPU runs.
// Header included by a generated kernel.cpp inside its layer namespace; needs nothing included
// before it. The engine headers call the vector operations through simd::.
namespace simd {
constexpr int VW = 1;
constexpr bool HAS_COMPRESS = false;  // weight panels gather kept entries by transposeKept
// A scalar FMA reads its operand as is: no broadcast to share.
constexpr bool BROADCAST_IS_LOAD = false;
constexpr int REGISTERS = 16;
using vec = float;
inline vec zero() { return 0.f; }
inline vec broadcast(float a) { return a; }
inline vec loadu(const float* p) { return *p; }
inline void storeu(float* p, vec v) { *p = v; }
inline vec fmadd(vec a, vec b, vec c) { return a * b + c; }
inline vec add(vec a, vec b) { return a + b; }
inline float hsum(vec v) { return v; }
inline void keep(vec&) {}
// One lane: nothing to mask.
constexpr bool CHEAP_MASKED_STORE = false;
// No streaming stores: a plain one.
inline void stream(float* p, vec v) { *p = v; }
inline void fence() {}
inline void spill(float* out, vec v) { *out = v; }
// p[0 .. count) = lanes [first, first + count) of v: with one lane, first is 0 and count 1.
inline void storeLanes(float* p, vec v, int, int) { *p = v; }
// dst[j * dstStride + i] = src[i][j] for i, j < VW: with one lane, a copy.
inline void transpose(const float* const* src, float* dst, long) { *dst = *src[0]; }
inline void transposeN(const float* const* src, float* dst, long, int n) {
  if (n > 0) *dst = *src[0];
}
// dst[u * M + i] = rows[i][u] for i < M, u < n <= 1: M rows interleaved.
template <int M>
inline void interleave(const float* const* rows, float* dst, int n) {
  for (int u = 0; u < n; ++u)
    for (int i = 0; i < M; ++i) dst[u * M + i] = rows[i][u];
}
// dst[i] = src[2 * i] for i < n (a row of a stride-2 grid).
inline void copyEvens(float* dst, const float* src, int n) {
  for (int i = 0; i < n; ++i) dst[i] = src[2 * i];
}
// p[0] = v, p[1] = 0 for the first len floats (len = 1 or 2).
inline void storeSpread2(float* p, vec v, int, int len) {
  p[0] = v;
  if (len == 2) p[1] = 0.f;
}
// The columns of kept entries of an 8-float segment of M <= 8 rows: dst[u * dstStride + i] =
// rows[i][j_u] for i < M and the set bits j_0 < j_1 < ... of m (8 bits); returns their count.
// Reads rows[i][j] for set bits only.
template <int M>
inline int transposeKept(const float* const* rows, unsigned m, float* dst, long dstStride) {
  int u = 0;
  for (; m; m &= m - 1, ++u)
    for (int i = 0; i < M; ++i) dst[u * dstStride + i] = rows[i][__builtin_ctz(m)];
  return u;
}
// dst[0 .. k) = the src[j] whose bit j of mask (16 bits) is set, in order; returns k. Reads only
// those floats; may write dst[k .. 16) too.
// dst[0 .. n) = src[0 .. n) (no cheap masked stores here: callers keep their scalar copies).
inline void copyShort(float* dst, const float* src, int n) {
  for (int i = 0; i < n; ++i) dst[i] = src[i];
}
inline int compress16(float* dst, const float* src, unsigned mask) {
  int k = 0;
  for (; mask; mask &= mask - 1) dst[k++] = src[__builtin_ctz(mask)];
  return k;
}
// dst[0 .. len) (len <= 16) = src's values in order at the lanes whose bit of mask is set, zeros
// elsewhere; returns the values used.
inline int expand16(float* dst, const float* src, unsigned mask, int len) {
  int k = 0;
  for (int j = 0; j < len; ++j) dst[j] = (mask >> j) & 1u ? src[k++] : 0.f;
  return k;
}
}  // namespace simd
