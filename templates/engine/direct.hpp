// ---- engine/direct: channel-vectorized direct convolution (forward, backward-data, backward-weights) ----
// Vectors run along output channels (filters): acc[m][v] += broadcast(src at position m) * weights[v].
// Spatial positions are the broadcast side, so taps that only read padding are skipped exactly by
// loop bounds (rows) and per-phase tap lists (strided backward-data): the choice for small outputs
// and for many kept channels. Results go to their original channel by index (scalar stores).
// Expects (kernel.cpp includes it inside the layer namespace): the std headers, L:: (the layer's
// shape), simd:: (isa/<isa>.hpp) and engine/common.hpp (Workspace).

// The broadcast microkernel: acc[MQ][NV] = sum over channels c < KC and steps t < nT of
//   broadcast(X[c*xChan + xOff[t] + m*XSTEP]) * W[c*wChan + wOff[t] + v*VW ... +VW).
template <int MQ, int NV, long XSTEP>
[[gnu::always_inline]] static inline void bcastKernel(int KC, long wChan, long xChan, int nT, const int32_t* __restrict wOff,
                               const int32_t* __restrict xOff, const float* __restrict W, const float* __restrict X,
                               simd::vec (&acc)[MQ][NV]) {
  zeroTile(acc);
  for (int c = 0; c < KC; ++c, W += wChan, X += xChan)
    for (int t = 0; t < nT; ++t) broadcastStep<MQ, NV, XSTEP>(W + wOff[t], X + xOff[t], acc);
}

// A tile of MQ consecutive columns of one destination row (one column phase), from column J0 on:
// column tap s reads real input only at positions [lo(s), hi(s)) of the tile; the others read
// zero padding, or lie past the row's end (computed, never stored).
template <class V, int MQ, int J0>
struct TileTaps {
  static constexpr int col(int s) {
    int c = 0;
    V::colTap(0, J0, s, c);
    return c;
  }
  static constexpr int lo(int s) {
    int m = 0;
    while (m < MQ && col(s) + m * V::XSTEP < 0) ++m;
    return m;
  }
  static constexpr int hi(int s) {
    int m = std::max(lo(s), std::min(MQ, V::count(0) - J0));
    while (m > lo(s) && col(s) + (m - 1) * V::XSTEP >= V::SRC_B) --m;
    return m;
  }
  // Position-taps of the tile that read only padding or lie past the row.
  static constexpr int skipped() {
    int n = 0;
    for (int s = 0; s < L::S; ++s) n += MQ - (hi(s) - lo(s));
    return n;
  }
  // Applies to rows of one phase, whose taps come S to a kernel row (r-major), when it saves at
  // least 1/24 of the tile's FMAs. Below that the unrolled taps cost more than they save: with 28
  // accumulators GCC spills some (a 3x3 on 28-wide rows, 14 x 32 tiles, 1/42 skipped: 0.96x;
  // on 14-wide rows, 2/42 skipped: 1.035x).
  static constexpr bool APPLIES = V::PHASES == 1 && J0 >= 0 && J0 < V::count(0) && skipped() * 24 >= MQ * L::S;
};

// bcastKernel for a tile with TileTaps bounds: the taps come as nRows kernel rows of S column taps
// each, and column tap s runs only over the positions where it reads real input (a 3x3 on a
// 7-wide row computed 2 of its 21 column-tap rows on padding; a 1x7 on 17-wide rows, a tenth).
// Always inlined (see microkernel in common.hpp): the tile stays in registers across the S calls.
template <int MQ, int NV, long XSTEP, class Span, int s = 0>
[[gnu::always_inline]] static inline void spanTaps(const float* W, const float* X, const int32_t* wOff, const int32_t* xOff,
                            simd::vec (&acc)[MQ][NV]) {
  if constexpr (s < L::S) {
    constexpr int LO = Span::lo(s), HI = Span::hi(s);
    if constexpr (LO < HI) broadcastStep<MQ, NV, XSTEP, LO, HI>(W + wOff[s], X + xOff[s], acc);
    spanTaps<MQ, NV, XSTEP, Span, s + 1>(W, X, wOff, xOff, acc);
  }
}
template <int MQ, int NV, long XSTEP, class Span>
[[gnu::always_inline]] static inline void bcastKernelSpan(int KC, long wChan, long xChan, int nRows, const int32_t* __restrict wOff,
                                   const int32_t* __restrict xOff, const float* W, const float* X,
                                   simd::vec (&acc)[MQ][NV]) {
  zeroTile(acc);
  for (int c = 0; c < KC; ++c, W += wChan, X += xChan)
    for (int i = 0; i < nRows; ++i) spanTaps<MQ, NV, XSTEP, Span>(W, X, wOff + i * L::S, xOff + i * L::S, acc);
}

// One-vector tiles where a broadcast is a load of its own (AVX2): there each step's MQ broadcasts
// feed one FMA each, and the loads set the pace. The S column taps of a kernel row read the same
// source row shifted: tap s reads positions shift(s) + m*XSTEP from the row's tap-0 position, so
// each position is broadcast once and feeds every tap that reads it (a stride-1 3x3: MQ + 2
// broadcasts and 3 weight loads for 3 MQ FMAs). Applies where the taps come S to a kernel row
// (one column phase) and the tile, the S weight vectors and a broadcast fit the registers.
template <int MQ>
struct WholeTile {  // every column tap over every position (the Span of tiles without TileTaps bounds)
  static constexpr int lo(int) { return 0; }
  static constexpr int hi(int) { return MQ; }
};
template <class V, int MQ, long XSTEP, class Span = WholeTile<MQ>>
struct RowShare {
  static constexpr int shift(int s) {
    int c0 = 0, c = 0;
    V::colTap(0, 0, 0, c0);
    V::colTap(0, 0, s, c);
    return c - c0;
  }
  static constexpr int first() {
    int p = shift(0);
    for (int s = 1; s < L::S; ++s) p = std::min(p, shift(s));
    return p;
  }
  static constexpr int last() {
    int p = shift(0);
    for (int s = 1; s < L::S; ++s) p = std::max(p, shift(s));
    return p + (MQ - 1) * (int)XSTEP;
  }
  // The tile position tap s computes from position p, or -1 (also outside the tap's span).
  static constexpr int tile(int p, int s) {
    const int d = p - shift(s);
    const int m = d >= 0 && d % XSTEP == 0 ? (int)(d / XSTEP) : -1;
    return m >= Span::lo(s) && m < Span::hi(s) ? m : -1;
  }
  static constexpr bool read(int p) {
    for (int s = 0; s < L::S; ++s)
      if (tile(p, s) >= 0) return true;
    return false;
  }
  static constexpr bool APPLIES = simd::BROADCAST_IS_LOAD && V::PHASES == 1 && L::S > 1 && XSTEP <= 2 &&
                                  MQ + L::S + 1 <= simd::REGISTERS;
};

// Positions P .. Share::last() of one kernel row: one broadcast each, an FMA per tap reading it.
template <class Share, int MQ, int P = Share::first()>
[[gnu::always_inline]] static inline void sharedPositions(const float* X, const simd::vec (&w)[L::S],
                                                          simd::vec (&acc)[MQ][1]) {
  if constexpr (P <= Share::last()) {
    if constexpr (Share::read(P)) {
      const simd::vec b = simd::broadcast(X[P]);
      unrolled<L::S>([&](auto s) __attribute__((always_inline)) {
        constexpr int m = Share::tile(P, s);
        if constexpr (m >= 0) acc[m][0] = simd::fmadd(b, w[s], acc[m][0]);
      });
    }
    sharedPositions<Share, MQ, P + 1>(X, w, acc);
  }
}
// bcastKernel with RowShare: the taps come as nRows kernel rows of S column taps each.
template <class Share, int MQ>
[[gnu::always_inline]] static inline void bcastKernelShared(int KC, long wChan, long xChan, int nRows,
                                                            const int32_t* __restrict wOff,
                                                            const int32_t* __restrict xOff, const float* W,
                                                            const float* X, simd::vec (&acc)[MQ][1]) {
  zeroTile(acc);
  for (int c = 0; c < KC; ++c, W += wChan, X += xChan)
    for (int i = 0; i < nRows; ++i) {
      simd::vec w[L::S];
#pragma GCC unroll 8
      for (int s = 0; s < L::S; ++s) w[s] = simd::loadu(W + wOff[i * L::S + s]);
      sharedPositions<Share, MQ>(X + xOff[i * L::S], w, acc);
    }
}

// Zero padding left of each source row: the most negative column any valid tap reads.
template <class V>
constexpr int directLeftPad() {
  int lo = 0;
  for (int ph = 0; ph < V::PHASES; ++ph)
    for (int s = 0; s < L::S; ++s) {
      int col = 0;
      if (V::colTap(ph, 0, s, col)) lo = std::min(lo, col);
    }
  return -lo;
}

// Padded source row width: covers every column any tile, tail tile included, may read.
template <class V, int MQ>
constexpr int directRowWidth() {
  int hi = V::SRC_B - 1;
  for (int ph = 0; ph < V::PHASES; ++ph) {
    const int tiles = (V::count(ph) + MQ - 1) / MQ;
    for (int s = 0; s < L::S; ++s) {
      int col = 0;
      if (tiles > 0 && V::colTap(ph, 0, s, col)) hi = std::max(hi, col + (tiles * MQ - 1) * (int)V::XSTEP);
    }
  }
  return directLeftPad<V>() + hi + 1;
}

