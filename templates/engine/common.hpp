// ---- engine/common: workspaces, microkernel, epilogue helpers (shared by all passes) ----
// Expects (kernel.cpp includes it inside the layer namespace): the std headers <algorithm> <cstdint>
// <cstdlib> <cstring> <new> <vector>, <omp.h>, and simd:: (isa/<isa>.hpp).

// Runs body() on a team of `threads` OpenMP threads, or on the calling thread alone when threads
// is 1. Even a one-thread parallel region costs libgomp 2-3 µs to start (measured on Zen 5), more
// than a tiny layer's whole pass; the worksharing loops inside body() (`#pragma omp for`) then run
// serially, as OpenMP specifies for loops outside a parallel region.
template <class Body>
static inline void parallel(int threads, Body&& body) {
  if (threads <= 1) {
    body();
    return;
  }
#pragma omp parallel num_threads(threads)
  body();
}

// f(i) for i in [0, n), split statically across `threads` in a region of its own. With one
// thread it is a plain loop, also inside another region's work item, where an orphaned
// `#pragma omp for` would bind to the enclosing team and hand it only part of the range.
template <class F>
static inline void parallelFor(int threads, long n, F&& f) {
  if (threads <= 1) {
    for (long i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long i = 0; i < n; ++i) f(i);
}

// Zeros of pruned channels from this many bytes per call on go out with streaming stores.
constexpr long STREAM_ZEROS_BYTES = 1L << 20;

// Whether a pass that reads `readBytes` and writes `writeBytes` should write its results with
// streaming stores: from 17 MiB together on (over half of a Zen 4 CCD's 32 MiB L3, the
// last-level cache two cores share) the results would not stay cached for the next layer
// anyway, and a plain store reads each line in first. Below it they may: a 1x1 32 -> 64 @112 b4
// forward at d=0.5 (15.3 MiB) ran 0.76x as fast with streaming stores in a loop over the layer,
// 256 -> 64 @56 b8 (18.4 MiB) 1.06x. (A constant: sysconf's L3 size read 320 MiB on a 2-core
// Zen 4 VM.)
constexpr long STREAM_RESULTS_BYTES = 17L << 20;
static inline bool streamResults(long readBytes, long writeBytes) {
  return readBytes + writeBytes >= STREAM_RESULTS_BYTES;
}

// Scratch memory of the same kind as the runtime's output pool (native/runtime): 64-byte aligned;
// blocks of 2 MiB and more are mmap'ed 2 MiB-aligned and advised for transparent huge pages
// (MASKACC_HUGEPAGES=0 turns that off), so packing buffers fault in and sit in few TLB entries.
constexpr size_t HUGE_BLOCK = size_t(2) << 20;
static inline bool hugePagesWanted() {
  static const bool on = [] {
    const char* v = std::getenv("MASKACC_HUGEPAGES");
    return !(v && (!std::strcmp(v, "0") || !std::strcmp(v, "false") || !std::strcmp(v, "off") || !std::strcmp(v, "no")));
  }();
  return on;
}
static inline void* scratchAlloc(size_t bytes) {
  if (bytes < HUGE_BLOCK) return std::aligned_alloc(64, ((bytes + 63) / 64) * 64);
  const size_t len = bytes + HUGE_BLOCK;
  char* p = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) return nullptr;
  char* a = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(p) + HUGE_BLOCK - 1) & ~(uintptr_t)(HUGE_BLOCK - 1));
  if (a > p) munmap(p, a - p);
  if (p + len > a + bytes) munmap(a + bytes, (p + len) - (a + bytes));
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
  madvise(a, bytes, hugePagesWanted() ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);  // EINVAL without THP: harmless
#endif
  return a;
}
static inline void scratchFree(void* p, size_t bytes) {
  if (!p) return;
  if (bytes < HUGE_BLOCK) std::free(p);
  else munmap(p, bytes);
}

// A growable float buffer of scratch memory, kept by its Workspace between calls (grown to the
// largest request once, never per call).
struct Buffer {
  float* data = nullptr;
  size_t size = 0, bytes = 0;
  float* get(size_t n) {
    if (n > size) {
      scratchFree(data, bytes);
      data = nullptr;
      size = bytes = 0;
      const size_t want = std::max<size_t>(n * sizeof(float), 64);
      data = static_cast<float*>(scratchAlloc(want));
      if (!data) throw std::bad_alloc();
      bytes = want;
      size = n;
    }
    return data;
  }
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : data(o.data), size(o.size), bytes(o.bytes) { o.data = nullptr; o.size = o.bytes = 0; }
  ~Buffer() { scratchFree(data, bytes); }
};

