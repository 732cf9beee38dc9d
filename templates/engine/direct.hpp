// ---- engine/direct: channel-vectorized direct convolution (forward, backward-data, backward-weights) ----
// Vectors run along output channels (filters): acc[m][v] += broadcast(src at position m) * weights[v].
// Spatial positions are the broadcast side, so taps that only read padding are skipped exactly by
// loop bounds (rows) and per-phase tap lists (strided backward-data): the choice for small outputs
// and for many kept channels. Results go to their original channel by index (scalar stores).

// The broadcast microkernel: acc[MQ][NV] = sum over `steps` t of
//   broadcast(X[xOff[t] + m*XSTEP]) * W[wOff[t] + v*VW ... +VW).
template <int MQ, int NV, long XSTEP>
static inline void bcastKernel(int steps, const int32_t* __restrict wOff, const int32_t* __restrict xOff,
                               const float* __restrict W, const float* __restrict X, simd::vec (&acc)[MQ][NV]) {
#pragma GCC unroll 16
  for (int m = 0; m < MQ; ++m)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[m][v] = simd::zero();
  for (int t = 0; t < steps; ++t) {
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
  return (directLeftPad<V>() + hi + 1 + 15) / 16 * 16;
}

// Forward / backward-data. V (a view) says, per destination row a, which row taps are valid and
// their source row; per column phase, which column taps are valid and their source column.
// Destination columns of phase ph are b = ph + j*BSTEP; tile j0..j0+MQ reads source columns
// col(ph, j0, s) + m*XSTEP from rows padded with zeros (LPAD left), so no bounds checks run.
template <class V, int MQ, int NV>
struct DirectPass {
  static constexpr int VW = simd::VW, NR = NV * VW, RS = L::R * L::S;
  static constexpr long DST_PLANE = (long)V::DST_A * V::DST_B, DST_IMG = DST_PLANE * V::DST_C;

  static constexpr int LPAD = directLeftPad<V>(), BW = directRowWidth<V, MQ>();
  static constexpr long SRC_ROWS = (long)V::SRC_A * BW;  // one padded source channel

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

  // Kept source channels into zero-padded rows: S[n][c][SRC_A][BW].
  static const float* packSrc(const float* src, const int32_t* kIdx, int KC, Workspace& ws, int threads) {
    float* out = ws.xPack.get((size_t)L::N * std::max(KC, 1) * SRC_ROWS);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < L::N; ++n)
      for (int c = 0; c < KC; ++c) {
        const float* in = src + ((long)n * V::SRC_C + kIdx[c]) * V::SRC_A * V::SRC_B;
        float* o = out + ((long)n * KC + c) * SRC_ROWS;
        for (int i = 0; i < V::SRC_A; ++i, o += BW, in += V::SRC_B) {
          std::memset(o, 0, sizeof(float) * LPAD);
          std::memcpy(o + LPAD, in, sizeof(float) * V::SRC_B);
          std::memset(o + LPAD + V::SRC_B, 0, sizeof(float) * (BW - LPAD - V::SRC_B));
        }
      }
    return out;
  }

  static void run(const float* src, const float* w, const float* bias, float* dst, const int32_t* mIdx, int M,
                  const int32_t* kIdx, int KC, Workspace& ws, int threads) {
    const int panels = (M + NR - 1) / NR;
    if (panels == 0) return;
    const float* Wp = packW(w, mIdx, M, kIdx, KC, ws, threads);
    const float* Sp = packSrc(src, kIdx, KC, ws, threads);
    const long rowsItems = (long)L::N * V::DST_A * V::PHASES;
    const int perItem = panelsPerItem(panels, rowsItems, threads);
    const int chunks = (panels + perItem - 1) / perItem;
    const long items = rowsItems * chunks;
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) {  // allocate outside the parallel region: no throw inside it
      ws.aOff[t].get((size_t)std::max(KC, 1) * RS);
      ws.bOff[t].get((size_t)std::max(KC, 1) * RS);
    }
#pragma omp parallel num_threads(threads)
    {
      const int tid = omp_get_thread_num();
      int32_t* wOff = ws.aOff[tid].v.data();
      int32_t* xOff = ws.bOff[tid].v.data();
#pragma omp for schedule(dynamic, 1)
      for (long item = 0; item < items; ++item) {
        const int chunk = (int)(item % chunks);
        long rest = item / chunks;
        const int ph = (int)(rest % V::PHASES);
        rest /= V::PHASES;
        const int a = (int)(rest % V::DST_A);
        const int n = (int)(rest / V::DST_A);
        // Taps valid for this destination row and column phase; the rest read only padding.
        int nT = 0;
        int tapW[RS], tapX[RS];
        for (int r = 0; r < L::R; ++r) {
          int row;
          if (!V::rowTap(a, r, row)) continue;
          for (int s = 0; s < L::S; ++s) {
            int col;
            if (!V::colTap(ph, 0, s, col)) continue;
            tapW[nT] = (r * L::S + s) * NR;
            tapX[nT++] = row * BW + LPAD + col;
          }
        }
        const int steps = KC * nT;
        for (int c = 0, k = 0; c < KC; ++c)
          for (int t = 0; t < nT; ++t, ++k) {
            wOff[k] = (int32_t)(c * RS * NR + tapW[t]);
            xOff[k] = (int32_t)(c * SRC_ROWS + tapX[t]);
          }
        const float* S = Sp + (long)n * KC * SRC_ROWS;
        const int count = V::count(ph);
        const int pm1 = std::min(panels, (chunk + 1) * perItem);
        for (int pm = chunk * perItem; pm < pm1; ++pm) {
          const float* Wpanel = Wp + (long)pm * KC * RS * NR;
          for (int j0 = 0; j0 < count; j0 += MQ) {
            simd::vec acc[MQ][NV];
            bcastKernel<MQ, NV, V::XSTEP>(steps, wOff, xOff, Wpanel, S + (long)j0 * V::XSTEP, acc);
            store(acc, dst + n * DST_IMG + (long)a * V::DST_B, bias, mIdx, M, pm, ph, j0, count);
          }
        }
      }
    }
  }

  // Lane l of acc[m][v] is destination channel mIdx[pm*NR + v*VW + l] at column ph + (j0+m)*BSTEP.
  static inline void store(const simd::vec (&acc)[MQ][NV], float* dstRow, const float* bias, const int32_t* mIdx, int M,
                           int pm, int ph, int j0, int count) {
    alignas(64) float lanes[MQ][NR];
#pragma GCC unroll 16
    for (int m = 0; m < MQ; ++m)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) simd::spill(&lanes[m][v * VW], acc[m][v]);
    const int rows = std::min(NR, M - pm * NR), cols = std::min(MQ, count - j0);
    for (int i = 0; i < rows; ++i) {
      const int ch = mIdx[pm * NR + i];
      const float b = bias ? bias[ch] : 0.f;
      float* out = dstRow + ch * DST_PLANE + ph;
      for (int m = 0; m < cols; ++m) out[(long)(j0 + m) * V::BSTEP] = lanes[m][i] + b;
    }
  }
};