// Source rows read by destination rows [a0, a1) through valid row taps: [lo, hi) (empty: lo >= hi).
template <class V>
constexpr void directRowSpan(int a0, int a1, int& lo, int& hi) {
  lo = V::SRC_A, hi = 0;
  for (int a = a0; a < a1; ++a)
    for (int r = 0; r < L::R; ++r) {
      int row = 0;
      if (V::rowTap(a, r, row)) lo = std::min(lo, row), hi = std::max(hi, row + 1);
    }
}

// The most source rows any block of ROWS destination rows reads.
template <class V, int ROWS>
constexpr int directMaxRows() {
  int most = 1;
  for (int a0 = 0; a0 < V::DST_A; a0 += ROWS) {
    int lo = 0, hi = 0;
    directRowSpan<V>(a0, std::min(V::DST_A, a0 + ROWS), lo, hi);
    most = std::max(most, hi - lo);
  }
  return most;
}

// The taps some destination position reads: a valid row tap for some destination row and a valid
// column tap for some column phase (columns into padding count: non-batch tiles read the zero
// padding). Small planes under big kernels use few of them (a 3x3 on a 1x1 plane: the centre only).
// They are packed class by class: a strided backward-data's row a and phase ph read only the taps
// of class (a % ROW_CLASSES, ph) (a stride-2 3x3: 1, 2, 2 or 4 of its 9), so each class's weights
// are one contiguous run per panel instead of every ninth group of vectors.
template <class V>
struct UsedTaps {
  static constexpr int RS = L::R * L::S, CLASSES = V::ROW_CLASSES * V::PHASES;
  struct Table {
    int count = 0;
    int slot[RS] = {};  // packed position of tap r*S+s, -1 when unused
    int tap[RS] = {};   // the tap at each packed position
    int classStart[CLASSES] = {}, classCount[CLASSES] = {};  // packed positions [start, start + count)
    int classOfSlot[RS] = {};                                   // the class of each packed position
  };
  static constexpr Table make() {
    Table t;
    for (int q = 0; q < CLASSES; ++q) {
      t.classStart[q] = t.count;
      for (int r = 0; r < L::R; ++r)
        for (int s = 0; s < L::S; ++s) {
          if (V::rowClass(r) * V::PHASES + V::colClass(s) != q) continue;
          bool row = false, col = false;
          for (int a = 0; a < V::DST_A && !row; ++a) {
            int i = 0;
            row = V::rowTap(a, r, i);
          }
          for (int ph = 0; ph < V::PHASES && !col; ++ph)
            for (int j = 0; j < V::count(ph) && !col; ++j) {
              int k = 0;
              col = V::colTap(ph, j, s, k);
            }
          t.slot[r * L::S + s] = row && col ? t.count : -1;
          if (row && col) t.classOfSlot[t.count] = q, t.tap[t.count++] = r * L::S + s;
        }
      t.classCount[q] = t.count - t.classStart[q];
    }
    return t;
  }
  static constexpr Table table = make();
  // The class of destination row a, phase ph.
  static constexpr int classOf(int a, int ph) { return (a % V::ROW_CLASSES) * V::PHASES + ph; }
};