struct IntBuffer {
  std::vector<int32_t> v;
  int32_t* get(size_t n) { if (v.size() < n) v.resize(n); return v.data(); }
};

// A run of weight-panel entries gatherRowsTransposed packs together: entries [t0, t1), whose
// offsets lie within the 64 floats from `base` (a multiple of 16), bit j of mask set for base + j.
struct RowChunk {
  long base;
  uint64_t mask;
  long t0, t1;
};

// Per-thread scratch (packed B block and offset tables) plus per-call shared packs.
struct Workspace {
  int n = 0;  // images in the current call (1..L::N), set by the entry points
  std::vector<Buffer> bBlock, lanePack, wPrivate;
  std::vector<IntBuffer> aOff, bOff, colOff, tapOff;
  IntBuffer redOff;  // packed weights: w offset of each (reduction channel, tap)
  IntBuffer rowOff;  // packed weights: w offset of each row (GemmPass::packA, transposed weights)
  std::vector<RowChunk> rowChunks;  // redOff in gatherRowsTransposed's chunks (forward)
  Buffer aPack, dyPack, xPack;
  const float* ownedW = nullptr;  // GemmPass::packA left the panels to the pointwise runner's threads (these weights)
  bool ownedTransposed = false;   // ... to pack by packTransposedRange (else packRowsPanel)
  void ensureThreads(int t) {
    if ((int)bBlock.size() < t) { bBlock.resize(t); lanePack.resize(t); wPrivate.resize(t); aOff.resize(t); bOff.resize(t); colOff.resize(t); tapOff.resize(t); }
  }
};