// Backward-weights, tap-major: for one tap (r,s), acc[m][v] += broadcast(x of kept channel m) *
// dy[v-th vector of kept filters], summed over the output positions where the tap reads real
// input (padding positions are skipped by bounds). Reduction blocked over images so the packed
// dy and x of a block stay in L2; partial sums live in a buffer between blocks.
template <int MT, int NV>
struct DirectWeights {
  static constexpr int VW = simd::VW, NR = NV * VW, RS = L::R * L::S;
  static constexpr long HW = (long)L::H * L::W, PQ = (long)L::P * L::Q;

  static void run(const float* dy, const float* x, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC,
                  int imagesPerBlock, Workspace& ws, int threads) {
    const int panels = (M + NR - 1) / NR, groups = (KC + MT - 1) / MT;
    if (panels == 0 || groups == 0) return;
    const long Mpad = (long)panels * NR;
    // dyT[n][p][q][Mpad]: filters innermost so one load gives NR of them.
    float* dyT = ws.dyPack.get((size_t)L::N * PQ * Mpad);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int n = 0; n < L::N; ++n) {
      float* o = dyT + (long)n * PQ * Mpad;
      for (long pq = 0; pq < PQ; ++pq) std::memset(o + pq * Mpad + M, 0, sizeof(float) * (Mpad - M));
      for (int i = 0; i < M; ++i) {
        const float* in = dy + ((long)n * L::K + rows[i]) * PQ;
        for (long pq = 0; pq < PQ; ++pq) o[pq * Mpad + i] = in[pq];
      }
    }
    // xg[n][c][H][W]: kept channels contiguous (groups padded with zero channels).
    const long KCpad = (long)groups * MT;
    float* xg = ws.xPack.get((size_t)L::N * KCpad * HW);
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int n = 0; n < L::N; ++n)
      for (long c = 0; c < KCpad; ++c) {
        float* o = xg + ((long)n * KCpad + c) * HW;
        if (c < KC) std::memcpy(o, x + ((long)n * L::C + ci[c]) * HW, sizeof(float) * HW);
        else std::memset(o, 0, sizeof(float) * HW);
      }
    // Partial sums per (tap, panel, group) tile, accumulated across image blocks.
    const long items = (long)RS * panels * groups;
    float* part = ws.aPack.get((size_t)items * MT * NR);
    std::memset(part, 0, sizeof(float) * items * MT * NR);
    const int maxPos = imagesPerBlock * (int)PQ;
    ws.ensureThreads(1);
    int32_t* dOff = ws.aOff[0].get((size_t)RS * maxPos);
    int32_t* xOff = ws.bOff[0].get((size_t)RS * maxPos);
    int nPos[RS];
    for (int n0 = 0; n0 < L::N; n0 += imagesPerBlock) {
      const int n1 = std::min(L::N, n0 + imagesPerBlock);
      for (int tap = 0; tap < RS; ++tap) {  // positions where this tap reads real input
        const int r = tap / L::S, s = tap % L::S;
        int k = 0;
        for (int n = n0; n < n1; ++n)
          for (int p = 0; p < L::P; ++p) {
            const int ih = p * L::SH - L::PH + r * L::DH;
            if ((unsigned)ih >= (unsigned)L::H) continue;
            for (int q = 0; q < L::Q; ++q) {
              const int iw = q * L::SW - L::PW + s * L::DW;
              if ((unsigned)iw >= (unsigned)L::W) continue;
              dOff[tap * maxPos + k] = (int32_t)(((long)(n - n0) * PQ + (long)p * L::Q + q) * Mpad);
              xOff[tap * maxPos + k] = (int32_t)((long)(n - n0) * KCpad * HW + (long)ih * L::W + iw);
              ++k;
            }
          }
        nPos[tap] = k;
      }
      const float* dyBlock = dyT + (long)n0 * PQ * Mpad;
      const float* xBlock = xg + (long)n0 * KCpad * HW;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
      for (long item = 0; item < items; ++item) {
        const int g = (int)(item % groups), pm = (int)(item / groups % panels), tap = (int)(item / groups / panels);
        simd::vec acc[MT][NV];
        bcastKernel<MT, NV, HW>(nPos[tap], dOff + (long)tap * maxPos, xOff + (long)tap * maxPos, dyBlock + (long)pm * NR,
                                xBlock + (long)g * MT * HW, acc);
        float* p = part + item * MT * NR;
        for (int m = 0; m < MT; ++m)
          for (int v = 0; v < NV; ++v) simd::storeu(p + m * NR + v * VW, simd::add(simd::loadu(p + m * NR + v * VW), acc[m][v]));
      }
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long item = 0; item < items; ++item) {
      const int g = (int)(item % groups), pm = (int)(item / groups % panels), tap = (int)(item / groups / panels);
      const float* p = part + item * MT * NR;
      for (int m = 0; m < MT && g * MT + m < KC; ++m)
        for (int i = 0; i < NR && pm * NR + i < M; ++i)
          dw[((long)rows[pm * NR + i] * L::C + ci[g * MT + m]) * RS + tap] = p[m * NR + i];
    }
  }
};