// Forward / backward-data. V (a view) says, per destination row a, which row taps are valid and
// their source row; per column phase ph, which column taps are valid and their source column.
// Destination columns of phase ph are b = ph + j*BSTEP. A work item packs the source rows it
// needs (kept channels only, zero-padded columns) for a block of images and destination rows.
// Tiles hold MQ positions: consecutive columns of one row (BATCH false), or MQ images at one
// position (BATCH true: tiny outputs, where every position has its own exact tap list).
// Built at -O3 (the addon is -O2, src/codegen/build.ts): with 28 accumulators, a tile whose
// column taps skip positions (TileTaps) left GCC 12 at -O2 70-90 stack operands in the pass
// (FMAs on spilled accumulators), -O3 about 35. Zen 4, d=0.5, b8: 3x3 @14 forward 1.02x,
// backward-data 1.06x; dilated 3x3 @28 1.065x / 1.03x; 7x1 @17 1.05x / 1.04x; 3x3 @28, @56 and
// @7, 5x5 @32 1.00-1.03x; 1x7 and the 7x7 stem 0.99-1.01x. (Backward-weights stays -O2: at -O3
// its tile spilled.)
#pragma GCC push_options
#pragma GCC optimize("O3")
template <class V, int MQ, int NV, bool BATCH, int ROWS_PER_BLOCK>
struct DirectPass {
  static constexpr int VW = simd::VW, NR = NV * VW, RS = L::R * L::S;
  static constexpr auto TAPS = UsedTaps<V>::table;  // only these are packed
  static constexpr long DST_PLANE = (long)V::DST_A * V::DST_B, DST_IMG = DST_PLANE * V::DST_C;
  static constexpr int LPAD = directLeftPad<V>(), BW = directRowWidth<V, BATCH ? 1 : MQ>();
  static constexpr int NB = BATCH ? MQ : 1;  // images per item
  static constexpr int ROW_BLOCKS = (V::DST_A + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK;
  static constexpr int MAX_ROWS = directMaxRows<V, ROWS_PER_BLOCK>();
  static constexpr long IMG = (long)MAX_ROWS * BW;           // one image of one channel in the pack
  static constexpr long XSTEP = BATCH ? IMG : V::XSTEP;      // source distance between tile positions
  // A strided backward-data writes each destination row as BSTEP interleaved column phases. Its
  // tiles go whole to a stage of the row (position-major, NR channels per position, in L1), and
  // the finished row leaves through the transposes of consecutive columns. One scalar store per
  // output straight to dx, a line miss each, took a fifth of a stride-2 3x3 (128 -> 128 @56).
  static constexpr bool STAGED = !BATCH && V::BSTEP > 1;
  // Rows of one phase: its first and last tile run only the column taps that read real input
  // (TileTaps); the tiles between them read none of the padding.
  static constexpr int LAST_J0 = V::PHASES == 1 ? (V::count(0) - 1) / MQ * MQ : -1;
  using FirstTile = TileTaps<V, MQ, 0>;
  using LastTile = TileTaps<V, MQ, LAST_J0>;
  static constexpr bool FIRST_SPAN = !BATCH && FirstTile::APPLIES;
  static constexpr bool LAST_SPAN = !BATCH && LAST_J0 > 0 && LastTile::APPLIES;
  static constexpr bool ROW_SHARE = !BATCH && NV == 1 && RowShare<V, MQ, XSTEP>::APPLIES;

  // One tile's sums over the nT taps: Span bounds the column taps of first and last tiles
  // (TileTaps) or not (WholeTile); one-vector tiles share broadcasts across a kernel row (RowShare).
  template <class Span>
  [[gnu::always_inline]] static inline void tileKernel(int KC, long wChan, long xChan, int nT, const int32_t* wOff,
                                                       const int32_t* xOff, const float* W, const float* X,
                                                       simd::vec (&acc)[MQ][NV]) {
    if constexpr (ROW_SHARE)
      bcastKernelShared<RowShare<V, MQ, XSTEP, Span>, MQ>(KC, wChan, xChan, nT / L::S, wOff, xOff, W, X, acc);
    else if constexpr (std::is_same_v<Span, WholeTile<MQ>>)
      bcastKernel<MQ, NV, XSTEP>(KC, wChan, xChan, nT, wOff, xOff, W, X, acc);
    else
      bcastKernelSpan<MQ, NV, XSTEP, Span>(KC, wChan, xChan, nT / L::S, wOff, xOff, W, X, acc);
  }
  // Positions past a phase's count land past the row (b >= DST_B): a tile is staged whole.
  static constexpr long STAGE_POSITIONS = V::DST_B + (long)MQ * V::BSTEP;

  // How this call's panels are packed: decided once (by the calling thread), then filled panel by
  // panel (packPanel), by whichever thread runs them.
  struct WeightPack {
    float* out;
    long rowsT;
    int slices;  // reduction slices per panel (packW spreads 1-2 large panels over the threads)
    bool byRuns, byRows;
    long nChunks;
  };
  static WeightPack planW(const int32_t* kIdx, int M, int KC, Workspace& ws, int threads) {
    static_assert((long)L::K * L::C * L::R * L::S < (1L << 31), "weight offsets are 32-bit");
    constexpr int T = TAPS.count;
    constexpr bool ONE_CLASS = UsedTaps<V>::CLASSES == 1;
    const int panels = (M + NR - 1) / NR;
    const long rowsT = (long)KC * T;
    float* out = ws.aPack.get((size_t)std::max(panels, 1) * rowsT * NR + 1);
    int32_t* redOff = ws.redOff.get(rowsT + 1);
    long runs = 0;
    for (int c = 0; c < KC; ++c)
      for (int u = 0; u < T; ++u) {
        const int tap = TAPS.tap[u];
        const long t = (long)c * T + u;
        redOff[t] = (int32_t)V::wRed(kIdx[c], tap / L::S, tap % L::S);
        runs += t == 0 || redOff[t] != redOff[t - 1] + 1;
      }
    // A run of n entries costs one VW x VW transpose per VW rows, against n loads per row, so
    // runs go through transposes only when they average RUN_MIN entries or more (an estimate from
    // those counts). Transposing every run, a 1x1 @7 forward at d=0.5 (runs of 1-3) ran 1.46x slower.
    constexpr int RUN_MIN = 4;
    const bool byRuns = ONE_CLASS && rowsT >= RUN_MIN * runs;
    const bool byRows =
        ONE_CLASS && !byRuns && V::wRow(1) > V::wRed(1, 0, 0) && buildRowChunks(redOff, rowsT, ws.rowChunks);
    // Fewer panels than twice the threads (a 1-2 panel layer packed on one core while the other
    // waited): each panel of 64 KiB or more is cut into slices of its reduction channels (of its
    // chunks, byRows). Smaller panels pack in a few µs; slicing them cost 32 -> 32 3x3 @16 b64
    // (9 KiB panels) 0.9x.
    const long nChunks = byRows ? (long)ws.rowChunks.size() : 0;
    const bool sliced = panels < 2 * threads && rowsT * NR >= 16384;
    const int slices = !sliced ? 1 : (int)std::min<long>(byRows ? nChunks : KC, (2 * threads + panels - 1) / panels);
    return {out, rowsT, slices, byRuns, byRows, nChunks};
  }

  // Weights of kept rows x kept reduction channels, NR rows innermost: W[panel][c][used tap][NR];
  // row i's weight is w[wRow(row i) + redOff[c, tap]]. With one tap class the panel is in
  // redOff's order, whose entries come in runs lying side by side in every row (a kept channel's
  // R*S taps): transposed in registers a run at a time (gatherRunsTransposed). Short runs (1x1:
  // consecutive kept channels) go window by window where rows lie along w (forward,
  // gatherRowsTransposed); the rest, several classes included, NR loads per entry. (Writing the
  // panel one row at a time stored one float per cache line: a fifth of a 3x3 forward with 256
  // kept channels on a 7x7 plane.)
  static const float* packW(const float* w, const int32_t* mIdx, int M, const int32_t* kIdx, int KC, Workspace& ws,
                            int threads) {
    const WeightPack p = planW(kIdx, M, KC, ws, threads);
    const int panels = (M + NR - 1) / NR;
    parallel(threads, [&] {
#pragma omp for schedule(static)
      for (int item = 0; item < panels * p.slices; ++item) packPanel(p, w, mIdx, M, KC, ws, item / p.slices, item % p.slices);
    });
    return p.out;
  }

  // Slice `slice` of panel pm (packW).
  static void packPanel(const WeightPack& p, const float* w, const int32_t* mIdx, int M, int KC, Workspace& ws, int pm,
                        int slice) {
    constexpr int T = TAPS.count;
    const int slices = p.slices;
    const long nChunks = p.nChunks;
    const int32_t* redOff = ws.redOff.v.data();
    float* panel = p.out + (long)pm * p.rowsT * NR;
    // The last panel's rows past M repeat row M - 1: their lanes are computed and never
    // stored (zeroing them took a select per element: a quarter of a 16-channel call on a
    // 1x1 plane, whose 32-lane tile is half padding).
    const int rows = std::min(NR, M - pm * NR);
    const float* src[NR];
    for (int i = 0; i < NR; ++i) src[i] = w + V::wRow(mIdx[pm * NR + std::min(i, rows - 1)]);
    // This slice: reduction channels [c0, c1), entries [t0, t1).
    const int c0 = (int)((long)KC * slice / slices), c1 = (int)((long)KC * (slice + 1) / slices);
    const long t0 = (long)c0 * T, t1 = (long)c1 * T;
    if (p.byRuns) {
      gatherRunsTransposed<NR>(src, redOff + t0, t1 - t0, panel + t0 * NR);
    } else if (p.byRows) {
      const RowChunk* chunks = ws.rowChunks.data();
      gatherRowsTransposed<NR>(src, chunks + nChunks * slice / slices, chunks + nChunks * (slice + 1) / slices, panel);
    } else if constexpr (V::wRow(1) - V::wRow(0) == 1) {
      packNeighbourRows(w, mIdx + pm * NR, rows, redOff + t0, t1 - t0, panel + t0 * NR);
    } else {
      // Backward-data: entry (k, tap) of row c is w[k][c][tap]. The rows' entries for one k lie
      // within a few KiB, and the next kept k's are C*R*S floats on: ask for those of the k PACK_AHEAD on
      // while this one is copied (the prefetchers do not follow jumps between k, and the pack
      // waited on them: a seventh of a stride-2 3x3 backward-data on 14x14).
      for (long t = t0; t < t1; ++t) {
        const int32_t o = redOff[t];
        const int c = (int)(t / T), u = (int)(t % T);
        if (u == 0 && t + PACK_AHEAD * T < t1)
          for (int i = 0; i < NR; ++i) __builtin_prefetch(src[i] + redOff[t + PACK_AHEAD * T]);
        float* entry = panel + weightOffset(c, u, KC);
#pragma GCC unroll 16
        for (int i = 0; i < NR; ++i) entry[i] = src[i][o];
      }
    }
  }

  // A panel of a 1x1 backward-data: its rows are kept input channels, neighbours in w, so entry
  // t (kept filter k) is the kept floats of a stretch of w's row k, compressed 16 floats at a time
  // (one masked load, compress and store). Rows past `rows` repeat the last one. NR loads per
  // entry took a quarter of a 1024 -> 1024 @7 backward-data at batch 4.
  static void packNeighbourRows(const float* w, const int32_t* rowIdx, int rows, const int32_t* redOff, long n,
                                float* panel) {
    constexpr int SEGMENTS = (std::max(L::C, L::K) + 15) / 16 + 1;  // rows index C (or K, a 1x1 forward of C = 1)
    const long base = rowIdx[0] & ~15L;
    const int segments = (int)((rowIdx[rows - 1] - base) / 16 + 1);
    unsigned mask[SEGMENTS] = {};
    segmentMasks(rowIdx, rows, base, mask);
    alignas(64) float last[NR + 16];
    for (long t = 0; t < n; ++t) {
      const float* row = w + V::wRow(0) + base + redOff[t];
      if (t + PACK_AHEAD < n)
        for (int q = 0; q < segments; ++q)
          if (mask[q]) __builtin_prefetch(w + V::wRow(0) + base + redOff[t + PACK_AHEAD] + 16 * q);
      // compress16 stores whole vectors: past entry t they land on entry t + 1, written next;
      // the panel's last entry goes through a buffer.
      float* dst = t + 1 < n ? panel + t * NR : last;
      compressSegments(dst, row, mask, segments);
      for (int i = rows; i < NR; ++i) dst[i] = dst[rows - 1];
      if (dst == last) std::memcpy(panel + t * NR, last, sizeof(float) * NR);
    }
  }
  // Packed weights of this many bytes that both threads read whole are packed by each (run).
  static constexpr long PRIVATE_W_MIN_BYTES = 32 * 1024, PRIVATE_W_MAX_BYTES = 256 * 1024;
  static constexpr int PACK_AHEAD = 2;  // entries (kept k) ahead that packs prefetch

  // Where packed tap u of reduction channel c starts in a panel: class by class, each class's
  // taps for every channel together ([class][c][tap in class][NR]; with one class, [c][tap][NR]).
  static constexpr long weightOffset(int c, int u, int KC) {
    const int q = TAPS.classOfSlot[u], start = TAPS.classStart[q];
    return ((long)start * KC + (long)c * TAPS.classCount[q] + (u - start)) * NR;
  }

  // Source rows [lo, hi) of images n0.. n0+NB (zeros past the call's N images) into pack[c][nb][row][BW].
  static void packSrc(const float* src, const int32_t* kIdx, int KC, int N, int n0, int lo, int hi, float* pack) {
    for (int c = 0; c < KC; ++c)
      for (int nb = 0; nb < NB; ++nb) {
        float* o = pack + ((long)c * NB + nb) * IMG;
        const int n = n0 + nb;
        if (n >= N) {
          std::memset(o, 0, sizeof(float) * (hi - lo) * BW);
          continue;
        }
        const float* in = src + (((long)n * V::SRC_C + kIdx[c]) * V::SRC_A + lo) * V::SRC_B;
        for (int i = lo; i < hi; ++i, o += BW, in += V::SRC_B) {
          std::memset(o, 0, sizeof(float) * LPAD);
          std::memcpy(o + LPAD, in, sizeof(float) * V::SRC_B);
          std::memset(o + LPAD + V::SRC_B, 0, sizeof(float) * (BW - LPAD - V::SRC_B));
        }
      }
  }

  static void run(const float* src, const float* w, const float* bias, float* dst, const int32_t* mIdx, int M,
                  const int32_t* kIdx, int KC, Workspace& ws, int threads) {
    const int panels = (M + NR - 1) / NR;
    if (panels == 0) return;
    // An item covers every column phase of its rows: phases split into items put the interleaved
    // columns of one destination row on both cores at once, false-sharing its lines (a stride-2
    // backward-data with 8 kept channels ran 2-4x slower than with the phases in one item).
    const long baseItems = (long)((ws.n + NB - 1) / NB) * ROW_BLOCKS;
    // Owned panels: where the packed weights outweigh the packed source of all blocks, each thread
    // packs a run of panels and runs only those over every block (packing each block's source
    // itself). Read by both threads, the weights crossed between cores once a call, and twice when
    // the cores sit on different CCDs (read, then invalidated by the next call's pack).
    const long wFloats = (long)panels * KC * TAPS.count * NR, srcFloats = baseItems * KC * NB * IMG;
    const bool owned = threads > 1 && wFloats >= srcFloats && panelsSplitEvenly(panels, threads);
    const int perItem = owned ? (panels + threads - 1) / threads : panelsPerItem(panels, baseItems, threads);
    const int chunks = (panels + perItem - 1) / perItem;
    const long items = baseItems * chunks;
    // One item (a tile of 4 images on a 4x4 plane, one panel): a second thread would only wait.
    if (items < threads) threads = (int)items;
    // Private: packed weights of a few panels that every thread reads whole are packed by each
    // thread into its own copy (twice the packing, nothing shared). Shared, a thread wrote half the
    // lines the other had read in the last call, then read the other half from that core, a CCD
    // apart in the VM's far phases. bench/ab.ts, Zen 4, d=0.5, forward: 1x1 960 -> 160 @7 b4
    // (154 KiB) 1.05x near, 1.34x far; 3x3 64 @8 b64 (36 KiB) 1.00x near, 1.04-1.09x far; 128 /2
    // @56 b8 and 128 @16 b64 even. Below 32 KiB (ResNet-56's 16 @32 and 32 @16 at b64) private
    // copies read 0.97-0.99x far, once much less: those stay shared.
    const long wBytes = wFloats * (long)sizeof(float);
    const bool privateW =
        !owned && threads > 1 && wBytes >= PRIVATE_W_MIN_BYTES && wBytes <= PRIVATE_W_MAX_BYTES;
    const WeightPack wp = owned || privateW ? planW(kIdx, M, KC, ws, 1) : WeightPack{};
    const float* Wp = owned ? wp.out : privateW ? nullptr : packW(w, mIdx, M, kIdx, KC, ws, threads);
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) {  // allocate outside the parallel region: no throw inside it
      if (privateW) ws.wPrivate[t].get((size_t)wFloats + 1);
      ws.bBlock[t].get((size_t)std::max(KC, 1) * NB * IMG);
      ws.aOff[t].get(RS);
      ws.bOff[t].get(RS);
      if (STAGED) ws.lanePack[t].get((size_t)NR * STAGE_POSITIONS);
    }
    // The item loop's schedule(runtime) reads this thread's run-sched-var: set for the call, then
    // given back (other OpenMP code in the process may read it too).
    omp_sched_t callerKind;
    int callerChunk;
    omp_get_schedule(&callerKind, &callerChunk);
    omp_set_schedule(owned ? omp_sched_static : omp_sched_dynamic, 1);
    parallel(threads, [&] {
      const int tid = omp_get_thread_num();
      float* pack = ws.bBlock[tid].data;
      int32_t* wOff = ws.aOff[tid].v.data();
      int32_t* xOff = ws.bOff[tid].v.data();
      float* stage = STAGED ? ws.lanePack[tid].data : nullptr;
      long packedBlock = -1;  // consecutive chunks of one block reuse its pack (the whole input, on small planes)
      const float* Wmine = Wp;
      if (privateW) {
        WeightPack mine = wp;
        mine.out = ws.wPrivate[tid].data;
        for (int pm = 0; pm < panels; ++pm)
          for (int slice = 0; slice < mine.slices; ++slice) packPanel(mine, w, mIdx, M, KC, ws, pm, slice);
        Wmine = mine.out;
      }
      if (owned) {
        if (omp_get_num_threads() == chunks) {  // chunk tid's panels: the loop below gives it chunk tid's items
          for (int pm = tid * perItem; pm < std::min(panels, (tid + 1) * perItem); ++pm) packPanel(wp, w, mIdx, M, KC, ws, pm, 0);
        } else {  // a smaller team than asked for: pack together, then any thread may run any panel
#pragma omp for schedule(static)
          for (int pm = 0; pm < panels; ++pm) packPanel(wp, w, mIdx, M, KC, ws, pm, 0);
        }
      }
      // Owned: static round robin, so item rest * chunks + tid (every block, panels of chunk tid)
      // runs on thread tid (chunks == threads); else dynamic (omp_set_schedule above).
#pragma omp for schedule(runtime)
      for (long item = 0; item < items; ++item) {
        const int chunk = (int)(item % chunks);
        const long rest = item / chunks;
        const int a0 = (int)(rest % ROW_BLOCKS) * ROWS_PER_BLOCK, a1 = std::min(V::DST_A, a0 + ROWS_PER_BLOCK);
        const int n0 = (int)(rest / ROW_BLOCKS) * NB;
        int lo, hi;
        directRowSpan<V>(a0, a1, lo, hi);
        if (lo < hi && rest != packedBlock) packSrc(src, kIdx, KC, ws.n, n0, lo, hi, pack);
        packedBlock = rest;
        // Panels outer: one panel of packed weights stays in L2 while every position of the item uses it.
        for (int pm = chunk * perItem; pm < std::min(panels, (chunk + 1) * perItem); ++pm) {
          const float* Wpanel = Wmine + (long)pm * KC * TAPS.count * NR;
          for (int a = a0; a < a1; ++a) {
            for (int ph = 0; ph < V::PHASES; ++ph) {
              const int count = V::count(ph);
              // BATCH: one tile per column j with its exact taps; else tiles of MQ columns that
              // share the taps of the phase.
              int nT = BATCH ? 0 : tapTable(a, ph, 0, lo, wOff, xOff);
              const int q = UsedTaps<V>::classOf(a, ph);
              const float* Wq = Wpanel + (long)TAPS.classStart[q] * KC * NR;
              const long wChan = (long)TAPS.classCount[q] * NR, xChan = NB * IMG;
              for (int j0 = 0; j0 < count; j0 += BATCH ? 1 : MQ) {
                if (BATCH) nT = tapTable(a, ph, j0, lo, wOff, xOff);
                simd::vec acc[MQ][NV];
                const float* X = pack + (BATCH ? 0 : (long)j0 * V::XSTEP);
                if (FIRST_SPAN && j0 == 0)
                  tileKernel<FirstTile>(KC, wChan, xChan, nT, wOff, xOff, Wq, X, acc);
                else if (LAST_SPAN && j0 == LAST_J0)
                  tileKernel<LastTile>(KC, wChan, xChan, nT, wOff, xOff, Wq, X, acc);
                else
                  tileKernel<WholeTile<MQ>>(KC, wChan, xChan, nT, wOff, xOff, Wq, X, acc);
                if constexpr (STAGED)
                  stageTile(acc, stage, ph, j0);
                else
                  store(acc, dst, bias, mIdx, M, pm, ws.n, n0, a, ph, j0, count);
              }
            }
            if constexpr (STAGED) flushRow(stage, dst, bias, mIdx, M, pm, n0, a);
          }
        }
      }
    });
    omp_set_schedule(callerKind, callerChunk);
  }

