// ---- engine/gemm: forward and backward-data as an implicit GEMM over destination positions ----
// dst[n][mIdx[m]][a][b] = sum over kept source channels c and taps (r,s) of A[m][c][tap] * src[...]
// (V = view: which tensor is gathered, how a tap maps a destination position to a source one).
// Expects (kernel.cpp includes it inside the layer namespace): the std headers, L:: (the layer's
// shape), simd:: (isa/<isa>.hpp) and engine/common.hpp (Workspace, microkernel).

template <class V, int MR, int NV>
struct GemmPass {
  static constexpr int VW = simd::VW, NR = NV * VW, RS = L::R * L::S;
  static constexpr long SRC_PLANE = (long)V::SRC_A * V::SRC_B, SRC_IMG = SRC_PLANE * V::SRC_C;
  static constexpr long DST_PLANE = (long)V::DST_A * V::DST_B, DST_IMG = DST_PLANE * V::DST_C;
  // Destination strides in memory: the grid's own (DST_*) unless the view subsamples (SubsampledDxView).
  static constexpr long OUT_PLANE = V::OUT_PLANE, OUT_IMG = OUT_PLANE * V::DST_C;
  // Whether pointwise may read B in place (see runPointwise): an identity 1x1, 32-bit offsets
  // within an image, and planes of 4 tiles or more.
  static constexpr bool READ_SOURCE = V::GRID_IS_SOURCE && SRC_IMG < (1L << 31) && DST_PLANE >= 4 * NR;
  // Row pitch of a packed block of NCB columns: an odd number of cache lines. A tile reads the
  // same columns of every row; rows an even number of lines apart fall in a fraction of the L1
  // sets (384 floats: 24 lines, 8 of 64 sets), and a 128-row tile then misses L1 on every panel.
  static constexpr int pitchOf(int ncb) { return ((ncb + 15) / 16 | 1) * 16; }

  // Pack the weights of kept rows x kept reduction channels into MR-row panels, A[panel][c][tap][MR]
  // (once per call: weights change every step). Weight (row, c, tap) is w[wRow(row) + redOff[c, tap]],
  // so a panel row is MR plain loads through one offset table (a per-element index computation
  // cost 5 cycles an element: a fifth of a 1x1 forward on a 7x7 plane). Forward panels, whose rows
  // lie along w, go through gatherRowsTransposed instead (engine/common.hpp).
  //
  // A pass that runPointwise runs (`pointwise`) with at least as many rows (kept filters, or
  // kept channels for backward-data) as columns (7x7 planes at batch 8, 14x14 at 2) leaves the
  // panels to it: each of its threads packs the run of panels it computes (ws.ownedW), by rows or
  // transposed (packTransposedRange). Read by both threads, the packed weights crossed between
  // the cores, twice a call when those sat on different CCDs. Backward-data, owned against shared
  // (bench/ab.ts, Zen 4, d=0.5): 1024 -> 2048 /2 @14 b8 0.98x near, 1.53x far (each thread packs
  // all of B, 1.6 MB); 960 -> 160 @7 b4 1.05x near, 1.13x far; 1024 -> 1024 @7 b1 0.99x.
  // Whether the pass's runner zeroes the destination's pruned channels itself (zeroOwnedGaps):
  // packA left it owned panels. Else the caller zeroes them (zeroPrunedChannels).
  static bool zeroesPruned(const Workspace& ws) { return V::DENSE_DST && ws.ownedW; }

  static const float* packA(const float* w, const int32_t* mIdx, int M, const int32_t* kIdx, int KC,
                            bool flipTaps, Workspace& ws, int threads, bool pointwise = false) {
    static_assert((long)L::K * L::C * L::R * L::S < (1L << 31), "weight offsets are 32-bit");
    const int panels = (M + MR - 1) / MR;
    const long rows = (long)KC * RS;
    float* A = ws.aPack.get((size_t)std::max(panels, 1) * rows * MR + 1);
    int32_t* redOff = ws.redOff.get(rows + 1);
    for (int c = 0; c < KC; ++c)
      for (int tap = 0; tap < RS; ++tap) {
        int r = tap / L::S, s = tap % L::S;
        if (flipTaps) { r = L::R - 1 - r; s = L::S - 1 - s; }
        redOff[c * RS + tap] = (int32_t)V::wRed(kIdx[c], r, s);
      }
    // Forward: each row's weights lie along it, in order (flipped taps are not); else by blocks.
    const bool byRows = V::wRow(1) > V::wRed(1, 0, 0) && buildRowChunks(redOff, rows, ws.rowChunks);
    const bool owned = pointwise && threads > 1 && M > 0 && (long)M >= (long)ws.n * DST_PLANE &&
                       panelsSplitEvenly(panels, threads);  // (M > 0: runPointwise returns early on no panels)
    ws.ownedW = owned ? w : nullptr;
    ws.ownedTransposed = owned && !byRows;
    if (owned) {
      if (!byRows) prepareTransposed(mIdx, M, ws, threads);
      return A;
    }
    if (!byRows) return packTransposed(w, mIdx, M, rows, A, ws, threads);
    parallel(threads, [&] {
#pragma omp for schedule(static)
      for (int pm = 0; pm < panels; ++pm) packRowsPanel(w, mIdx, M, rows, A, ws, pm);
    });
    return A;
  }

  // Panel pm of packA's row-wise pack.
  static void packRowsPanel(const float* w, const int32_t* mIdx, int M, long rows, float* A, const Workspace& ws, int pm) {
    float* out = A + (long)pm * rows * MR;
    if ((pm + 1) * MR <= M) {
      const float* src[MR];
      for (int i = 0; i < MR; ++i) src[i] = w + V::wRow(mIdx[pm * MR + i]);
      gatherRowsTransposed<MR>(src, ws.rowChunks, out);
    } else {  // the last, partial panel: rows past M are zeros
      const int32_t* redOff = ws.redOff.v.data();
      for (long t = 0; t < rows; ++t, out += MR)
        for (int i = 0; i < MR; ++i) out[i] = pm * MR + i < M ? w[V::wRow(mIdx[pm * MR + i]) + redOff[t]] : 0.f;
    }
  }

