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
static inline void bcastKernel(int KC, long wChan, long xChan, int nT, const int32_t* __restrict wOff,
                               const int32_t* __restrict xOff, const float* __restrict W, const float* __restrict X,
                               simd::vec (&acc)[MQ][NV]) {
#pragma GCC unroll 16
  for (int m = 0; m < MQ; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[m][v] = simd::zero();
  for (int c = 0; c < KC; ++c, W += wChan, X += xChan) {
    for (int t = 0; t < nT; ++t) {
      const float* w = W + wOff[t];
      const float* x = X + xOff[t];
      simd::vec wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = simd::loadu(w + v * simd::VW);
#pragma GCC unroll 16
      for (int m = 0; m < MQ; ++m) {
        const simd::vec b = simd::broadcast(x[m * XSTEP]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[m][v] = simd::fmadd(b, wv[v], acc[m][v]);
      }
    }
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

// Forward / backward-data. V (a view) says, per destination row a, which row taps are valid and
// their source row; per column phase ph, which column taps are valid and their source column.
// Destination columns of phase ph are b = ph + j*BSTEP. A work item packs the source rows it
// needs (kept channels only, zero-padded columns) for a block of images and destination rows.
// Tiles hold MQ positions: consecutive columns of one row (BATCH false), or MQ images at one
// position (BATCH true: tiny outputs, where every position has its own exact tap list).
template <class V, int MQ, int NV, bool BATCH, int ROWS_PER_BLOCK>
struct DirectPass {
  static constexpr int VW = simd::VW, NR = NV * VW, RS = L::R * L::S;
  static constexpr long DST_PLANE = (long)V::DST_A * V::DST_B, DST_IMG = DST_PLANE * V::DST_C;
  static constexpr int LPAD = directLeftPad<V>(), BW = directRowWidth<V, BATCH ? 1 : MQ>();
  static constexpr int NB = BATCH ? MQ : 1;  // images per item
  static constexpr int ROW_BLOCKS = (V::DST_A + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK;
  static constexpr int MAX_ROWS = directMaxRows<V, ROWS_PER_BLOCK>();
  static constexpr long IMG = (long)MAX_ROWS * BW;           // one image of one channel in the pack
  static constexpr long XSTEP = BATCH ? IMG : V::XSTEP;      // source distance between tile positions

  // Weights of kept rows x kept reduction channels, NR rows innermost: W[panel][c][tap][NR].
  static const float* packW(const float* w, const int32_t* mIdx, int M, const int32_t* kIdx, int KC, Workspace& ws,
                            int threads) {
    const int panels = (M + NR - 1) / NR;
    float* out = ws.aPack.get((size_t)std::max(panels, 1) * KC * RS * NR + 1);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int pm = 0; pm < panels; ++pm)
      for (int c = 0; c < KC; ++c)
        for (int tap = 0; tap < RS; ++tap) {
          float* o = out + (((long)pm * KC + c) * RS + tap) * NR;
          for (int i = 0; i < NR; ++i) {
            const int m = pm * NR + i;
            o[i] = m < M ? V::weight(w, mIdx[m], kIdx[c], tap / L::S, tap % L::S) : 0.f;
          }
        }
    return out;
  }

  // Source rows [lo, hi) of images n0.. n0+NB (zeros past the batch) into pack[c][nb][row][BW].
  static void packSrc(const float* src, const int32_t* kIdx, int KC, int n0, int lo, int hi, float* pack) {
    for (int c = 0; c < KC; ++c)
      for (int nb = 0; nb < NB; ++nb) {
        float* o = pack + ((long)c * NB + nb) * IMG;
        const int n = n0 + nb;
        if (n >= L::N) {
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
    const float* Wp = packW(w, mIdx, M, kIdx, KC, ws, threads);
    constexpr int PH_ITEMS = BATCH ? 1 : V::PHASES;  // batch items cover all phases
    const long baseItems = (long)((L::N + NB - 1) / NB) * ROW_BLOCKS * PH_ITEMS;
    const int perItem = panelsPerItem(panels, baseItems, threads);
    const int chunks = (panels + perItem - 1) / perItem;
    const long items = baseItems * chunks;
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) {  // allocate outside the parallel region: no throw inside it
      ws.bBlock[t].get((size_t)std::max(KC, 1) * NB * IMG);
      ws.aOff[t].get(RS);
      ws.bOff[t].get(RS);
    }
#pragma omp parallel num_threads(threads)
    {
      const int tid = omp_get_thread_num();
      float* pack = ws.bBlock[tid].data;
      int32_t* wOff = ws.aOff[tid].v.data();
      int32_t* xOff = ws.bOff[tid].v.data();
#pragma omp for schedule(dynamic, 1)
      for (long item = 0; item < items; ++item) {
        const int chunk = (int)(item % chunks);
        long rest = item / chunks;
        const int phItem = (int)(rest % PH_ITEMS);
        rest /= PH_ITEMS;
        const int a0 = (int)(rest % ROW_BLOCKS) * ROWS_PER_BLOCK, a1 = std::min(V::DST_A, a0 + ROWS_PER_BLOCK);
        const int n0 = (int)(rest / ROW_BLOCKS) * NB;
        int lo, hi;
        directRowSpan<V>(a0, a1, lo, hi);
        if (lo < hi) packSrc(src, kIdx, KC, n0, lo, hi, pack);
        // Panels outer: one panel of packed weights stays in L2 while every position of the item uses it.
        for (int pm = chunk * perItem; pm < std::min(panels, (chunk + 1) * perItem); ++pm) {
          const float* Wpanel = Wp + (long)pm * KC * RS * NR;
          for (int a = a0; a < a1; ++a)
            for (int ph = BATCH ? 0 : phItem; ph < (BATCH ? V::PHASES : phItem + 1); ++ph) {
              const int count = V::count(ph);
              // BATCH: one tile per column j with its exact taps; else tiles of MQ columns that
              // share the taps of the phase.
              int nT = BATCH ? 0 : tapTable(a, ph, 0, lo, wOff, xOff);
              for (int j0 = 0; j0 < count; j0 += BATCH ? 1 : MQ) {
                if (BATCH) nT = tapTable(a, ph, j0, lo, wOff, xOff);
                simd::vec acc[MQ][NV];
                bcastKernel<MQ, NV, XSTEP>(KC, (long)RS * NR, NB * IMG, nT, wOff, xOff, Wpanel,
                                           pack + (BATCH ? 0 : (long)j0 * V::XSTEP), acc);
                store(acc, dst, bias, mIdx, M, pm, n0, a, ph, j0, count);
              }
            }
        }
      }
    }
  }

  // Offsets of the valid taps for destination row a, phase ph, column j, relative to a channel
  // (column taps into padding are dropped only when checked per column, i.e. BATCH).
  static int tapTable(int a, int ph, int j, int lo, int32_t* wOff, int32_t* xOff) {
    int nT = 0;
    for (int r = 0; r < L::R; ++r) {
      int row;
      if (!V::rowTap(a, r, row)) continue;
      for (int s = 0; s < L::S; ++s) {
        int col;
        if (!V::colTap(ph, j, s, col)) continue;
        if (BATCH && (col < 0 || col >= V::SRC_B)) continue;
        wOff[nT] = (r * L::S + s) * NR;
        xOff[nT++] = (int32_t)((row - lo) * BW + LPAD + col);
      }
    }
    return nT;
  }

  // Lane l of acc[m][v] is destination channel mIdx[pm*NR + v*VW + l]; position m is column
  // ph + (j0+m)*BSTEP of image n0 (or image n0+m at column ph + j0*BSTEP when BATCH).
  static inline void store(const simd::vec (&acc)[MQ][NV], float* dst, const float* bias, const int32_t* mIdx, int M,
                           int pm, int n0, int a, int ph, int j0, int count) {
    alignas(64) float lanes[MQ][NR];
#pragma GCC unroll 16
    for (int m = 0; m < MQ; ++m)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) simd::spill(&lanes[m][v * VW], acc[m][v]);
    const int rows = std::min(NR, M - pm * NR);
    const int cols = BATCH ? std::min(MQ, L::N - n0) : std::min(MQ, count - j0);
    const long step = BATCH ? DST_IMG : (long)V::BSTEP;
    float* base = dst + (long)n0 * DST_IMG + (long)a * V::DST_B + ph + (long)j0 * V::BSTEP;
    for (int i = 0; i < rows; ++i) {
      const int ch = mIdx[pm * NR + i];
      const float b = bias ? bias[ch] : 0.f;
      float* out = base + ch * DST_PLANE;
      for (int m = 0; m < cols; ++m) out[m * step] = lanes[m][i] + b;
    }
  }
};

// Backward-weights, tap-major: for one tap (r,s), acc[m][v] += broadcast(x of kept channel m) *
// dy[v-th vector of kept filters], summed over the output positions where the tap reads real
// input (padding positions are skipped by bounds). Reduction blocked over images so the packed
// dy and x of a block stay in L2; partial sums live in a buffer between blocks.
// (dy is indexed from the start of the batch, x likewise: tapTile takes absolute image numbers.)
template <int MT, int NV>
struct DirectWeights {
  static constexpr int VW = simd::VW, NR = NV * VW, RS = L::R * L::S;
  static constexpr long HW = (long)L::H * L::W, PQ = (long)L::P * L::Q;
  // Packed x is channel-interleaved, xg[n][group][H][W][MT]: the MT values a step broadcasts are
  // adjacent, so a step reads one x stream instead of MT (512-512 @2x2: 8.0 -> 4.8 ms; within
  // noise on large outputs).
  static constexpr long XGROUP = HW * MT;

  // One tap's tile over images [n0, n1): the positions where tap (r,s) reads real input form a
  // rectangle p in [plo, phi), q in [qlo, qhi), walked with plain pointer steps.
  static inline void tapTile(int tap, int n0, int n1, const float* dyT, long Mpad, const float* xg, long KCpad,
                             simd::vec (&acc)[MT][NV]) {
    const int r = tap / L::S, s = tap % L::S;
    const int plo = std::max(0, ceilDiv(L::PH - r * L::DH, L::SH));
    const int phi = std::min(L::P, ceilDiv(L::H + L::PH - r * L::DH, L::SH));
    const int qlo = std::max(0, ceilDiv(L::PW - s * L::DW, L::SW));
    const int qhi = std::min(L::Q, ceilDiv(L::W + L::PW - s * L::DW, L::SW));
#pragma GCC unroll 16
    for (int m = 0; m < MT; ++m)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[m][v] = simd::zero();
    const long dyImg = PQ * Mpad, xImg = KCpad * HW;
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
    auto dyAt = [&](int n, int p, int q) { return dyT + n * dyImg + ((long)p * L::Q + q) * Mpad; };
    auto xAt = [&](int n, int p, int q) {
      return xg + n * xImg + ((long)(p * L::SH - L::PH + r * L::DH) * L::W + (q * L::SW - L::PW + s * L::DW)) * MT;
    };
    if constexpr (L::Q >= 8) {  // long rows: the inner loop walks q
      for (int n = n0; n < n1; ++n)
        for (int p = plo; p < phi; ++p) {
          const float* d = dyAt(n, p, qlo);
          const float* xr = xAt(n, p, qlo);
          for (int q = qlo; q < qhi; ++q, d += Mpad, xr += L::SW * MT) step(d, xr);
        }
    } else {  // tiny outputs: the inner loop walks the images instead
      for (int p = plo; p < phi; ++p)
        for (int q = qlo; q < qhi; ++q) {
          const float* d = dyAt(n0, p, q);
          const float* xr = xAt(n0, p, q);
          for (int n = n0; n < n1; ++n, d += dyImg, xr += xImg) step(d, xr);
        }
    }
  }

  static constexpr int ceilDiv(int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

  static void run(const float* dy, const float* x, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC,
                  int imagesPerBlock, Workspace& ws, int threads) {
    const int panels = (M + NR - 1) / NR, groups = (KC + MT - 1) / MT;
    if (panels == 0 || groups == 0) return;
    const long Mpad = (long)panels * NR;
    // dyT[n][p][q][Mpad]: filters innermost so one load gives NR of them.
    float* dyT = ws.dyPack.get((size_t)L::N * PQ * Mpad);
    // Transposed in blocks of 16 positions so the written lines stay in L1 across filters.
    constexpr long PB = 16;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < L::N; ++n)
      for (long pq0 = 0; pq0 < PQ; pq0 += PB) {
        float* o = dyT + ((long)n * PQ + pq0) * Mpad;
        const long np = std::min(PB, PQ - pq0);
        for (long pq = 0; pq < np; ++pq) std::memset(o + pq * Mpad + M, 0, sizeof(float) * (Mpad - M));
        for (int i = 0; i < M; ++i) {
          const float* in = dy + ((long)n * L::K + rows[i]) * PQ + pq0;
          for (long pq = 0; pq < np; ++pq) o[pq * Mpad + i] = in[pq];
        }
      }
    // xg[n][group][H][W][MT]: kept channels interleaved by group, groups padded with zero channels.
    const long KCpad = (long)groups * MT;
    float* xg = ws.xPack.get((size_t)L::N * KCpad * HW);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < L::N; ++n)
      for (int g = 0; g < groups; ++g) {
        float* o = xg + ((long)n * groups + g) * XGROUP;
        for (long hw0 = 0; hw0 < HW; hw0 += 64) {  // blocks of positions keep the written lines in L1
          const long nhw = std::min(64L, HW - hw0);
          for (int m = 0; m < MT; ++m) {
            const int c = g * MT + m;
            float* out = o + hw0 * MT + m;
            if (c >= KC) {
              for (long j = 0; j < nhw; ++j) out[j * MT] = 0.f;
              continue;
            }
            const float* in = x + ((long)n * L::C + ci[c]) * HW + hw0;
            for (long j = 0; j < nhw; ++j) out[j * MT] = in[j];
          }
        }
      }
    // Items are (panel, group, chunk of taps): few enough to keep each item's partial sums
    // together, enough to feed every thread. Partial sums [item][tap][MT][NR] accumulate over
    // image blocks; with a single block they never leave the thread's own buffer.
    const int tapChunks = std::min<long>(RS, std::max<long>(1, (4L * threads + panels * groups - 1) / (panels * groups)));
    const int tapsPer = (RS + tapChunks - 1) / tapChunks;
    const long items = (long)panels * groups * tapChunks, tile = (long)MT * NR;
    const bool single = imagesPerBlock >= L::N;
    float* part = ws.aPack.get((size_t)(single ? threads : items) * tapsPer * tile);
    for (int n0 = 0; n0 < L::N; n0 += imagesPerBlock) {
      const int n1 = std::min(L::N, n0 + imagesPerBlock);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
      for (long item = 0; item < items; ++item) {
        const int g = (int)(item % groups), pm = (int)(item / groups % panels), chunk = (int)(item / groups / panels);
        float* buf = part + (single ? omp_get_thread_num() : item) * tapsPer * tile;
        const int t0 = chunk * tapsPer, t1 = std::min(RS, t0 + tapsPer);
        for (int tap = t0; tap < t1; ++tap) {
          simd::vec acc[MT][NV];
          tapTile(tap, n0, n1, dyT + (long)pm * NR, Mpad, xg + (long)g * XGROUP, KCpad, acc);
          float* p = buf + (tap - t0) * tile;
          for (int m = 0; m < MT; ++m)
            for (int v = 0; v < NV; ++v)
              simd::storeu(p + m * NR + v * VW, n0 == 0 ? acc[m][v] : simd::add(simd::loadu(p + m * NR + v * VW), acc[m][v]));
        }
        if (single) scatter(buf, dw, rows, M, ci, KC, pm, g, t0, t1);
      }
    }
    if (!single) {
#pragma omp parallel for num_threads(threads) schedule(static)
      for (long item = 0; item < items; ++item) {
        const int g = (int)(item % groups), pm = (int)(item / groups % panels), chunk = (int)(item / groups / panels);
        const int t0 = chunk * tapsPer;
        scatter(part + item * tapsPer * tile, dw, rows, M, ci, KC, pm, g, t0, std::min(RS, t0 + tapsPer));
      }
    }
  }

  // Write one item's sums to dw[row][channel][tap]: taps innermost, so each (row, channel) is one run.
  static void scatter(const float* buf, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC, int pm, int g,
                      int t0, int t1) {
    for (int m = 0; m < MT && g * MT + m < KC; ++m)
      for (int i = 0; i < NR && pm * NR + i < M; ++i) {
        float* out = dw + ((long)rows[pm * NR + i] * L::C + ci[g * MT + m]) * RS;
        for (int tap = t0; tap < t1; ++tap) out[tap] = buf[(tap - t0) * MT * NR + m * NR + i];
      }
  }
};