  // Offsets of the valid taps for destination row a, phase ph, column j, relative to a channel
  // (column taps into padding are dropped only when checked per column, i.e. BATCH).
  static int tapTable(int a, int ph, int j, int lo, int32_t* wOff, int32_t* xOff) {
    const int first = TAPS.classStart[UsedTaps<V>::classOf(a, ph)];  // offsets within the row's class
    int nT = 0;
    for (int r = 0; r < L::R; ++r) {
      int row;
      if (!V::rowTap(a, r, row)) continue;
      for (int s = 0; s < L::S; ++s) {
        int col;
        if (!V::colTap(ph, j, s, col)) continue;
        if (BATCH && (col < 0 || col >= V::SRC_B)) continue;
        wOff[nT] = (TAPS.slot[r * L::S + s] - first) * NR;  // used: this very tap is valid here
        xOff[nT++] = (int32_t)((row - lo) * BW + LPAD + col);
      }
    }
    return nT;
  }

  // STAGED: position m of the tile is column ph + (j0+m)*BSTEP of the row.
  static inline void stageTile(const simd::vec (&acc)[MQ][NV], float* stage, int ph, int j0) {
    float* p = stage + (long)(ph + j0 * V::BSTEP) * NR;
#pragma GCC unroll 16
    for (int m = 0; m < MQ; ++m)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) simd::storeu(p + (long)m * V::BSTEP * NR + v * VW, acc[m][v]);
  }

  // STAGED: destination row a of the panel's channels, once every phase is staged.
  static inline void flushRow(const float* stage, float* dst, const float* bias, const int32_t* mIdx, int M, int pm,
                              int n0, int a) {
    storeColumns(stage, V::DST_B, std::min(NR, M - pm * NR), mIdx + pm * NR, bias,
                 dst + (long)n0 * DST_IMG + (long)a * V::DST_B);
  }

  // Lane l of acc[m][v] is destination channel mIdx[pm*NR + v*VW + l]; position m is column
  // ph + (j0+m)*BSTEP of image n0 (or image n0+m at column ph + j0*BSTEP when BATCH).
  static inline void store(const simd::vec (&acc)[MQ][NV], float* dst, const float* bias, const int32_t* mIdx, int M,
                           int pm, int N, int n0, int a, int ph, int j0, int count) {
    alignas(64) float lanes[MQ][NR];
#pragma GCC unroll 16
    for (int m = 0; m < MQ; ++m)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) simd::spill(&lanes[m][v * VW], acc[m][v]);
    const int rows = std::min(NR, M - pm * NR);
    const int cols = BATCH ? std::min(MQ, N - n0) : std::min(MQ, count - j0);
    float* base = dst + (long)n0 * DST_IMG + (long)a * V::DST_B + ph + (long)j0 * V::BSTEP;
    if constexpr (!BATCH && V::BSTEP == 1) return storeColumns(&lanes[0][0], cols, rows, mIdx + pm * NR, bias, base);
    const long step = BATCH ? DST_IMG : (long)V::BSTEP;
    for (int i = 0; i < rows; ++i) {
      const int ch = mIdx[pm * NR + i];
      const float b = bias ? bias[ch] : 0.f;
      float* out = base + ch * DST_PLANE;
      for (int m = 0; m < cols; ++m) out[m * step] = lanes[m][i] + b;
    }
  }

  // Positions [0, cols) of `lanes` (position-major, NR channels each) to consecutive destination
  // columns: lane i of position m goes to base[chan[i]*DST_PLANE + m] (+ bias), for i < rows. A
  // transpose of VW positions x VW channels gives one vector store per channel and run of VW
  // positions; scalar stores cost more than the FMAs on layers with few kept channels (ResNet's
  // 16-16 3x3 @16x16 spent a quarter of its forward in them). A shorter run takes a masked store
  // where those are cheap; the rest, scalar stores.
  static inline void storeColumns(const float* lanes, int cols, int rows, const int32_t* chan, const float* bias,
                                  float* base) {
    const int vectorCols = VW == 1 ? 0 : simd::CHEAP_MASKED_STORE ? cols : cols / VW * VW;
    alignas(64) float block[VW][VW];
    for (int m0 = 0; m0 < vectorCols; m0 += VW) {
      const int run = std::min(VW, vectorCols - m0);
      for (int v = 0; v * VW < rows; ++v) {
        const float* src[VW];
        for (int r = 0; r < VW; ++r) src[r] = lanes + (long)std::min(m0 + r, cols - 1) * NR + v * VW;  // not stored
        simd::transpose(src, &block[0][0], VW);
        for (int l = 0; l < std::min(VW, rows - v * VW); ++l) {
          const int ch = chan[v * VW + l];
          simd::vec out = simd::loadu(block[l]);
          if (bias) out = simd::add(out, simd::broadcast(bias[ch]));
          float* o = base + ch * DST_PLANE + m0;
          if (run == VW)
            simd::storeu(o, out);
          else
            simd::storeLanes(o, out, 0, run);
        }
      }
    }
    // The tail (fewer than VW columns) as a loop of constant bound, unrolled whole. As a plain loop
    // GCC also vectorized it for the 8 and more columns it never has, and kept the permute indices
    // of that dead code in two registers across the tile's FMA loop: an AVX2 10 x 1 tile, which
    // needs 14 of the 16, then spilled an accumulator every step. AVX2 on a Zen 4, d=0.5, both build
    // orders: 64 @30 b8 forward 1.22-1.24x, backward-data 1.08x; 16 @32 b64 (8 kept), 64 @32,
    // 128 @28, 512 @7, 16 @56 and 5x5 16 @28 within the orders' spread (0.96-1.03x).
    const int tail = cols - vectorCols;
    for (int i = 0; i < rows && tail > 0; ++i) {
      const float b = bias ? bias[chan[i]] : 0.f;
      float* out = base + chan[i] * DST_PLANE + vectorCols;
      const float* in = lanes + (long)vectorCols * NR + i;
      const int bound = VW > 1 ? VW - 1 : tail;  // a constant where VW > 1 (scalar: any tail)
#pragma GCC unroll 16
      for (int m = 0; m < bound; ++m)
        if (m < tail) out[m] = in[(long)m * NR] + b;
    }
  }
};
#pragma GCC pop_options