  // packA where a row's weights lie across w (backward-data: rows are kept input channels, the
  // reduction kept filters x taps): entry t of every row lies in one filter's run of w. Walking t
  // per panel read a line of another filter row for each entry, every panel all of them again (a
  // 1x1 1024 -> 2048 /2 @14 b8 backward-data spent 13% of its pass there). Here blocks of TB
  // entries gather each entry's values for all rows once, along its filter's run (kept channels in
  // order), and each panel then takes its MR x TB slice. `bench/ab.ts`, Zen 4, d=0.5, both build
  // orders, backward-data: 1024 -> 2048 /2 @14 b8 1.04-1.06x, 2048 -> 512 @7 b8 1.02-1.06x; 1024 ->
  // 256 @14, 512 -> 128 @28, 256 -> 512 /2 @56, 512 -> 2048 @7 (b8) 0.99-1.01x. Blocks of 16
  // entries whatever the rows (64 KiB for 1024 rows) ran 2048 -> 512 at 0.93x: hence the bound.
  static const float* packTransposed(const float* w, const int32_t* mIdx, int M, long rows, float* A, Workspace& ws,
                                     int threads) {
    const int panels = (M + MR - 1) / MR;
    if (panels == 0 || rows == 0) return A;  // nothing kept: no panel to fill
    prepareTransposed(mIdx, M, ws, threads);
    const int TB = transposedBlock(panels);
    const long blocks = (rows + TB - 1) / TB;
    parallel(threads, [&] {
      const int tid = omp_get_thread_num(), team = omp_get_num_threads();
      packTransposedRange(w, M, rows, A, ws, 0, panels, TB, blocks * tid / team, blocks * (tid + 1) / team,
                          ws.lanePack[tid].data);
    });
    return A;
  }

  // Entries a block of packTransposedRange gathers: its block (TB x the rows) stays within 16 KiB
  // of L1, 4 to 16 of them.
  static int transposedBlock(int panels) { return (int)std::clamp<long>(4096 / ((long)panels * MR), 4, 16); }

