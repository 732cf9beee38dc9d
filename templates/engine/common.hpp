// ---- engine/common: workspaces, microkernel, epilogue helpers (shared by all passes) ----
// Expects (kernel.cpp includes it inside the layer namespace): the std headers <algorithm> <cstdint>
// <cstdlib> <cstring> <new> <vector>, <omp.h>, and simd:: (isa/<isa>.hpp).

// A growable, 64-byte aligned float buffer that is kept between calls: large packing buffers
// would otherwise be page-faulted in again on every call.
struct Buffer {
  float* data = nullptr;
  size_t size = 0;
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      data = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
      if (!data) throw std::bad_alloc();
      size = n;
    }
    return data;
  }
  ~Buffer() { std::free(data); }
};

struct IntBuffer {
  std::vector<int32_t> v;
  int32_t* get(size_t n) { if (v.size() < n) v.resize(n); return v.data(); }
};

// Per-thread scratch (packed B block and offset tables) plus per-call shared packs.
struct Workspace {
  std::vector<Buffer> bBlock;
  std::vector<IntBuffer> aOff, bOff, colOff, tapOff;
  Buffer aPack, dyPack, xPack;
  void ensureThreads(int t) {
    if ((int)bBlock.size() < t) { bBlock.resize(t); aOff.resize(t); bOff.resize(t); colOff.resize(t); tapOff.resize(t); }
  }
};

// The register-blocked microkernel: acc[MR][NV] = sum over `rows` reduction rows t of
//   broadcast(A[aOff[t] + i]) * B[bOff[t] + v*VW ... +VW).
// Offset tables let one kernel read packed im2col blocks, padded planes or raw tensors.
template <int MR, int NV>
static inline void microkernel(int rows, const int32_t* __restrict aOff, const int32_t* __restrict bOff,
                               const float* __restrict A, const float* __restrict B, simd::vec (&acc)[MR][NV]) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = simd::zero();
  for (int t = 0; t < rows; ++t) {
    const float* a = A + aOff[t];
    const float* b = B + bOff[t];
    simd::vec bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = simd::loadu(b + v * simd::VW);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const simd::vec ai = simd::broadcast(a[i]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = simd::fmadd(ai, bv[v], acc[i][v]);
    }
  }
}

// Pack weights into MR-row panels: panel[pm][row][MR] for reduction rows (c, tap); rows past M are 0.
// `weightAt(m, c, tap)` returns the weight of output row m, reduction channel c, tap.
template <int MR, class WeightAt>
static void packPanels(float* dst, int M, int KC, int RS, int threads, WeightAt weightAt) {
  const int panels = (M + MR - 1) / MR;
  const long rowsPerPanel = (long)KC * RS;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int pm = 0; pm < panels; ++pm) {
    float* out = dst + (long)pm * rowsPerPanel * MR;
    for (int c = 0; c < KC; ++c)
      for (int tap = 0; tap < RS; ++tap, out += MR)
        for (int i = 0; i < MR; ++i) {
          const int m = pm * MR + i;
          out[i] = m < M ? weightAt(m, c, tap) : 0.f;
        }
  }
}

// Zero-fill channels of a [N][CH][PLANE] tensor that are not in the kept list.
static void zeroPrunedChannels(float* t, int n, int ch, long plane, const int32_t* kept, int nKept, int threads) {
  std::vector<char> keep(ch, 0);
  for (int i = 0; i < nKept; ++i) keep[kept[i]] = 1;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
  for (int b = 0; b < n; ++b)
    for (int c = 0; c < ch; ++c)
      if (!keep[c]) std::memset(t + ((long)b * ch + c) * plane, 0, sizeof(float) * plane);
}

// Decide how many panels one work item covers: whole M when there are enough items for the
// threads, else split M so both cores get work (e.g. a 2x2-output layer with few column blocks).
static inline int panelsPerItem(int panels, long baseItems, int threads) {
  if (panels <= 1 || baseItems >= 4L * threads) return panels > 0 ? panels : 1;
  const long want = (4L * threads + baseItems - 1) / baseItems;
  const int chunks = (int)std::min<long>(panels, want);
  return (panels + chunks - 1) / chunks;
}