// Backward-weights, tap-major: for one tap (r,s), acc[m][v] += broadcast(x of kept channel m) *
// dy[v-th vector of kept filters], summed over the output positions where the tap reads real
// input (padding positions are skipped by bounds). Two blockings of the reduction:
//  - images (small planes): all threads share one block of images at a time and split the
//    (panel, channel group, taps) items; partial sums live in a buffer between blocks;
//  - rows (long rows): each thread takes blocks of one image x ROWS output rows on its own, packs
//    them into its L2 and accumulates every item into a private partial sum; one reduction at the
//    end. Nothing is packed beyond the block, so large planes stream from memory once.
template <int MT, int NV>
struct DirectWeights {
  static constexpr int VW = simd::VW, NR = NV * VW, RS = L::R * L::S;
  static constexpr long HW = (long)L::H * L::W, PQ = (long)L::P * L::Q;
  // The packed x plane, XH x XW. A strided 1x1 reads x only on the P x Q grid (h = p*SH - PH,
  // w = q*SW - PW): it packs that grid (zeros where it falls into the padding) and runs as a
  // stride-1 1x1 on it, instead of packing the whole plane for a quarter of it (stride 2).
  static constexpr bool GRID = L::R == 1 && L::S == 1 && (L::SH > 1 || L::SW > 1);
  static constexpr int XH = GRID ? L::P : L::H, XW = GRID ? L::Q : L::W;
  static constexpr int XSH = GRID ? 1 : L::SH, XSW = GRID ? 1 : L::SW, XPH = GRID ? 0 : L::PH, XPW = GRID ? 0 : L::PW;
  static constexpr long XHW = (long)XH * XW;
  // Packed x is channel-interleaved, xg[n][group][XH][XW][MT]: the MT values a step broadcasts are
  // adjacent, so a step reads one x stream instead of MT (512-512 @2x2: 8.0 -> 4.8 ms; within
  // noise on large outputs).
  static constexpr long XGROUP = XHW * MT;

  // acc += one tap over images [0, nb) and output rows [pa, pb) of the tap's valid rectangle.
  // Packed dy is one panel's dyT[n][p - pOrigin][q][NR] (image stride dyImg, position stride
  // posStride), packed x is xg[n][h - hOrigin][w][MT] of one channel group (image stride xImg), in
  // packed-plane rows.
  [[gnu::always_inline]] static inline void tapTile(int tap, int nb, int pa, int pb, int pOrigin, int hOrigin, const float* dyT, long dyImg,
                             long posStride, const float* xg, long xImg, simd::vec (&acc)[MT][NV]) {
    const int r = tap / L::S, s = tap % L::S;
    const int plo = std::max(pa, ceilDiv(L::PH - r * L::DH, L::SH));
    const int phi = std::min(pb, ceilDiv(L::H + L::PH - r * L::DH, L::SH));
    const int qlo = std::max(0, ceilDiv(L::PW - s * L::DW, L::SW));
    const int qhi = std::min(L::Q, ceilDiv(L::W + L::PW - s * L::DW, L::SW));
    auto step = [&](const float* d, const float* xr) {
      simd::vec dv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) dv[v] = simd::loadu(d + v * VW);
#pragma GCC unroll 16
      for (int m = 0; m < MT; ++m) {
        const simd::vec b = simd::broadcast(xr[m]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[m][v] = simd::fmadd(b, dv[v], acc[m][v]);
      }
    };
    auto dyAt = [&](int n, int p, int q) { return dyT + n * dyImg + ((long)(p - pOrigin) * L::Q + q) * posStride; };
    auto xAt = [&](int n, int p, int q) {
      return xg + n * xImg +
             ((long)(p * XSH - XPH + r * L::DH - hOrigin) * XW + (q * XSW - XPW + s * L::DW)) * MT;
    };
    if constexpr (RS == 1 && L::PH == 0 && L::PW == 0 && (GRID || (L::SH == 1 && L::SW == 1))) {
      // A 1x1 whose packed x is the output grid: an image's rows [pa, pb) are one run in both
      // packs, walked flat (with the filter panel contiguous, dy streams in order).
      for (int n = 0; n < nb; ++n) {
        const float* d = dyAt(n, pa, 0);
        const float* xr = xAt(n, pa, 0);
        for (long j = 0; j < (long)(pb - pa) * L::Q; ++j, d += posStride, xr += MT) step(d, xr);
      }
    } else if constexpr (L::Q >= 8) {  // long rows: the inner loop walks q
      for (int n = 0; n < nb; ++n)
        for (int p = plo; p < phi; ++p) {
          const float* d = dyAt(n, p, qlo);
          const float* xr = xAt(n, p, qlo);
          for (int q = qlo; q < qhi; ++q, d += posStride, xr += XSW * MT) step(d, xr);
        }
    } else {  // tiny outputs: the inner loop walks the images instead
      if (nb == 0) return;
      for (int p = plo; p < phi; ++p)
        for (int q = qlo; q < qhi; ++q) {
          const float* d = dyAt(0, p, q);
          const float* xr = xAt(0, p, q);
          for (int n = 0; n < nb; ++n, d += dyImg, xr += xImg) step(d, xr);
        }
    }
  }