// An MT x NV-vector tile of partial sums: zero, or in memory <-> registers.
template <int MT, int NV>
static inline void zeroTile(simd::vec (&acc)[MT][NV]) {
#pragma GCC unroll 16
  for (int m = 0; m < MT; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[m][v] = simd::zero();
}
template <int MT, int NV>
static inline void loadTile(const float* p, simd::vec (&acc)[MT][NV]) {
#pragma GCC unroll 16
  for (int m = 0; m < MT; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[m][v] = simd::loadu(p + (m * NV + v) * simd::VW);
}
template <int MT, int NV>
static inline void storeTile(float* p, const simd::vec (&acc)[MT][NV]) {
#pragma GCC unroll 16
  for (int m = 0; m < MT; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) simd::storeu(p + (m * NV + v) * simd::VW, acc[m][v]);
}

// The 16-float segments from `base` on that sorted indices idx[0, n) fall in, as lane masks: bit
// l of mask[q] is set when base + 16q + l is an index (mask[] zeroed by the caller). What a
// compress16 or expand16 per segment takes to gather or scatter those floats.
static inline void segmentMasks(const int32_t* idx, int n, long base, unsigned* mask) {
  for (int i = 0; i < n; ++i) mask[(idx[i] - base) / 16] |= 1u << ((idx[i] - base) % 16);
}
// dst = src's floats at the set bits of mask[0, segments) (16 floats a segment), in order; each
// compress stores a whole vector, so up to 15 floats past the kept ones are overwritten.
static inline void compressSegments(float* dst, const float* src, const unsigned* mask, int segments) {
  int pos = 0;
  for (int q = 0; q < segments; ++q)
    if (mask[q]) pos += simd::compress16(dst + pos, src + 16 * q, mask[q]);
}

// f(i) for i = 0 .. N-1, i a compile-time constant (std::integral_constant): a tile's rows acc[i]
// walked this way stay in registers. A loop over them that GCC declines to unroll indexes acc at
// run time, so the whole tile lives on the stack, FMA loop included (the strided 1x1
// backward-data's 8 x 48 tiles: memory operands in its FMAs). f must be always_inline too.
template <int N, int I = 0, class F>
[[gnu::always_inline]] static inline void unrolled(F&& f) {
  if constexpr (I < N) {
    f(std::integral_constant<int, I>{});
    unrolled<N, I + 1>(f);
  }
}

// f(integral_constant<int, n>) for 1 <= n <= N (n below 1 counts as 1): a tile's vector count
// as a compile-time constant, for tiles narrower than the usual N vectors.
template <int N, class F>
[[gnu::always_inline]] static inline void upToVectors(int n, F&& f) {
  if constexpr (N > 1)
    if (n < N) return upToVectors<N - 1>(n, f);
  f(std::integral_constant<int, N>{});
}

// The microkernels (this one, bcastKernel, tapTile, PointwiseWeights::tile) are always inlined:
// their tile arrives by reference, and out of line it lives in memory. A unit holding several
// layers at -O2 left such a kernel out of line and ran 8x8-plane layers 2.3x slower.

// One step of the broadcast microkernels: acc[m][v] += broadcast(s[m * STEP]) * the NV vectors
// at v, for rows LO <= m < HI of the tile.
template <int M, int NV, long STEP, int LO = 0, int HI = M>
[[gnu::always_inline]] static inline void broadcastStep(const float* v, const float* s, simd::vec (&acc)[M][NV]) {
  simd::vec vv[NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) vv[j] = simd::loadu(v + j * simd::VW);
#pragma GCC unroll 16
  for (int m = LO; m < HI; ++m) {
    const simd::vec b = simd::broadcast(s[m * STEP]);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[m][j] = simd::fmadd(b, vv[j], acc[m][j]);
  }
}

// The register-blocked microkernel: acc[MR][NV] = sum over `rows` reduction rows t of
//   broadcast(A[aOff[t] + i]) * B[bOff[t] + v*VW ... +VW).
// Offset tables let one kernel read packed im2col blocks, padded planes or raw tensors.
template <int MR, int NV>
[[gnu::always_inline]] static inline void microkernel(int rows, const int32_t* __restrict aOff, const int32_t* __restrict bOff,
                               const float* __restrict A, const float* __restrict B, simd::vec (&acc)[MR][NV]) {
  zeroTile(acc);
  for (int t = 0; t < rows; ++t) broadcastStep<MR, NV, 1>(B + bOff[t], A + aOff[t], acc);
}

// microkernel that also asks, per reduction row, for the lines `ahead` floats past its B run: the
// run the next tile reads, where B rows are planes of a raw tensor (more streams than the hardware
// prefetchers follow).
template <int MR, int NV>
[[gnu::always_inline]] static inline void microkernelAhead(int rows, const int32_t* __restrict aOff,
                                                           const int32_t* __restrict bOff, const float* __restrict A,
                                                           const float* __restrict B, long ahead,
                                                           simd::vec (&acc)[MR][NV]) {
  constexpr int LINE = 64 / sizeof(float);
  zeroTile(acc);
  for (int t = 0; t < rows; ++t) {
#pragma GCC unroll 4
    for (int l = 0; l < NV * simd::VW; l += LINE) __builtin_prefetch(B + bOff[t] + ahead + l);
    broadcastStep<MR, NV, 1>(B + bOff[t], A + aOff[t], acc);
  }
}

// off[0, n) as gatherRowsTransposed's chunks: each run of entries within 64 floats of its first
// one's 16-float segment. Built once per call and shared by every panel. Returns false (chunks
// unusable) unless off is strictly increasing.
static inline bool buildRowChunks(const int32_t* off, long n, std::vector<RowChunk>& chunks) {
  chunks.clear();
  for (long t0 = 0, t1 = 0; t0 < n; t0 = t1) {
    const long base = off[t0] & ~15L;
    uint64_t mask = 0;
    for (; t1 < n && off[t1] < base + 64; ++t1) {
      if (t1 > t0 && off[t1] <= off[t1 - 1]) return false;
      mask |= uint64_t(1) << (off[t1] - base);
    }
    chunks.push_back({base, mask, t0, t1});
  }
  return true;
}

// gatherRowsTransposed where no vector compress exists (AVX2, scalar): each 8-float segment of a
// chunk, 8 rows at a time, is transposed in registers and only its kept columns are stored
// (transposeKept). The compress form copied each kept entry alone (AVX2's compress16 is a scalar
// loop); against it (Zen 3, d=0.5, forward): 256 -> 256 1x1 @2x2 b1 1.63x, 1024 -> 1024 @7 b1
// 1.10x, 2048 -> 512 and 512 -> 2048 @7 b8 1.05x, 960 -> 160 @7 b4 1.04x; 3x3 layers even.
template <int ROWS>
static inline void gatherRowsKept(const float* const* src, const RowChunk* first, const RowChunk* last,
                                  float* out) {
  constexpr int SEG = 8, TAIL = ROWS % SEG;
  for (const RowChunk* chunk = first; chunk != last; ++chunk) {
    long t = chunk->t0;
    for (int q = 0; q < 64 / SEG; ++q) {
      const unsigned m = (unsigned)(chunk->mask >> (SEG * q)) & 0xFFu;
      if (!m) continue;
      const long at = chunk->base + SEG * q;
      const float* rows[SEG];
      int kept = 0;
      for (int i = 0; i + SEG <= ROWS; i += SEG) {
        for (int r = 0; r < SEG; ++r) rows[r] = src[i + r] + at;
        kept = simd::transposeKept<SEG>(rows, m, out + t * ROWS + i, ROWS);
      }
      if constexpr (TAIL > 0) {
        for (int r = 0; r < TAIL; ++r) rows[r] = src[ROWS - TAIL + r] + at;
        kept = simd::transposeKept<TAIL>(rows, m, out + t * ROWS + ROWS - TAIL, ROWS);
      }
      t += kept;
    }
  }
}

// gatherRowsTransposed with a vector compress (AVX-512): per chunk, each row's entries are
// compressed into a small block (whole 16-float segments through a lane mask), which is then
// transposed in registers (fewer rows than lanes: interleaved; scalar, that took 70% of the pack
// of a 1x1 @7 forward).
template <int ROWS>
static inline void gatherRowsCompressed(const float* const* src, const RowChunk* first, const RowChunk* last,
                                        float* out) {
  constexpr int VW = simd::VW, SPAN = 64, LD = SPAN + 16;  // LD: block rows 320 bytes apart, not 256
  alignas(64) float block[ROWS][LD];
  for (const RowChunk* chunk = first; chunk != last; ++chunk) {
    const RowChunk& k = *chunk;
    const int len = (int)(k.t1 - k.t0);
    for (int i = 0; i < ROWS; ++i) {
      const float* row = src[i] + k.base;
      int pos = 0;
      for (int q = 0; q < SPAN / 16; ++q) {  // pos <= 16 q: a segment's 16-float store stays in the row
        const unsigned m = (unsigned)(k.mask >> (16 * q)) & 0xFFFFu;
        if (m) pos += simd::compress16(block[i] + pos, row + 16 * q, m);
      }
    }
    float* dst = out + k.t0 * ROWS;
    for (int t = 0; t < len; t += VW) {  // block rows hold LD >= len + VW floats: whole vectors are read
      const int n = std::min(VW, len - t);
      if constexpr (ROWS < VW) {
        const float* rows[ROWS];
        for (int i = 0; i < ROWS; ++i) rows[i] = &block[i][t];
        simd::interleave<ROWS>(rows, dst + (long)t * ROWS, n);
      } else {
        int i = 0;
        for (; i + VW <= ROWS; i += VW) {
          const float* rows[VW];
          for (int r = 0; r < VW; ++r) rows[r] = &block[i + r][t];
          simd::transposeN(rows, dst + (long)t * ROWS + i, ROWS, n);
        }
        for (; i < ROWS; ++i)  // rows past whole vectors (an AVX2 tile of 14 rows)
          for (int u = 0; u < n; ++u) dst[(long)(t + u) * ROWS + i] = block[i][t + u];
      }
    }
  }
}

// out[t * ROWS + i] = src[i][off[t]] for i < ROWS, t < n: a weight panel, rows innermost, where
// each row's entries lie along it in order (forward: filter k's w[k][c][r][s]); off comes as its
// chunks (buildRowChunks). Reading the ROWS rows side by side instead, one float of each per step,
// kept ROWS streams in flight whose lines are C*R*S floats apart, in few L1 sets: packing took 56%
// of a batch-1 1x1 forward at C = 1024 on 7x7. Against that walk: 256 -> 256 1x1 @2x2
// b1 forward 41 -> 10 µs, 384 -> 384 @7 b1 1.25x, 72 -> 40 3x3 b2 1.22x; small 3x3 layers at
// batch 64 within 1-3%. Chunks [first, last) only: any subset of the chunks packs on its own.
template <int ROWS>
static inline void gatherRowsTransposed(const float* const* src, const RowChunk* first, const RowChunk* last,
                                        float* out) {
  if constexpr (simd::HAS_COMPRESS) gatherRowsCompressed<ROWS>(src, first, last, out);
  else gatherRowsKept<ROWS>(src, first, last, out);
}

template <int ROWS>
static inline void gatherRowsTransposed(const float* const* src, const std::vector<RowChunk>& chunks, float* out) {
  gatherRowsTransposed<ROWS>(src, chunks.data(), chunks.data() + chunks.size(), out);
}

// out[t * ROWS + i] = src[i][off[t]] for i < ROWS (a multiple of VW), t < n: a weight panel, rows
// innermost, where entries come in runs of consecutive floats (a kept channel's taps, forward;
// one filter's taps for a kept channel, backward-data). Each run, VW entries at a time, is one
// VW x VW transpose in registers per VW rows, from masked loads (nothing past a run is read).
// Compressing 64-float windows of each row into a block first (gatherRowsTransposed) took a fifth
// of a 3x3 forward with 256 kept channels on 7x7 at batch 8.
template <int ROWS>
static inline void gatherRunsTransposed(const float* const* src, const int32_t* off, long n, float* out) {
  constexpr int VW = simd::VW;
  static_assert(ROWS % VW == 0, "whole vectors of rows");
  for (int i = 0; i < ROWS; i += VW)
    for (long t0 = 0, t1 = 0; t0 < n; t0 = t1) {
      for (t1 = t0 + 1; t1 < n && t1 - t0 < VW && off[t1] == off[t1 - 1] + 1;) ++t1;
      const float* rows[VW];
      for (int r = 0; r < VW; ++r) rows[r] = src[i + r] + off[t0];
      simd::transposeN(rows, out + t0 * ROWS + i, ROWS, (int)(t1 - t0));
    }
}

// Adds entries [at, at + n) of the team's private partial buffers (ws.bBlock[t]) into thread 0's
// and returns them there: vector adds over a run (a scalar sum per entry, reloading each thread's
// buffer, took a tenth of a 1x1 backward-weights pass). Call after the loop that filled the
// partials, each run by one thread.
static inline const float* sumOverTeam(Workspace& ws, int team, long at, long n) {
  float* sum = ws.bBlock[0].data + at;
  for (int t = 1; t < team; ++t) {
    const float* p = ws.bBlock[t].data + at;
    const long whole = n - n % simd::VW;  // (j + VW <= n as the bound: a -Waggressive-loop-optimizations false alarm)
    for (long j = 0; j < whole; j += simd::VW)
      simd::storeu(sum + j, simd::add(simd::loadu(sum + j), simd::loadu(p + j)));
    for (long j = whole; j < n; ++j) sum[j] += p[j];
  }
  return sum;
}

// Zero-fill n images of `image` floats each, one image per thread at a time.
static void zeroAll(float* t, int n, long image, int threads) {
  parallel(n > 1 ? threads : 1, [&] {
#pragma omp for schedule(static)
    for (int b = 0; b < n; ++b) std::memset(t + (long)b * image, 0, sizeof(float) * image);
  });
}

// Zero-fill `rows` rows of `len` floats, split across the threads (dw of a 1x1 with 2048 filters
// is 4 MB: zeroed by one thread, the other spun idle for a tenth of the pass).
static void zeroRows(float* t, long rows, long len, int threads) {
  parallel(rows * len >= (1L << 16) ? threads : 1, [&] {
#pragma omp for schedule(static)
    for (long r = 0; r < rows; ++r) std::memset(t + r * len, 0, sizeof(float) * len);
  });
}

// p[0, len) = 0, the whole cache lines in it with streaming stores: they are written without
// being read first (a plain store reads each line in before it writes it), and they do not push
// the kernel's data out of the caches. The partial lines at either end take plain stores: a
// streaming store of part of a line goes out on its own, and 98-float runs (two pruned channels
// of a 7x7 plane) streamed from 32-byte boundaries made a 1x1 512 -> 2048 @7 b8 forward 1.32x
// slower, 2048 -> 512 backward-data 1.46x (Zen 3, AVX2, 1 of 3 channels kept).
static inline void zeroStreaming(float* p, long len) {
  constexpr long LINE = 64 / sizeof(float);
  const long head = std::min<long>(len, (LINE - (long)(reinterpret_cast<uintptr_t>(p) / sizeof(float) % LINE)) % LINE);
  std::memset(p, 0, sizeof(float) * head);
  long i = head;
  for (; i + LINE <= len; i += LINE)
    for (long v = 0; v < LINE; v += simd::VW) simd::stream(p + i + v, simd::zero());
  std::memset(p + i, 0, sizeof(float) * (len - i));
}

// Zero-fill channels of a [N][CH][PLANE] tensor that are not in the kept list (sorted, as the
// binding checks): walks the gaps between kept indices, allocates nothing. Pruned channels of a
// large tensor are zeroed with streaming stores: a ResNet-56 16-channel layer at 8 kept, batch 64,
// writes 2 MB of zeros per call next to 2 MB of results; nothing reads them back soon (the next
// masked layer skips these channels). Gaps under STREAM_RUN_FLOATS (a 7x7 plane is 49 floats)
// are plain stores (1x1 512 -> 2048 @7 b8 forward 1.04x, 2048 -> 512 backward-data 1.03x without
// streaming them; with two-channel gaps, against streaming their whole lines, 1.03-1.05x in a
// loop and even from cold caches). From 14x14 planes on streaming wins (1x1 256 -> 1024 @14 b16
// forward 1.07-1.11x against plain stores; 28x28 1.03-1.15x; ResNet-56's 16 -> 16 @32 b64 from
// cold caches 1.04-1.06x).
constexpr long STREAM_RUN_FLOATS = 8 * 64 / sizeof(float);  // 8 cache lines
static inline bool streamZeros(int n, int ch, long plane, int nKept) {
  return (long)n * (ch - nKept) * plane * (long)sizeof(float) >= STREAM_ZEROS_BYTES;
}
// Gap i of image b: the pruned channels between kept[i - 1] and kept[i] (i = nKept: after the last).
static inline void zeroGap(float* t, int b, int i, int ch, long plane, const int32_t* kept, int nKept, bool stream) {
  const int from = i > 0 ? kept[i - 1] + 1 : 0, to = i < nKept ? kept[i] : ch;
  if (to <= from) return;
  float* p = t + ((long)b * ch + from) * plane;
  if (stream && (to - from) * plane >= STREAM_RUN_FLOATS) zeroStreaming(p, (to - from) * plane);
  else std::memset(p, 0, sizeof(float) * (to - from) * plane);
}
static void zeroPrunedChannels(float* t, int n, int ch, long plane, const int32_t* kept, int nKept, int threads) {
  if (nKept == ch) return;
  const long zeros = (long)n * (ch - nKept) * plane;
  const bool stream = streamZeros(n, ch, plane, nKept);
  // Items are (image, gap between kept channels): one image's gaps split across the threads too
  // (a batch-1 tensor, or dw's pruned filter rows as [1][K][C*R*S]).
  parallel(n > 1 || zeros >= (1L << 16) ? threads : 1, [&] {
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < n; ++b)
      for (int i = 0; i <= nKept; ++i) zeroGap(t, b, i, ch, plane, kept, nKept, stream);
    if (stream) simd::fence();  // streaming stores are ordered only by a fence
  });
}

// In a pass whose threads own runs of kept channels (GemmPass::runPointwise's owned panels), each
// thread zeroes the gaps before its kept channels [k0, k1) in every image (the last thread also
// those after the last kept channel): a line across a kept plane's end and a gap is written by
// one thread. Zeroed by zeroPrunedChannels' own split (by images), such lines crossed between the
// cores twice a call: 1x1 2048 -> 512 @7 b8 backward-data 1.11x far, 0.99x near (bench/ab.ts,
// Zen 4, d=0.5; not zeroing at all would read 1.19x and 1.06x). Under DirectPass's owned panels
// the same split read 0.95-0.97x far on 3x3 512 @7 b8: the direct engine keeps zeroPrunedChannels.
static inline void zeroOwnedGaps(float* t, int n, int ch, long plane, const int32_t* kept, int nKept, int k0, int k1,
                                 bool last) {
  if (nKept == ch) return;
  const bool stream = streamZeros(n, ch, plane, nKept);
  const int g1 = last ? nKept + 1 : k1;
  for (int b = 0; b < n; ++b)
    for (int i = k0; i < g1; ++i) zeroGap(t, b, i, ch, plane, kept, nKept, stream);
  if (stream) simd::fence();
}

// Whether `panels` split over `threads` evenly enough for each thread to own a run of them
// (owned panels: engine/direct.hpp, engine/gemm.hpp): whole runs, or at least 4 a thread.
static inline bool panelsSplitEvenly(int panels, int threads) {
  return panels % threads == 0 || panels >= 4 * threads;
}

// Decide how many panels one work item covers: whole M when there are enough items for the
// threads, else split M so both cores get work (e.g. a 2x2-output layer with few column blocks).
static inline int panelsPerItem(int panels, long baseItems, int threads) {
  if (panels <= 1 || baseItems >= 4L * threads) return panels > 0 ? panels : 1;
  const long want = (4L * threads + baseItems - 1) / baseItems;
  const int chunks = (int)std::min<long>(panels, want);
  return (panels + chunks - 1) / chunks;
}
