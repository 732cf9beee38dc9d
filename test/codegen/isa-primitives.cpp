// The lane primitives of one ISA header (templates/isa/<isa>.hpp) against their contracts, with
// every mask, lane offset and count: built by isa-primitives.test.ts with the ISA's own flags
// (-include of the header's prerequisites, -DISA_HEADER="isa/<isa>.hpp"). A kernel test fails
// when a primitive is wrong, but only on the counts its shapes happen to reach; this walks all.
// Prints "ok <checks>" or the first failures, and exits 1 on a failure.
#include <immintrin.h>

#include <cstdint>
#include <cstdio>
#include <utility>

namespace probe {
#include ISA_HEADER
}
using namespace probe;

constexpr int VW = simd::VW;
constexpr float POISON = -7777.f;
static long checks = 0, failures = 0;

static void check(bool ok, const char* what, long a, long b = -1, long c = -1) {
  ++checks;
  if (ok) return;
  if (failures++ < 10) std::printf("FAIL %s (%ld, %ld, %ld)\n", what, a, b, c);
}

static float src[4 * 64 * 64], dst[4 * 64 * 64];
static void poison() {
  for (float& v : dst) v = POISON;
}

// Every 16-bit mask: compress16 packs the selected floats in order (what it writes past them is
// free), expand16 spreads them back with zeros in between and writes nothing past len.
static void compressAndExpand() {
  for (unsigned mask = 0; mask < 65536; ++mask) {
    poison();
    int k = 0;
    const int used = simd::compress16(dst, src, mask);
    for (int j = 0; j < 16; ++j)
      if ((mask >> j) & 1u) check(dst[k++] == src[j], "compress16 value", mask, j);
    check(used == k, "compress16 count", mask, used);
    for (int len : {16, 15, 9, 8, 1}) {
      const unsigned m = len == 16 ? mask : mask & ((1u << len) - 1);
      poison();
      const int got = simd::expand16(dst, src, m, len);
      int n = 0;
      for (int j = 0; j < len; ++j) check(dst[j] == ((m >> j) & 1u ? src[n++] : 0.f), "expand16 value", m, len, j);
      check(got == n, "expand16 count", m, len, got);
      for (int j = len; j < 32; ++j) check(dst[j] == POISON, "expand16 wrote past len", m, len, j);
    }
  }
}

// dst[u * M + i] = rows[i][u] for u < n; nothing past n * M written.
template <int M>
static void interleaveRows() {
  const float* rows[M > 0 ? M : 1];
  for (int i = 0; i < M; ++i) rows[i] = src + 64 * i + 3;
  for (int n = 0; n <= VW; ++n) {
    poison();
    simd::interleave<M>(rows, dst, n);
    for (int u = 0; u < n; ++u)
      for (int i = 0; i < M; ++i) check(dst[u * M + i] == rows[i][u], "interleave value", M, n, u * M + i);
    for (int j = n * M; j < n * M + 2 * VW; ++j) check(dst[j] == POISON, "interleave wrote past n * M", M, n, j);
  }
}
template <int... Ms>
static void interleaveAll(std::integer_sequence<int, Ms...>) {
  (interleaveRows<Ms + 1>(), ...);
}

// dst[j * stride + i] = src[i][j] for i < VW, j < n; nothing else written.
static void transposes() {
  const float* rows[VW];
  for (int i = 0; i < VW; ++i) rows[i] = src + 64 * i + 5;
  for (long stride : {(long)VW, (long)VW + 3, 3L * VW}) {
    for (int n = 0; n <= VW; ++n) {
      poison();
      if (n == VW && stride == 3L * VW) simd::transpose(rows, dst, stride);
      else simd::transposeN(rows, dst, stride, n);
      for (long j = 0; j < VW * stride + VW; ++j) {
        const long col = j / stride, lane = j % stride;
        const bool written = col < n && lane < VW;
        check(dst[j] == (written ? rows[lane][col] : POISON), "transpose", stride, n, j);
      }
    }
  }
}

// Every 8-bit mask m and M <= 8 rows: dst[u * stride + i] = rows[i][j_u] for the set bits j_u of
// m, i < M; returns their count; nothing else written.
template <int M>
static void transposeKeptRows() {
  const float* rows[M];
  for (int i = 0; i < M; ++i) rows[i] = src + 64 * i + 5;
  for (long stride : {(long)M, (long)M + 3, 14L}) {
    if (stride < M) continue;
    for (unsigned m = 0; m < 256; ++m) {
      poison();
      const int got = simd::transposeKept<M>(rows, m, dst, stride);
      int u = 0;
      for (int j = 0; j < 8; ++j)
        if ((m >> j) & 1u) {
          for (int i = 0; i < M; ++i) check(dst[u * stride + i] == rows[i][j], "transposeKept value", M, m, j);
          ++u;
        }
      check(got == u, "transposeKept count", M, m, got);
      for (long k = 0; k < 9 * stride + 8; ++k)
        if (k / stride >= u || k % stride >= M) check(dst[k] == POISON, "transposeKept wrote elsewhere", M, m, k);
    }
  }
}
template <int... Ms>
static void transposeKeptAll(std::integer_sequence<int, Ms...>) {
  (transposeKeptRows<Ms + 1>(), ...);
}

// copyEvens: dst[i] = src[2i] for i < n, nothing written past n.
static void evens() {
  for (int n = 0; n <= 4 * VW + 3; ++n) {
    poison();
    simd::copyEvens(dst, src + 7, n);
    for (int i = 0; i < n + 2 * VW; ++i) check(dst[i] == (i < n ? src[7 + 2 * i] : POISON), "copyEvens", n, i);
  }
}

// storeLanes: p[0 .. count) = lanes [first, first + count); storeSpread2: p[2k] = lane first + k,
// p[2k + 1] = 0 for the first len floats. Nothing else written.
static void laneStores() {
  const simd::vec v = simd::loadu(src + 11);
  for (int first = 0; first < VW; ++first) {
    for (int count = 1; first + count <= VW; ++count) {
      poison();
      simd::storeLanes(dst + 1, v, first, count);
      for (int j = 0; j < 2 * VW + 2; ++j) {
        const bool written = j >= 1 && j < 1 + count;
        check(dst[j] == (written ? src[11 + first + j - 1] : POISON), "storeLanes", first, count, j);
      }
    }
    for (int len = 1; len <= 2 * (VW - first); ++len) {
      if (VW == 1 && len > 2) break;
      poison();
      simd::storeSpread2(dst, v, first, len);
      for (int j = 0; j < 4 * VW; ++j) {
        const float want = j >= len ? POISON : j % 2 ? 0.f : src[11 + first + j / 2];
        check(dst[j] == want, "storeSpread2", first, len, j);
      }
    }
  }
}

int main() {
  for (int i = 0; i < (int)(sizeof src / sizeof *src); ++i) src[i] = (float)(i % 977) + 0.25f;
  compressAndExpand();
  interleaveAll(std::make_integer_sequence<int, VW - 1>{});
  transposes();
  transposeKeptAll(std::make_integer_sequence<int, 8>{});
  evens();
  laneStores();
  if (failures) {
    std::printf("%ld of %ld checks failed\n", failures, checks);
    return 1;
  }
  std::printf("ok %ld\n", checks);
  return 0;
}