  static constexpr int ceilDiv(int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

  // The packs below read one cache line from each of many planes per step (every kept filter's
  // or channel's), more streams than the hardware prefetchers follow; each read asks for the line
  // two ahead in its plane. A 1x1 backward-weights with 256 kept filters on 28x28 at batch 8 ran
  // 1.16x faster from cold caches (four lines ahead: 1.14x, eight: 1.09x).
  static constexpr int PACK_PREFETCH = 32;  // floats
  static constexpr int GRID_PREFETCH = 3;   // channels

  // dy of image n, positions [pq0, pq1), transposed so filters are innermost (one load gives NR of
  // them): kept filter i at position pq goes to out[(i / NR) * panelStride + (pq - pq0) * posStride
  // + i % NR]; filters past M, up to whole panels, are zero. Panel-major (posStride NR) keeps a
  // panel's positions contiguous: with filters innermost over all panels (posStride = panels * NR),
  // each step of a 1024-filter 1x1 read a new 4 KiB page. Whole VW x VW blocks go through the
  // register transpose; edges are scalar.
  static void packDyT(const float* dy, const int32_t* rows, int M, int panels, long panelStride, long posStride, int n,
                      long pq0, long pq1, float* out) {
    const auto at = [&](long pq, int i) { return out + (long)(i / NR) * panelStride + pq * posStride + i % NR; };
    for (long b0 = pq0; b0 < pq1; b0 += VW) {
      const long rel = b0 - pq0, np = std::min<long>(VW, pq1 - b0);
      if (M % NR)
        for (long pq = 0; pq < np; ++pq) std::memset(at(rel + pq, M), 0, sizeof(float) * ((long)panels * NR - M));
      int i = 0;
      if (np == VW)
        for (; i + VW <= M; i += VW) {  // VW consecutive filters never straddle a panel (NR = NV * VW)
          const float* src[VW];
          for (int r = 0; r < VW; ++r) {
            src[r] = dy + ((long)n * L::K + rows[i + r]) * PQ + b0;
            __builtin_prefetch(src[r] + PACK_PREFETCH);
          }
          simd::transpose(src, at(rel, i), posStride);
        }
      for (; i < M; ++i) {
        const float* in = dy + ((long)n * L::K + rows[i]) * PQ + b0;
        float* o = at(rel, i);
        for (long pq = 0; pq < np; ++pq) o[pq * posStride] = in[pq];
      }
    }
  }

  // xg[hw - hw0][MT] of channel group g for packed-plane positions [hw0, hw1) of image n: the group's kept
  // channels interleaved, channels past KC zero. Runs of 64 positions keep the written lines in L1.
  static void packXg(const float* x, const int32_t* ci, int KC, int n, int g, long hw0, long hw1, float* out) {
    long b0 = hw0;
    if constexpr (!GRID && MT <= VW && VW > 1) {
      // VW positions of the group's channel planes (a zero row for each channel past the group or
      // KC) are one register transpose; each position keeps the first MT of its VW values. The
      // scalar interleave waited on each load: a fifth of a 16-channel 3x3 backward-weights, a
      // quarter of a 1x1 one with 512 kept channels.
      alignas(64) static const float zeros[VW] = {};
      alignas(64) float block[VW][VW];
      const float* src[VW];
      for (; b0 + VW <= hw1; b0 += VW) {
        for (int m = 0; m < VW; ++m) {
          const int c = g * MT + m;
          src[m] = m < MT && c < KC ? x + ((long)n * L::C + ci[c]) * HW + b0 : zeros;
          __builtin_prefetch(src[m] + PACK_PREFETCH);
        }
        float* o = out + (b0 - hw0) * MT;
        if constexpr (MT == VW) {
          simd::transpose(src, o, MT);
        } else {
          simd::transpose(src, &block[0][0], VW);
          for (int j = 0; j < VW; ++j) std::memcpy(o + j * MT, block[j], sizeof(float) * MT);
        }
      }
    }
    if constexpr (GRID && L::PH == 0 && L::PW == 0) return packGridRuns(x, ci, KC, n, g, hw0, hw1, out);
    for (; b0 < hw1; b0 += 64) {
      const long nhw = std::min(64L, hw1 - b0);
      for (int m = 0; m < MT; ++m) {
        const int c = g * MT + m;
        float* o = out + (b0 - hw0) * MT + m;
        if (c >= KC) {
          for (long j = 0; j < nhw; ++j) o[j * MT] = 0.f;
          continue;
        }
        const float* plane = x + ((long)n * L::C + ci[c]) * HW;
        if constexpr (GRID) {  // padded: one run per grid row, x row h = p*SH - PH, columns q*SW - PW
          for (long j = 0; j < nhw;) {
            const int p = (int)((b0 + j) / XW), q0 = (int)((b0 + j) % XW);
            const int len = (int)std::min<long>(nhw - j, XW - q0), h = p * L::SH - L::PH;
            const float* row = plane + (long)std::max(0, std::min(h, L::H - 1)) * L::W;
            const bool rowOk = (unsigned)h < (unsigned)L::H;
            for (int k = 0; k < len; ++k) {
              const int w = (q0 + k) * L::SW - L::PW;
              const bool ok = rowOk && (unsigned)w < (unsigned)L::W;
              // Unconditional load then select (the conditional-load form is what GCC 12 -O3 miscompiled).
              const float v = row[ok ? w : 0];
              o[(j + k) * MT] = ok ? v : 0.f;
            }
            j += len;
          }
        } else {
          for (long j = 0; j < nhw; ++j) o[j * MT] = plane[b0 + j];
        }
      }
    }
  }

  // packXg of a strided 1x1 whose grid lies inside x: per run of 64 grid positions, each kept
  // channel's grid rows are first copied into a row of its own (copyEvens at stride 2), then VW
  // positions x VW channels at a time go through the register transpose into the interleaved
  // group. Copying each element straight to its interleaved slot (a strided load and a store MT
  // floats apart per element) took a sixth of a 1024 -> 2048 /2 backward-weights on 14x14.
  static void packGridRuns(const float* x, const int32_t* ci, int KC, int n, int g, long hw0, long hw1, float* out) {
    constexpr int RUN = 64;
    alignas(64) static const float zeros[RUN + VW] = {};
    alignas(64) float rowsOf[MT][RUN + VW];  // a run's last transpose reads up to VW floats past it: zeros
    alignas(64) float block[VW][VW];
    for (long b0 = hw0; b0 < hw1; b0 += RUN) {
      const int nhw = (int)std::min<long>(RUN, hw1 - b0);
      for (int m = 0; m < MT; ++m) {
        const int c = g * MT + m;
        std::fill(rowsOf[m] + (c < KC ? nhw : 0), rowsOf[m] + nhw + VW, 0.f);  // channels past KC: all zeros
        if (c >= KC) continue;
        const float* plane = x + ((long)n * L::C + ci[c]) * HW;
        for (int j = 0; j < nhw;) {  // one run per grid row: x row p*SH, columns q*SW
          const int p = (int)((b0 + j) / XW), q0 = (int)((b0 + j) % XW), len = std::min(nhw - j, XW - q0);
          const float* row = plane + (long)p * L::SH * L::W + (long)q0 * L::SW;
          if (c + GRID_PREFETCH < KC) {  // the prefetchers see one short run per plane: ask ahead
            const float* ahead = row + (ci[c + GRID_PREFETCH] - ci[c]) * HW;
            for (long k = 0; k < (long)len * L::SW; k += 16) __builtin_prefetch(ahead + k);
          }
          if constexpr (L::SW == 2)
            simd::copyEvens(rowsOf[m] + j, row, len);
          else
            for (int k = 0; k < len; ++k) rowsOf[m][j + k] = row[(long)k * L::SW];
          j += len;
        }
      }
      float* o = out + (b0 - hw0) * MT;
      for (int j = 0; j < nhw; j += VW) {
        const int np = std::min(VW, nhw - j);
        for (int m0 = 0; m0 < MT; m0 += VW) {
          const float* src[VW];
          for (int r = 0; r < VW; ++r) src[r] = m0 + r < MT ? rowsOf[m0 + r] + j : zeros;
          simd::transpose(src, &block[0][0], VW);
          const size_t width = sizeof(float) * std::min(VW, MT - m0);
          for (int k = 0; k < np; ++k) std::memcpy(o + (long)(j + k) * MT + m0, block[k], width);
        }
      }
    }
  }

  // Block blk of the rows blocking: images [n0, n0 + nb), output rows [p0, p1), and the input rows
  // [h0, h1) their taps read (empty when every tap reads padding only).
  struct RowBlock {
    int n0, nb, p0, p1, h0, h1;
  };
  template <int ROWS, int IMGS>
  static RowBlock rowBlock(long blk, int N) {
    constexpr int ROW_BLOCKS = (L::P + ROWS - 1) / ROWS;
    const int n0 = (int)(blk / ROW_BLOCKS) * IMGS, p0 = (int)(blk % ROW_BLOCKS) * ROWS, p1 = std::min(L::P, p0 + ROWS);
    return {n0, std::min(IMGS, N - n0), p0, p1, std::max(0, p0 * XSH - XPH),
            std::min(XH, (p1 - 1) * XSH - XPH + (L::R - 1) * L::DH + 1)};
  }

  // Rows blocking: blocks of IMGS images x ROWS output rows (IMGS > 1 only for whole images), each
  // packed and reduced by one thread into its private partial sums part[panel][group][tap][MT][NR];
  // the partials of all threads are summed into dw at the end.
  template <int ROWS, int IMGS>
  static void runRows(const float* dy, const float* x, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC,
                      Workspace& ws, int threads) {
    const int panels = (M + NR - 1) / NR, groups = (KC + MT - 1) / MT;
    if (panels == 0 || groups == 0) return;
    const long Mpad = (long)panels * NR, KCpad = (long)groups * MT;
    constexpr int ROW_BLOCKS = (L::P + ROWS - 1) / ROWS;
    constexpr int IN_ROWS = std::min(XH, (ROWS - 1) * XSH + (L::R - 1) * L::DH + 1);  // packed x rows a block reads
    const long BLOCKS = (long)(ws.n + IMGS - 1) / IMGS * ROW_BLOCKS;
    static_assert(IMGS == 1 || ROWS >= L::P, "blocks of several images hold whole images");
    // dyT[panel][image][row][q][NR] and xg[group][image][row][w][MT] of one block
    const long dyImg = (long)ROWS * L::Q * NR, xImg = (long)IN_ROWS * XW * MT;
    const long partSize = Mpad * KCpad * RS, dyPanel = IMGS * dyImg, dySize = panels * dyPanel, xGroup = IMGS * xImg;
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) ws.bBlock[t].get((size_t)(partSize + dySize + groups * xGroup));
    parallel(threads, [&] {
      const int team = omp_get_num_threads();
      float* part = ws.bBlock[omp_get_thread_num()].data;
      float* dyT = part + partSize;
      float* xg = dyT + dySize;
      std::memset(part, 0, sizeof(float) * partSize);
#pragma omp for schedule(dynamic, 1)
      for (long blk = 0; blk < BLOCKS; ++blk) {
        const auto [n0, nb, p0, p1, h0, h1] = rowBlock<ROWS, IMGS>(blk, ws.n);
        if (h1 <= h0) continue;  // every tap of these rows reads padding only
        for (int b = 0; b < nb; ++b) {
          packDyT(dy, rows, M, panels, dyPanel, NR, n0 + b, (long)p0 * L::Q, (long)p1 * L::Q, dyT + b * dyImg);
          for (int g = 0; g < groups; ++g)
            packXg(x, ci, KC, n0 + b, g, (long)h0 * XW, (long)h1 * XW, xg + g * xGroup + b * xImg);
        }
        for (int pm = 0; pm < panels; ++pm)
          for (int g = 0; g < groups; ++g)
            for (int tap = 0; tap < RS; ++tap) {
              float* p = part + (((long)pm * groups + g) * RS + tap) * MT * NR;
              simd::vec acc[MT][NV];
              loadTile(p, acc);
              tapTile(tap, nb, p0, p1, p0, h0, dyT + pm * dyPanel, dyImg, NR, xg + g * xGroup, xImg, acc);
              storeTile(p, acc);
            }
      }
      // (the loop's barrier: every partial is complete) Sum them into dw, one (panel, group) per item.
#pragma omp for schedule(static)
      for (long item = 0; item < (long)panels * groups; ++item) {
        const int pm = (int)(item / groups), g = (int)(item % groups);
        const float* sum = sumOverTeam(ws, team, item * RS * MT * NR, (long)RS * MT * NR);
        for (int i = 0; i < NR && pm * NR + i < M; ++i)  // rows outer: dw rows are far apart (pages)
          for (int m = 0; m < MT && g * MT + m < KC; ++m) {
            float* out = dw + ((long)rows[pm * NR + i] * L::C + ci[g * MT + m]) * RS;
            for (int tap = 0; tap < RS; ++tap) out[tap] = sum[(tap * MT + m) * NR + i];
          }
      }
    });
  }