  // What packTransposedRange reads: each row's w offset, and a block buffer per thread (allocated
  // here, outside any parallel region: no throw inside one).
  static void prepareTransposed(const int32_t* mIdx, int M, Workspace& ws, int threads) {
    const int panels = (M + MR - 1) / MR;
    int32_t* rowOff = ws.rowOff.get(M + 1);
    for (int j = 0; j < M; ++j) rowOff[j] = (int32_t)V::wRow(mIdx[j]);
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) ws.lanePack[t].get((size_t)16 * panels * MR + 16);  // any range's TB x rows
  }

  // Panels [pm0, pm1) of packTransposed, blocks [b0, b1) of TB entries: block[entry][row] holds
  // those panels' rows (zeros past M), then each panel takes its MR x TB slice.
  static void packTransposedRange(const float* w, int M, long rows, float* A, const Workspace& ws, int pm0, int pm1,
                                  int TB, long b0, long b1, float* block) {
    const int j0 = pm0 * MR, j1 = std::min(M, pm1 * MR);
    const long Mp = (long)(pm1 - pm0) * MR;
    const int32_t* redOff = ws.redOff.v.data();
    const int32_t* rowOff = ws.rowOff.v.data();
    // Rows one float apart along a run (a 1x1's kept channels, in order): each entry's values are
    // one masked compress per 16 floats of the run, not a load per row (Zen 4, d=0.5, backward-data:
    // 1024 -> 2048 /2 @14 b8 1.04x, 2048 -> 512 @7 b8 1.02x).
    constexpr int SEGMENTS = (L::C + 15) / 16 + 1;
    unsigned mask[SEGMENTS] = {};
    long base = 0;
    int segments = 0;
    if constexpr (simd::HAS_COMPRESS && L::R * L::S == 1) {
      bool ordered = j0 < j1 && rowOff[j0] >= 0 && rowOff[j1 - 1] < L::C;  // (backward-data: rows are channels)
      for (int j = j0 + 1; j < j1; ++j) ordered = ordered && rowOff[j] > rowOff[j - 1];
      if (ordered) {
        base = rowOff[j0] & ~15L;
        segments = (int)((rowOff[j1 - 1] - base) / 16 + 1);
        segmentMasks(rowOff + j0, j1 - j0, base, mask);
      }
    }
    for (long b = b0; b < b1; ++b) {
      const long t0 = b * TB, nt = std::min<long>(TB, rows - t0);
      for (long u = 0; u < nt; ++u) {
        const float* run = w + redOff[t0 + u];
        float* row = block + u * Mp;
        if (segments > 0) {  // past the row's floats: the next row (written after) or the slack
          compressSegments(row, run + base, mask, segments);
        } else {
          for (int j = j0; j < j1; ++j) row[j - j0] = run[rowOff[j]];
        }
        for (long j = j1 - j0; j < Mp; ++j) row[j] = 0.f;
      }
      // Each panel's slice: one masked copy per entry where those are cheap (Zen 4, 960 -> 160 @7
      // b4 backward-data, one thread: 1.03x), else MR scalar ones.
      for (int pm = pm0; pm < pm1; ++pm) {
        float* out = A + ((long)pm * rows + t0) * MR;
        const float* slice = block + (long)(pm - pm0) * MR;
        if constexpr (simd::CHEAP_MASKED_STORE && MR <= simd::VW) {
          for (long u = 0; u < nt; ++u) simd::copyShort(out + u * MR, slice + u * Mp, MR);
        } else {
          for (long u = 0; u < nt; ++u)
#pragma GCC unroll 16
            for (int i = 0; i < MR; ++i) out[u * MR + i] = slice[u * Mp + i];
        }
      }
    }
  }

  // Write one accumulator row of NR columns: `vecOff(v)` gives the destination offset of column
  // group v when its VW lanes are contiguous and valid, else -1 and `laneRun(v, l, n)` is used: the
  // offset of lane l (-1 = not stored) and in n how many lanes from l on continue it (or are
  // skipped too). A longer run is one masked store: planes tiles cross row ends in most vectors,
  // and storing them lane by lane cost a sixth of a 3x3 on 32x32 planes with 8 kept channels.
  // With `stream`, aligned whole vectors go out as streaming stores (whole lines on AVX-512);
  // the caller fences before other threads read them.
  template <int N, class VecOff, class LaneRun>
  [[gnu::always_inline]] static inline void storeRow(float* base, const simd::vec (&row)[N], float bias,
                                                     VecOff vecOff, LaneRun laneRun, bool stream = false) {
    const simd::vec b = simd::broadcast(bias);
#pragma GCC unroll 8
    for (int v = 0; v < N; ++v) {
      const long off = vecOff(v);
      const simd::vec out = simd::add(row[v], b);
      if (off >= 0) {
        if (stream && reinterpret_cast<uintptr_t>(base + off) % (sizeof(float) * VW) == 0)
          simd::stream(base + off, out);
        else
          simd::storeu(base + off, out);
      } else {
        alignas(64) float lanes[VW];
        simd::spill(lanes, out);
        for (int l = 0, n = 1; l < VW; l += n) {
          const long o = laneRun(v, l, n);
          if (o >= 0 && n == 1) base[o] = lanes[l];
          else if (o >= 0) simd::storeLanes(base + o, out, l, n);
        }
      }
    }
  }

  // Where a block's columns go in a subsampled destination (SubsampledDxView: dy grid -> dx).
  // Column j's value goes to off[j] (-1: nowhere), then zeros to the fill[j] - 1 floats after it
  // (the dx positions up to the next grid column, or the row end). run[j]: how many columns
  // from j on, within j's vector, continue at SW floats apart (each such run is one store;
  // at stride 3 and more each column is its own).
  // below[j]: floats to zero after the dx row column j starts (the rows no grid row reaches
  // before the next one), with belowLanes[g] marking the lanes of vector g that have any.
  template <int NCB>
  struct GridStores {
    long off[NCB];
    int8_t fill[NCB], run[NCB];
    int32_t below[NCB];
    uint32_t belowLanes[NCB / VW];
    void build(long j0, int cols) {
      for (int l = 0; l < NCB; ++l) {
        const long col = j0 + l, pos = col % DST_PLANE;
        const int p = (int)(pos / V::DST_B), q = (int)(pos % V::DST_B);
        const long o = l < cols ? V::outPos(p, q) : -1;
        off[l] = o >= 0 ? (col / DST_PLANE) * OUT_IMG + o : -1;
        fill[l] = (int8_t)V::fill(q);
        below[l] = q == 0 && off[l] >= 0 ? V::rowsBelow(p) * L::W : 0;
      }
      for (int g = 0; g < NCB / VW; ++g) {
        belowLanes[g] = 0;
        for (int l = VW - 1; l >= 0; --l) {
          const int j = g * VW + l;
          const bool next = L::SW <= 2 && l + 1 < VW && off[j] >= 0 && off[j + 1] == off[j] + L::SW;
          run[j] = (int8_t)(next ? run[j + 1] + 1 : 1);
          if (below[j]) belowLanes[g] |= 1u << l;
        }
      }
    }
  };
  // Write one accumulator row over the dy grid into dx through GridStores: each dx row the grid
  // reaches is written once, whole, and (zeroGridBelow) the rows below it that no grid row
  // reaches are zeroed while their lines are at hand; nothing zeroes dx first. (One scalar store
  // a lane was 30% of the tiles of 256 -> 512 /2 @56; zeroing dx first, then storing the grid
  // over it, 12%.)
  template <int NCB>
  [[gnu::always_inline]] static inline void storeGridRow(float* base, const simd::vec (&row)[NV], float bias,
                                                         const GridStores<NCB>& t, int jt) {
    const simd::vec b = simd::broadcast(bias);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const simd::vec out = simd::add(row[v], b);
      const int j0 = jt + v * VW;
      for (int l = 0; l < VW;) {
        const int j = j0 + l, n = t.run[j];
        if (const long o = t.off[j]; o >= 0) {
          if constexpr (L::SW == 1) n == VW ? simd::storeu(base + o, out) : simd::storeLanes(base + o, out, l, n);
          else if constexpr (L::SW == 2) simd::storeSpread2(base + o, out, l, 2 * (n - 1) + t.fill[j + n - 1]);
          else storeSpaced(base + o, out, l, t.fill + j);
        }
        l += n;
      }
    }
  }
  // The rows below the dx rows that tile columns [jt, jt + NR) start (GridStores::below). Apart
  // from storeGridRow: a call to memset there, between the tile's rows, put the whole tile on
  // the stack (every vector register is caller-saved).
  template <int NCB>
  static inline void zeroGridBelow(float* base, const GridStores<NCB>& t, int jt) {
    for (int g = jt / VW; g < (jt + NR) / VW; ++g)
      for (uint32_t m = t.belowLanes[g]; m; m &= m - 1) {
        const int j = g * VW + __builtin_ctz(m);
        std::memset(base + t.off[j] + L::W, 0, sizeof(float) * t.below[j]);
      }
  }
  // One lane of out at p, then fill[0] - 1 zeros (a grid column at stride 3 or more).
  static inline void storeSpaced(float* p, simd::vec out, int lane, const int8_t* fill) {
    alignas(64) float lanes[VW];
    simd::spill(lanes, out);
    p[0] = lanes[lane];
    for (int z = 1; z < fill[0]; ++z) p[z] = 0.f;
  }

  // laneRun over a table of per-column offsets (-1 = not stored): one lane at a time (scanning the
  // table for runs measured 2-6% slower on pointwise 1x1 @7x7, whose tiles cross images).
  template <class T>
  static inline long tableRun(const T* off, int& n) {
    n = 1;
    return off[0];
  }

  // Planes mode (stride 1): per (image, block of PB destination rows) copy the kept source channels
  // into zero-padded planes of pitch WP; tap (r,s) is then a constant shift, so nothing is
  // replicated and every B row is a shifted window of one plane. Columns u = row*WP + col, where
  // columns col >= DST_B are padding garbage that is computed but never stored. ROW_TILES: tiles
  // start at row starts (no vector crosses a row end); else they run along the plane.
  template <int PB, bool ROW_TILES>
  static void runPlanes(const float* src, const float* A, const float* bias, float* dst, const int32_t* mIdx, int M,
                        const int32_t* kIdx, int KC, Workspace& ws, int threads) {
    static_assert(V::DENSE_DST, "planes mode writes whole destination planes");
    constexpr int WP = V::DST_B + (L::S - 1) * L::DW;
    constexpr int ROW_BLOCKS = (V::DST_A + PB - 1) / PB;
    constexpr int PLANE_ROWS = PB + (L::R - 1) * L::DH;
    constexpr long PLANE = ((long)PLANE_ROWS * WP + (L::S - 1) * L::DW + NR + 15) / 16 * 16;
    const int panels = (M + MR - 1) / MR;
    if (panels == 0) return;
    const int perItem = panelsPerItem(panels, (long)ws.n * ROW_BLOCKS, threads);
    const int chunks = (panels + perItem - 1) / perItem;
    const long items = (long)ws.n * ROW_BLOCKS * chunks;
    const int rows = KC * RS;
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) {  // allocate outside the parallel region: no throw inside it
      ws.bBlock[t].get((size_t)std::max(KC, 1) * PLANE);
      ws.aOff[t].get(rows + 1);
      ws.bOff[t].get(rows + 1);
    }
    parallel(threads, [&] {
      const int tid = omp_get_thread_num();
      float* planes = ws.bBlock[tid].data;
      int32_t* aOff = ws.aOff[tid].v.data();
      int32_t* bOff = ws.bOff[tid].v.data();
      for (int c = 0; c < KC; ++c)
        for (int tap = 0; tap < RS; ++tap) {
          aOff[c * RS + tap] = (c * RS + tap) * MR;
          bOff[c * RS + tap] = (int32_t)(c * PLANE + (tap / L::S) * L::DH * WP + (tap % L::S) * L::DW);
        }
      int packedN = -1, packedBlock = -1;
#pragma omp for schedule(dynamic, 1)
      for (long item = 0; item < items; ++item) {
        const int chunk = (int)(item % chunks);
        const int rb = (int)((item / chunks) % ROW_BLOCKS);
        const int n = (int)(item / chunks / ROW_BLOCKS);
        const int a0 = rb * PB, a1 = std::min(V::DST_A, a0 + PB);
        const int usedRows = (a1 - a0) + (L::R - 1) * L::DH;
        if (n != packedN || rb != packedBlock) {  // consecutive chunks of one block reuse the planes
          packPlanes(src + n * SRC_IMG, kIdx, KC, a0, usedRows, WP, PLANE, planes);
          packedN = n, packedBlock = rb;
        }
        const int cols = (a1 - a0) * WP;
        const int pm1 = std::min(panels, (chunk + 1) * perItem);
        // Row tiles: tile ut is columns [b0, b0 + NR) of block row a; else columns u0 = ut*NR on.
        constexpr int ROW_TILE_COUNT = (V::DST_B + NR - 1) / NR;
        const int tiles = ROW_TILES ? (a1 - a0) * ROW_TILE_COUNT : (cols + NR - 1) / NR;
        for (int ut = 0; ut < tiles; ++ut) {
          const int u0 = ROW_TILES ? ut / ROW_TILE_COUNT * WP + ut % ROW_TILE_COUNT * NR : ut * NR;
          for (int pm = chunk * perItem; pm < pm1; ++pm) {
            simd::vec acc[MR][NV];
            microkernel<MR, NV>(rows, aOff, bOff, A + (long)pm * rows * MR, planes + u0, acc);
            unrolled<MR>([&](auto i) __attribute__((always_inline)) {  // acc[i] stays a register
              if (pm * MR + i >= M) return;
              const int ch = mIdx[pm * MR + i];
              float* base = dst + n * DST_IMG + ch * DST_PLANE + (long)a0 * V::DST_B;
              // Lanes run to the end of their plane row, or over its padding columns, or past the block.
              auto laneRun = [&](int v, int l, int& n) -> long {
                const int u = u0 + v * VW + l, a = u / WP, b = u % WP;
                if (a >= a1 - a0) return n = VW - l, -1;
                if (b >= V::DST_B) return n = std::min(VW - l, WP - b), -1;
                n = std::min(VW - l, V::DST_B - b);
                return (long)a * V::DST_B + b;
              };
              auto vecOff = [&](int v) -> long {
                const int u = u0 + v * VW, a = u / WP, b = u % WP;
                return (a < a1 - a0 && b + VW <= V::DST_B) ? (long)a * V::DST_B + b : -1;
              };
              storeRow(base, acc[i], bias ? bias[ch] : 0.f, vecOff, laneRun);
            });
          }
        }
      }
    });
  }

  // Copy rows [a0 - PAD_A, a0 - PAD_A + usedRows) of each kept source channel into zero-padded
  // planes of pitch WP; the tail after the used rows is zeroed so garbage columns read zeros.
  static void packPlanes(const float* img, const int32_t* kIdx, int KC, int a0, int usedRows, int WP, long PLANE,
                         float* planes) {
    const int jl = std::max(0, V::PAD_B), jh = std::min(WP, V::SRC_B + V::PAD_B);
    for (int c = 0; c < KC; ++c) {
      const float* plane = img + kIdx[c] * SRC_PLANE;
      float* out = planes + c * PLANE;
      for (int i = 0; i < usedRows; ++i, out += WP) {
        const int sr = a0 + i - V::PAD_A;
        if (sr < 0 || sr >= V::SRC_A || jh <= jl) {
          std::memset(out, 0, sizeof(float) * WP);
          continue;
        }
        std::memset(out, 0, sizeof(float) * jl);
        std::memcpy(out + jl, plane + (long)sr * V::SRC_B + (jl - V::PAD_B), sizeof(float) * (jh - jl));
        std::memset(out + jh, 0, sizeof(float) * (WP - jh));
      }
      std::memset(out, 0, sizeof(float) * (PLANE - (long)usedRows * WP));
    }
  }

  // Pointwise mode (1x1 kernel): the reduction runs over kept source channels only, so B is the
  // source itself. Columns are destination positions flattened over images (n, a, b); a block of
  // NCB of them packs as B[c][column] with one row copy per channel and image (a strided or padded
  // 1x1 gathers element-wise), no taps and no per-column offset tables. Column tiles run outer and
  // panels inner: a B tile (KC x NR) stays in L1 while every panel of the item's A streams past.
  template <int NCB>
  static void runPointwise(const float* src, const float* A, const float* bias, float* dst, const int32_t* mIdx, int M,
                           const int32_t* kIdx, int KC, Workspace& ws, int threads) {
    static_assert(NCB > 0 && L::R == 1 && L::S == 1, "pointwise mode serves 1x1 kernels");
    static_assert(NCB % NR == 0, "column block must hold whole microtiles");
    constexpr int PITCH = pitchOf(NCB);
    const long COLS = (long)ws.n * DST_PLANE;
    constexpr long A_BUDGET = 256 * 1024;  // bytes of A panels one item streams per column tile: keep them in L2
    const int panels = (M + MR - 1) / MR;
    if (panels == 0) return;
    // Blocks of at most NCB columns, the tiles spread evenly over them (block b holds tiles
    // [b*T/blocks, (b+1)*T/blocks)); a block's panels run in chunks of A that fit in L2.
    const long T = (COLS + NR - 1) / NR;
    const long blocks = (T * NR + NCB - 1) / NCB;
    auto tileBegin = [&](long b) { return b * T / blocks; };
    const int cap = (int)std::max<long>(1, A_BUDGET / ((long)std::max(KC, 1) * MR * 4));
    // Short reductions (few kept channels): the item's A panels sit in L1, so run panels outer and
    // write MR destination rows at a time along the block, instead of all M rows (as many pages
    // and store streams) per column tile.
    const bool panelsOuter = (long)std::min(cap, panels) * KC * MR * 4 <= 32 * 1024;
    // Large passes write their results around the caches: a 1x1 on 56x56 planes at batch 8,
    // 32 -> 128 kept channels, ran its forward 1.08x faster with them.
    const bool stream = V::DENSE_DST && streamResults((long)KC * COLS * 4, (long)ws.n * OUT_IMG * 4);
    // An identity 1x1 reads B where it lies: a tile inside one image's plane is its kept channels'
    // runs at srcOff[c] = kIdx[c] * SRC_PLANE, nothing copied; only tiles across two images (or
    // past the last column) are packed, each on its own (pitch NR, offsets c * NR). For few rows
    // (the copy costs one pass over B per MR of them) and tiles whose rows fit in L1. Against
    // packing every block (bench/ab.ts, Zen 4, d=0.5): 32 -> 64 @112 b4 forward 1.06-1.18x,
    // backward-data 1.36-1.40x; 16 -> 96 @112 b4 backward-data 1.33-1.45x; 64 -> 64 @32 b64
    // forward 1.06-1.20x. Read in place, KC runs a plane apart are more streams than the
    // prefetchers follow: 128 kept filters (64 -> 256 @56 b8) ran the forward 0.96-0.98x, 512 with
    // 32-column tiles (512 -> 1024 stride-2 backward-data @28 b8) 0.93x; on 64-float planes with
    // 48-column tiles, most of them packed one by one, 0.90-0.93x (512 -> 512 @8x8 b64).
    // Tiles under two lines a row (AVX2's 24 columns) fetch too little per stream for them to
    // carry many: on Zen 3, d=0.5, packing won from 64 streams on (256 -> 64 @56 b8 forward 1.19x,
    // 512 -> 128 @28 1.14x, 128 -> 64 @56 1.09x, 64 -> 256 @56 backward-data 1.18x) and lost at
    // 48 and fewer (16 -> 32 kept @112 b4 forward 0.79x, 48 -> 32 @56 0.98x). Each in-place tile
    // asks for the next tile's runs as it goes (microkernelAhead); against waiting on them (Zen 4,
    // d=0.5): 256 -> 64 @56 b8 forward 1.15x, 256 -> 128 @56 b8 1.25x, 64 -> 256 @56 b8
    // backward-data 1.20x, 64 -> 128 @112 b4 1.05x / 1.18x, others 0.99-1.07x. With it, lifting
    // the bound of 64 rows went both ways (64 -> 256 @56 forward 1.05x, 128 -> 512 @28 0.95x).
    const bool fewStreams = NR * 4 >= 128 || KC <= 48;
    const bool readSource = READ_SOURCE && M <= 64 && fewStreams && (long)KC * NR * 4 <= 32 * 1024;
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) {  // allocate outside the parallel region: no throw inside it
      ws.bBlock[t].get((size_t)std::max(KC, 1) * PITCH);
      ws.aOff[t].get(KC + 1);
      ws.bOff[t].get(KC + 1);
      if (readSource) ws.colOff[t].get(KC + 1);
    }
    parallel(threads, [&] {
      const int tid = omp_get_thread_num(), team = omp_get_num_threads();
      float* B = ws.bBlock[tid].data;
      int32_t* aOff = ws.aOff[tid].v.data();
      int32_t* bOff = ws.bOff[tid].v.data();
      int32_t* srcOff = readSource ? ws.colOff[tid].v.data() : nullptr;  // (colOff: im2col's table, free here)
      for (int c = 0; c < KC; ++c) aOff[c] = c * MR, bOff[c] = c * (readSource ? NR : PITCH);
      if (readSource)
        for (int c = 0; c < KC; ++c) srcOff[c] = (int32_t)(kIdx[c] * SRC_PLANE);
      const float* tileSrc[NCB / NR];  // readSource: a tile's first column in src, or null: packed
      // Each thread takes one contiguous run of (block, panel) pairs, T * panels tile-panels
      // split evenly: it packs each of its blocks once, and no thread waits on another for more
      // than a panel of one block. (Equal items split statically left 1568 columns as 13 blocks
      // of 128 and 32: one thread idle for a ninth of a 1x1 forward @14 b8.)
      auto cut = [&](int t, long& blk, int& pm) {
        const long target = T * panels * t / team;
        blk = 0;
        while (blk + 1 < blocks && tileBegin(blk + 1) * panels <= target) ++blk;
        const long tiles = tileBegin(blk + 1) - tileBegin(blk);
        pm = (int)std::min<long>(panels, (target - tileBegin(blk) * panels + tiles / 2) / tiles);
      };
      long blk0, blk1;
      int pmStart, pmEnd;
      if (ws.ownedW) {  // owned panels (packA): this thread's run of panels, packed here, over every block
        blk0 = 0, blk1 = blocks - 1;
        pmStart = (int)((long)panels * tid / team), pmEnd = (int)((long)panels * (tid + 1) / team);
        if constexpr (V::DENSE_DST)
          zeroOwnedGaps(dst, ws.n, V::DST_C, OUT_PLANE, mIdx, M, std::min(M, pmStart * MR), std::min(M, pmEnd * MR),
                        tid == team - 1);
        if (!ws.ownedTransposed) {
          for (int pm = pmStart; pm < pmEnd; ++pm) packRowsPanel(ws.ownedW, mIdx, M, KC, ws.aPack.data, ws, pm);  // A is ws.aPack
        } else if (pmStart < pmEnd) {
          const int TB = transposedBlock(pmEnd - pmStart);
          packTransposedRange(ws.ownedW, M, KC, ws.aPack.data, ws, pmStart, pmEnd, TB, 0, (KC + TB - 1) / TB,
                              ws.lanePack[tid].data);
        }
      } else {
        cut(tid, blk0, pmStart);
        if (tid + 1 < team) cut(tid + 1, blk1, pmEnd);
        else blk1 = blocks - 1, pmEnd = panels;
      }
      // Destination offset of each column's lanes in the packed block (-1: past the end); a VW group
      // is stored as one vector when its lanes are one dense run. A subsampled view's destinations: grid.
      long outOff[NCB], vecOffs[NCB / VW];
      std::conditional_t<V::DENSE_DST, char, GridStores<NCB>> grid;
      for (long blk = blk0; blk <= blk1 && blk < blocks; ++blk) {
        const int first = blk == blk0 || ws.ownedW ? pmStart : 0, last = blk == blk1 || ws.ownedW ? pmEnd : panels;
        if (first >= last) continue;
        const long j0 = tileBegin(blk) * NR;
        const int cols = (int)std::min<long>(tileBegin(blk + 1) * NR, COLS) - (int)j0;
        if (readSource) {
          for (int jt = 0; jt < cols; jt += NR) {
            const long col = j0 + jt, pos = col % DST_PLANE;
            const bool inside = jt + NR <= cols && pos + NR <= DST_PLANE;
            tileSrc[jt / NR] = inside ? src + col / DST_PLANE * SRC_IMG + pos : nullptr;
            if (!inside) packPointwise<NR, NR>(src, kIdx, KC, col, j0 + cols, B + (long)jt * KC);
          }
        } else {
          packPointwise<NCB, PITCH>(src, kIdx, KC, j0, j0 + cols, B);
        }
        if constexpr (V::DENSE_DST) {
          for (int l = 0; l < NCB; ++l)
            outOff[l] = l < cols ? (j0 + l) / DST_PLANE * OUT_IMG + (j0 + l) % DST_PLANE : -1;
          for (int g = 0; g < NCB / VW; ++g) {  // whole vectors within one image's plane
            const long col = j0 + g * VW, pos = col % DST_PLANE;
            vecOffs[g] = col + VW <= COLS && pos + VW <= DST_PLANE ? outOff[g * VW] : -1;
          }
        } else {
          grid.build(j0, cols);
        }
        const int chunks = (last - first + cap - 1) / cap, perChunk = (last - first + chunks - 1) / chunks;
        for (int pm0 = first; pm0 < last; pm0 += perChunk) {
          const int pm1 = std::min(last, pm0 + perChunk);
          // A tile of NT vectors: NV, or fewer for the last columns of the pass (COLS past the
          // last whole tile: 196 columns of a 7x7 plane at batch 4 end in a 4-column tile).
          auto tileOf = [&](auto vectors, int jt, int pm) {
            constexpr int NT = decltype(vectors)::value;
            auto laneRun = [&](int v, int l, int& n) { return tableRun(outOff + jt + v * VW + l, n); };
            auto vecOff = [&](int v) { return vecOffs[jt / VW + v]; };
            simd::vec acc[MR][NT];
            const float* at = readSource ? tileSrc[jt / NR] : nullptr;  // in place, or packed:
            const float* b = at ? at : readSource ? B + (long)jt * KC : B + jt;
            if (at)  // in place: ask for the next tile's runs meanwhile
              microkernelAhead<MR, NT>(KC, aOff, srcOff, A + (long)pm * KC * MR, b, NR, acc);
            else
              microkernel<MR, NT>(KC, aOff, bOff, A + (long)pm * KC * MR, b, acc);
            unrolled<MR>([&](auto i) __attribute__((always_inline)) {  // acc[i] stays a register
              if (pm * MR + i >= M) return;
              const int ch = mIdx[pm * MR + i];
              const float b = bias ? bias[ch] : 0.f;
              if constexpr (V::DENSE_DST) storeRow(dst + ch * OUT_PLANE, acc[i], b, vecOff, laneRun, stream);
              else storeGridRow(dst + ch * OUT_PLANE, acc[i], b, grid, jt);
            });
            if constexpr (!V::DENSE_DST)
              for (int i = 0; i < MR && pm * MR + i < M; ++i)
                zeroGridBelow(dst + mIdx[pm * MR + i] * OUT_PLANE, grid, jt);
          };
          auto tile = [&](int jt, int pm) {
            if constexpr (V::DENSE_DST)
              upToVectors<NV>((std::min(NR, cols - jt) + VW - 1) / VW, [&](auto nt) { tileOf(nt, jt, pm); });
            else
              tileOf(std::integral_constant<int, NV>{}, jt, pm);
          };
          if (panelsOuter) {
            for (int pm = pm0; pm < pm1; ++pm)
              for (int jt = 0; jt < cols; jt += NR) tile(jt, pm);
          } else {
            for (int jt = 0; jt < cols; jt += NR)
              for (int pm = pm0; pm < pm1; ++pm) tile(jt, pm);
          }
        }
      }
      if (stream) simd::fence();  // streaming stores are ordered only by a fence
    });
  }

  // B[c * PITCH + j - j0] for the block's columns j0 <= j < end (zeros after them, up to NCB). Identity 1x1 (stride 1, no
  // padding): each image's run is a row copy; otherwise each element is looked up through the view.
  template <int NCB, int PITCH>
  static void packPointwise(const float* src, const int32_t* kIdx, int KC, long j0, long end, float* B) {
    constexpr bool IDENTITY = V::GRID_IS_SOURCE;
    const long j1 = std::min(end, j0 + NCB);
    for (int c = 0; c < KC; ++c) {
      float* out = B + (long)c * PITCH;
      for (long j = j0; j < j1;) {  // one run per image
        const long n = j / DST_PLANE, pos0 = j % DST_PLANE, len = std::min(j1 - j, DST_PLANE - pos0);
        const float* plane = src + n * SRC_IMG + kIdx[c] * SRC_PLANE;
        float* o = out + (j - j0);
        if (IDENTITY) {
          // Runs shorter than 32 lines, a plane each, are too short for the hardware prefetchers
          // to pick up: ask for the run two channels ahead (1024 -> 256 @14 b8, blocks of 128
          // columns: forward 1.11x from cold caches; blocks of 768 columns ran 5% slower with it).
          if (len < 512 && c + 2 < KC) {
            const float* ahead = src + n * SRC_IMG + kIdx[c + 2] * SRC_PLANE + pos0;
            for (long k = 0; k < len; k += 64 / sizeof(float)) __builtin_prefetch(ahead + k);
          }
          std::memcpy(o, plane + pos0, sizeof(float) * len);
        } else if constexpr (V::GRID_INSIDE_SOURCE) {  // strided, no padding: a strided copy per row
          int a = (int)(pos0 / V::DST_B), b = (int)(pos0 % V::DST_B);
          // Rows STEP_A apart are runs the prefetchers barely follow: ask for the same rows of
          // the channel two ahead, as for the identity copy.
          const float* ahead = c + 2 < KC ? src + n * SRC_IMG + kIdx[c + 2] * SRC_PLANE : nullptr;
          for (long k = 0; k < len; b = 0, ++a) {
            const float* row = plane + (long)a * V::STEP_A * V::SRC_B;
            const int seg = (int)std::min<long>(V::DST_B - b, len - k);
            if (ahead)
              for (long f = (long)b * V::STEP_B; f < (long)(b + seg) * V::STEP_B; f += 64 / sizeof(float))
                __builtin_prefetch(ahead + (long)a * V::STEP_A * V::SRC_B + f);
            if constexpr (V::STEP_B == 2)
              simd::copyEvens(o + k, row + 2L * b, seg);  // per element, a fifth of a stride-2 1x1 forward
            else
              for (int t = 0; t < seg; ++t) o[k + t] = row[(long)(b + t) * V::STEP_B];
            k += seg;
          }
        } else {  // walk (a, b) along the run: no division per element (padded 1x1)
          int a = (int)(pos0 / V::DST_B), b = (int)(pos0 % V::DST_B);
          for (long k = 0; k < len; ++k) {
            int i = 0, jj = 0;
            const bool ok = V::source(a, b, 0, 0, i, jj);
            // Unconditional load then select: the conditional-load form is what GCC 12 -O3 miscompiled.
            const float v = plane[ok ? (long)i * V::SRC_B + jj : 0];
            o[k] = ok ? v : 0.f;
            if (++b == V::DST_B) b = 0, ++a;
          }
        }
        j += len;
      }
      std::fill(out + (j1 - j0), out + NCB, 0.f);
    }
  }

  // Im2col mode (any stride, dilation, padding): per block of NCB destination columns, gather the
  // taps that reach at least one column into a packed B block; taps that only read padding for
  // the whole block are skipped (ORDER 1, position-major columns, groups equal positions so small
  // outputs skip most padding taps).
  template <int NCB, int ORDER>
  static void runIm2col(const float* src, const float* A, const float* bias, float* dst, const int32_t* mIdx, int M,
                        const int32_t* kIdx, int KC, Workspace& ws, int threads) {
    static_assert(NCB % NR == 0, "column block must hold whole microtiles");
    static_assert(V::DENSE_DST, "im2col mode writes whole destination planes");
    const long COLS = (long)ws.n * V::DST_A * V::DST_B;
    const long blocks = (COLS + NCB - 1) / NCB;
    const int panels = (M + MR - 1) / MR;
    if (panels == 0) return;
    const int perItem = panelsPerItem(panels, blocks, threads);
    const int chunks = (panels + perItem - 1) / perItem;
    const long items = blocks * chunks;
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) {  // allocate outside the parallel region: no throw inside it
      ws.bBlock[t].get((size_t)std::max(KC, 1) * RS * pitchOf(NCB));
      ws.aOff[t].get(KC * RS + 1);
      ws.bOff[t].get(KC * RS + 1);
      ws.colOff[t].get(NCB + NCB / VW);
      ws.tapOff[t].get((size_t)RS * NCB + RS);
    }
    parallel(threads, [&] {
      const int tid = omp_get_thread_num();
      float* B = ws.bBlock[tid].data;
      int32_t* aOff = ws.aOff[tid].v.data();
      int32_t* bOff = ws.bOff[tid].v.data();
      int32_t* colOff = ws.colOff[tid].v.data();
      int32_t* contiguous = colOff + NCB;  // per VW-column group: 1 if its lanes are consecutive
      int32_t* tapOff = ws.tapOff[tid].v.data();
      int32_t* validTaps = tapOff + (long)RS * NCB;
      long packedBlock = -1;
      int nT = 0;
#pragma omp for schedule(dynamic, 1)
      for (long item = 0; item < items; ++item) {
        const int chunk = (int)(item % chunks);
        const long blk = item / chunks;
        if (blk != packedBlock) {
          nT = gatherBlock<NCB, ORDER>(src, kIdx, KC, ws.n, blk * NCB, B, colOff, contiguous, tapOff, validTaps);
          for (int c = 0; c < KC; ++c)
            for (int t = 0; t < nT; ++t) {
              aOff[c * nT + t] = (c * RS + validTaps[t]) * MR;
              bOff[c * nT + t] = (c * nT + t) * pitchOf(NCB);
            }
          packedBlock = blk;
        }
        const int rows = KC * nT;
        const int pm1 = std::min(panels, (chunk + 1) * perItem);
        for (int jr = 0; jr < NCB && colOff[jr] >= 0; jr += NR) {
          for (int pm = chunk * perItem; pm < pm1; ++pm) {
            simd::vec acc[MR][NV];
            microkernel<MR, NV>(rows, aOff, bOff, A + (long)pm * KC * RS * MR, B + jr, acc);
            unrolled<MR>([&](auto i) __attribute__((always_inline)) {  // acc[i] stays a register
              if (pm * MR + i >= M) return;
              const int ch = mIdx[pm * MR + i];
              auto laneRun = [&](int v, int l, int& n) { return tableRun(colOff + jr + v * VW + l, n); };
              auto vecOff = [&](int v) -> long {
                const int j = jr + v * VW;
                return contiguous[j / VW] ? colOff[j] : -1;
              };
              storeRow(dst + ch * DST_PLANE, acc[i], bias ? bias[ch] : 0.f, vecOff, laneRun);
            });
          }
        }
      }
    });
  }

  // Decode the block's columns, find per tap the source offsets (-1 = padding), keep the taps that
  // reach any column, and gather B[(c, tap)][column] (rows pitchOf(NCB) apart). Returns the number of kept taps.
  template <int NCB, int ORDER>
  static int gatherBlock(const float* src, const int32_t* kIdx, int KC, int N, long j0, float* B, int32_t* colOff,
                         int32_t* contiguous, int32_t* tapOff, int32_t* validTaps) {
    const long COLS = (long)N * V::DST_A * V::DST_B;
    for (int j = 0; j < NCB; ++j) {
      const long col = j0 + j;
      if (col >= COLS) {
        colOff[j] = -1;
        for (int tap = 0; tap < RS; ++tap) tapOff[tap * NCB + j] = -1;
        continue;
      }
      int n, a, b;
      if (ORDER == 0) {
        b = (int)(col % V::DST_B); a = (int)((col / V::DST_B) % V::DST_A); n = (int)(col / DST_PLANE);
      } else {
        n = (int)(col % N); b = (int)((col / N) % V::DST_B); a = (int)(col / N / V::DST_B);
      }
      colOff[j] = (int32_t)(n * DST_IMG + (long)a * V::DST_B + b);
      for (int tap = 0; tap < RS; ++tap) {
        int i, jj;
        tapOff[tap * NCB + j] =
            V::source(a, b, tap / L::S, tap % L::S, i, jj) ? (int32_t)(n * SRC_IMG + (long)i * V::SRC_B + jj) : -1;
      }
    }
    for (int g = 0; g < NCB / VW; ++g) {
      bool run = colOff[g * VW] >= 0;
      for (int l = 1; l < VW && run; ++l) run = colOff[g * VW + l] == colOff[g * VW] + l;
      contiguous[g] = run;
    }
    int nT = 0;
    for (int tap = 0; tap < RS; ++tap) {
      bool any = false;
      for (int j = 0; j < NCB && !any; ++j) any = tapOff[tap * NCB + j] >= 0;
      if (any) validTaps[nT++] = tap;
    }
    for (int c = 0; c < KC; ++c) {
      const float* plane = src + kIdx[c] * SRC_PLANE;
      for (int t = 0; t < nT; ++t) {
        const int32_t* off = tapOff + validTaps[t] * NCB;
        float* out = B + (long)(c * nT + t) * pitchOf(NCB);
        // Load unconditionally (padding reads element 0, then is replaced by 0): a conditional
        // load in this loop is the form GCC 12 -O3 miscompiled in RowLanes::packX.
        for (int j = 0; j < NCB; ++j) {
          const float v = plane[std::max(off[j], 0)];
          out[j] = off[j] >= 0 ? v : 0.f;
        }
      }
    }
    return nT;
  }
};