  // Images blocking: blocks of images (packing the whole batch up front took buffers of the
  // batch's size: 32 MB for one 512->2048 1x1 on 7x7 planes at batch 64). Items are (panel,
  // group, chunk of taps): few enough to keep each item's partial sums together, enough to feed
  // every thread. Each thread owns one run of them for the whole call and packs, block by block,
  // only the dy panels and x groups its run reads, into buffers of its own: no thread reads what
  // another wrote until dw. With the packs shared, two threads on different CCDs (separate L3s,
  // as a VM's vCPUs are now and then) moved every packed line between them twice a call (read,
  // then written again by the next call): a 512->2048 1x1 on 7x7 at batch 8 ran 1.55x slower
  // in those phases, one thread not at all. A run follows the larger operand's axis (panels when
  // dy is larger than packed x), so each thread packs its share of it and all of the other.
  static void runImages(const float* dy, const float* x, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC,
                        int imagesPerBlock, Workspace& ws, int threads) {
    const int panels = (M + NR - 1) / NR, groups = (KC + MT - 1) / MT;
    if (panels == 0 || groups == 0) return;
    const int IB = std::min(imagesPerBlock, ws.n);
    const long dyPanel = IB * PQ * NR;  // a thread's dyT[panel][image][p][q][NR]; xg[image][group][XH][XW][MT]
    const int tapChunks = std::min<long>(RS, std::max<long>(1, (4L * threads + panels * groups - 1) / (panels * groups)));
    const int tapsPer = (RS + tapChunks - 1) / tapChunks;
    const long items = (long)panels * groups * tapChunks, tile = (long)MT * NR;
    // Partial sums part[panel][group][chunk][tap][MT][NR] accumulate over image blocks; then
    // each thread scatters its own items into dw (or writeRows writes whole rows).
    float* part = ws.aPack.get((size_t)items * tapsPer * tile);
    const bool byPanels = (long)M * PQ >= (long)KC * XHW;
    auto decode = [&](long k, int& pm, int& g, int& chunk) {  // owners' order -> item
      chunk = (int)(k % tapChunks);
      const long u = k / tapChunks;
      pm = (int)(byPanels ? u / groups : u % panels);
      g = (int)(byPanels ? u % groups : u / panels);
    };
    struct Run {
      long k0, k1;         // items [k0, k1) of the owners' order
      int pa, pb, ga, gb;  // the panels and groups they read
    };
    auto runOf = [&](int owner) {
      Run r{items * owner / threads, items * (owner + 1) / threads, 0, 0, 0, 0};
      if (r.k0 >= r.k1) return r;
      int p0, g0, p1, g1, c;
      decode(r.k0, p0, g0, c);
      decode(r.k1 - 1, p1, g1, c);
      const bool one = byPanels ? p0 == p1 : g0 == g1;  // within one unit of its axis: a range of the other
      r.pa = byPanels || one ? p0 : 0, r.pb = byPanels || one ? p1 + 1 : panels;
      r.ga = !byPanels || one ? g0 : 0, r.gb = !byPanels || one ? g1 + 1 : groups;
      return r;
    };
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) {  // allocate outside the parallel region: no throw inside it
      const Run r = runOf(t);
      if (r.k0 < r.k1) ws.bBlock[t].get((size_t)(r.pb - r.pa) * dyPanel + (size_t)IB * (r.gb - r.ga) * XGROUP);
    }
    parallel(threads, [&] {
      for (int owner = omp_get_thread_num(); owner < threads; owner += omp_get_num_threads()) {
        const Run r = runOf(owner);
        if (r.k0 >= r.k1) continue;
        float* dyT = ws.bBlock[owner].data;
        float* xg = dyT + (r.pb - r.pa) * dyPanel;
        const long xImg = (long)(r.gb - r.ga) * XGROUP;
        const int m0 = r.pa * NR, m1 = std::min(M, r.pb * NR);
        for (int n0 = 0; n0 < ws.n; n0 += IB) {
          const int nb = std::min(ws.n - n0, IB);
          for (int b = 0; b < nb; ++b) {
            packDyT(dy, rows + m0, m1 - m0, r.pb - r.pa, dyPanel, NR, n0 + b, 0, PQ, dyT + (long)b * PQ * NR);
            for (int g = r.ga; g < r.gb; ++g) packXg(x, ci, KC, n0 + b, g, 0, XHW, xg + b * xImg + (g - r.ga) * XGROUP);
          }
          for (long k = r.k0; k < r.k1; ++k) {
            int pm, g, chunk;
            decode(k, pm, g, chunk);
            float* buf = part + (((long)pm * groups + g) * tapChunks + chunk) * tapsPer * tile;
            const int t0 = chunk * tapsPer, t1 = std::min(RS, t0 + tapsPer);
            for (int tap = t0; tap < t1; ++tap) {
              simd::vec acc[MT][NV];
              zeroTile(acc);
              tapTile(tap, nb, 0, L::P, 0, 0, dyT + (pm - r.pa) * dyPanel, PQ * NR, NR, xg + (g - r.ga) * XGROUP, xImg, acc);
              float* p = buf + (tap - t0) * tile;
              for (int m = 0; m < MT; ++m)
                for (int v = 0; v < NV; ++v)
                  simd::storeu(p + m * NR + v * VW, n0 == 0 ? acc[m][v] : simd::add(simd::loadu(p + m * NR + v * VW), acc[m][v]));
            }
          }
        }
        if constexpr (!WHOLE_ROWS)
          for (long k = r.k0; k < r.k1; ++k) {
            int pm, g, chunk;
            decode(k, pm, g, chunk);
            const int t0 = chunk * tapsPer;
            scatter(part + (((long)pm * groups + g) * tapChunks + chunk) * tapsPer * tile, dw, rows, M, ci, KC, pm, g, t0,
                    std::min(RS, t0 + tapsPer));
          }
      }
    });
    if constexpr (WHOLE_ROWS) writeRows(part, groups, dw, rows, M, ci, KC, ws, threads);
  }

  // A 1x1's sums, part[panel][group][MT][NR], into dw VW gradient rows at a time, whole:
  // register transposes put each row's values in kept-channel order, then 16 floats of the row
  // per masked expand and store, pruned channels' zeros included (the caller zeroes only the
  // other rows). Against scattering MT values per (row, group) into rows zeroed beforehand
  // (bench/ab.ts, Zen 4, d=0.5): 256 -> 256 @2x2 b1 1.49x (18 -> 12 µs), 1024 -> 1024 @7 b1
  // 1.09x, at batch 4-8 on 7x7 0.99-1.02x; stride 2: 1024 -> 2048 @14 b8 1.13x, b1 1.35x,
  // 512 -> 1024 @28 b1 1.13x (AVX2: 1.07-1.10x, 1.30-1.49x).
  static constexpr bool WHOLE_ROWS = RS == 1;
  static void writeRows(const float* part, int groups, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC,
                        Workspace& ws, int threads) {
    constexpr int SEGMENTS = (L::C + 15) / 16;
    unsigned mask[SEGMENTS] = {};
    segmentMasks(ci, KC, 0, mask);
    const long KCpad = (long)groups * MT, PITCH = KCpad + 16;  // expand16 reads 16 past a row's last value
    const int blocks = (M + VW - 1) / VW;  // VW gradient rows at a time (NR = NV * VW: within one panel)
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) ws.lanePack[t].get((size_t)VW * PITCH);
    parallel(threads, [&] {
      float* vals = ws.lanePack[omp_get_thread_num()].data;  // vals[row][kept channel]
#pragma omp for schedule(static)
      for (int b = 0; b < blocks; ++b) {
        const int r0 = b * VW, nr = std::min(VW, M - r0);
        // part[panel][j][NR] for kept channel j (group j / MT, channel j % MT): VW rows x VW
        // channels per register transpose.
        const float* sums = part + (long)(r0 / NR) * KCpad * NR + r0 % NR;
        long j = 0;
        for (; j + VW <= KC; j += VW) {
          const float* src[VW];
          for (int u = 0; u < VW; ++u) src[u] = sums + (j + u) * NR;
          simd::transpose(src, vals + j, PITCH);
        }
        for (; j < KC; ++j)
          for (int u = 0; u < nr; ++u) vals[u * PITCH + j] = sums[j * NR + u];
        for (int u = 0; u < nr; ++u) {
          float* out = dw + (long)rows[r0 + u] * L::C;
          const float* v = vals + u * PITCH;
          int pos = 0;
          for (int q = 0; q < SEGMENTS; ++q)
            pos += simd::expand16(out + 16 * q, v + pos, mask[q], std::min(16, L::C - 16 * q));
        }
      }
    });
  }

  // Write one item's sums to dw[row][channel][tap]: taps innermost, so each (row, channel) is one
  // run, and rows outer: consecutive rows of dw are C*RS floats apart (a page at C = 512, 1x1), so
  // walking them innermost missed the TLB on every store (a third of a 1x1 layer's pass).
  static void scatter(const float* buf, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC, int pm, int g,
                      int t0, int t1) {
    const int mEnd = std::min(MT, KC - g * MT);
    for (int i = 0; i < NR && pm * NR + i < M; ++i) {
      float* row = dw + (long)rows[pm * NR + i] * L::C * RS;
      if constexpr (RS == 1) {  // 1x1: one entry per (row, channel), no tap loop to set up
        for (int m = 0; m < mEnd; ++m) row[ci[g * MT + m]] = buf[m * NR + i];
      } else {
        for (int m = 0; m < mEnd; ++m) {
          float* out = row + (long)ci[g * MT + m] * RS;
          for (int tap = t0; tap < t1; ++tap) out[tap] = buf[(tap - t0) * MT * NR + m * NR + i];
        }
      }
    }
  }
};

// Backward-weights for layers with few kept input channels (first layers: C = 1 or 3), rows
// blocking as in DirectWeights::runRows: a tile is MT consecutive column taps s of one (channel,
// kernel row) x NR filters, so even one channel fills a wide tile. The MT values a step broadcasts
// are neighbours (DW apart) in one zero-padded x row; taps that read padding multiply zeros.
template <int MT, int NV>
struct DirectWeightsTaps {
  static constexpr int VW = simd::VW, NR = NV * VW, RS = L::R * L::S;
  static constexpr int SG = (L::S + MT - 1) / MT;                             // tap groups per kernel row
  static constexpr int XW = (L::Q - 1) * L::SW + (SG * MT - 1) * L::DW + 1;   // packed row: every tile reads inside it
  using Rows = DirectWeights<1, NV>;                                          // its dy packing and ceilDiv

  template <int ROWS, int IMGS>
  static void runRows(const float* dy, const float* x, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC,
                      Workspace& ws, int threads) {
    static_assert(IMGS == 1, "tap tiles run one image per block");
    const int panels = (M + NR - 1) / NR;
    if (panels == 0 || KC == 0) return;
    const long Mpad = (long)panels * NR;
    constexpr int ROW_BLOCKS = (L::P + ROWS - 1) / ROWS;
    constexpr int IN_ROWS = std::min(L::H, (ROWS - 1) * L::SH + (L::R - 1) * L::DH + 1);
    const long BLOCKS = (long)ws.n * ROW_BLOCKS;
    constexpr long TILE = (long)MT * NR;
    // part[panel][channel][r][tap group][MT][NR]
    const long partSize = Mpad * KC * L::R * SG * MT, dySize = (long)ROWS * L::Q * Mpad, xSize = (long)KC * IN_ROWS * XW;
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) ws.bBlock[t].get((size_t)(partSize + dySize + xSize));
    parallel(threads, [&] {
      const int team = omp_get_num_threads();
      float* part = ws.bBlock[omp_get_thread_num()].data;
      float* dyT = part + partSize;
      float* xp = dyT + dySize;
      std::memset(part, 0, sizeof(float) * partSize);
#pragma omp for schedule(dynamic, 1)
      for (long blk = 0; blk < BLOCKS; ++blk) {
        const auto [n, nb, p0, p1, h0, h1] = Rows::template rowBlock<ROWS, 1>(blk, ws.n);
        (void)nb;
        if (h1 <= h0) continue;
        Rows::packDyT(dy, rows, M, panels, NR, Mpad, n, (long)p0 * L::Q, (long)p1 * L::Q, dyT);
        // xp[c][h - h0][PW + w]: PW zero columns on the left, zeros after the row.
        constexpr int COPY = std::max(0, std::min(L::W, XW - L::PW));
        for (int c = 0; c < KC; ++c)
          for (int h = h0; h < h1; ++h) {
            float* o = xp + ((long)c * IN_ROWS + (h - h0)) * XW;
            std::fill(o, o + std::min(L::PW, XW), 0.f);
            std::memcpy(o + std::min(L::PW, XW), x + (((long)n * L::C + ci[c]) * L::H + h) * L::W, sizeof(float) * COPY);
            std::fill(o + std::min(L::PW, XW) + COPY, o + XW, 0.f);
          }
        for (int pm = 0; pm < panels; ++pm)
          for (int c = 0; c < KC; ++c)
            for (int r = 0; r < L::R; ++r) {
              const int plo = std::max(p0, Rows::ceilDiv(L::PH - r * L::DH, L::SH));
              const int phi = std::min(p1, Rows::ceilDiv(L::H + L::PH - r * L::DH, L::SH));
              for (int sg = 0; sg < SG; ++sg) {
                float* pt = part + ((((long)pm * KC + c) * L::R + r) * SG + sg) * TILE;
                simd::vec acc[MT][NV];
                loadTile(pt, acc);
                for (int p = plo; p < phi; ++p) {
                  const float* d = dyT + (long)(p - p0) * L::Q * Mpad + (long)pm * NR;
                  // Padded column of (q, s) is q*SW + s*DW: the left padding PW cancels out.
                  const float* xr = xp + ((long)c * IN_ROWS + (p * L::SH - L::PH + r * L::DH - h0)) * XW + sg * MT * L::DW;
                  for (int q = 0; q < L::Q; ++q, d += Mpad, xr += L::SW) {
                    simd::vec dv[NV];
#pragma GCC unroll 8
                    for (int v = 0; v < NV; ++v) dv[v] = simd::loadu(d + v * VW);
#pragma GCC unroll 16
                    for (int m = 0; m < MT; ++m) {
                      const simd::vec b = simd::broadcast(xr[m * L::DW]);
#pragma GCC unroll 8
                      for (int v = 0; v < NV; ++v) acc[m][v] = simd::fmadd(b, dv[v], acc[m][v]);
                    }
                  }
                }
                storeTile(pt, acc);
              }
            }
      }
      // Sum every thread's partials into dw, one (panel, channel) per item.
#pragma omp for schedule(static)
      for (long item = 0; item < (long)panels * KC; ++item) {
        const int pm = (int)(item / KC), c = (int)(item % KC);
        const float* sum = sumOverTeam(ws, team, item * L::R * SG * TILE, (long)L::R * SG * TILE);
        for (int i = 0; i < NR && pm * NR + i < M; ++i) {
          float* out = dw + ((long)rows[pm * NR + i] * L::C + ci[c]) * RS;
          for (int r = 0; r < L::R; ++r)
            for (int s = 0; s < L::S; ++s) out[r * L::S + s] = sum[((long)r * SG + s / MT) * TILE + (s % MT) * NR + i];
        }
      }
    });
  }
};
