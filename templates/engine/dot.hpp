// ---- engine/dot: backward-weights as dot products along one long lane axis ----
// dw[rows[i]][cols[c]][tap] = sum_j dyLane(i)[j] * xLane(c, tap)[j]. Vectors run along j, so both
// operands are plain vector loads, and an MRW x NT block of accumulators stays in registers over a
// chunk of lanes. Long lane axes split into chunks that stay in L2 (each thread sums its chunks
// into a private partial, added up at the end); short ones run each tile over all lanes.
// Expects (kernel.cpp includes it inside the layer namespace): the std headers, L:: (the layer's
// shape), simd:: (isa/<isa>.hpp) and engine/common.hpp.

template <int MRW, int NT>
struct DotPass {
  static constexpr int VW = simd::VW, RS = L::R * L::S;
  // Lanes per chunk: a chunk's dy rows and x lanes stay in L2 while every tile passes over them
  // (each tile streaming all J lanes from memory ran a 3x3 with 8 kept channels on 32x32 planes at
  // a quarter of peak; 96 KiB chunks measured 7-11% slower than 256 KiB, 640 KiB 0-12% faster),
  // at least 4 chunks per thread, and at least 1024 lanes so a tile's zeroing and sums stay small
  // beside its FMAs.
  static constexpr long CHUNK_BYTES = 640 * 1024, MIN_CHUNK = 1024;

  // The dots of tile t (rows m0.. m0+MRW, columns k0.. k0+NT) over lanes [j0, j1), each handed to
  // put(row, column, value). dyLanes: M rows of lanes (stride dyStride); column (c, tap) starts at
  // xLanes + c * xChanStride + tapShift[tap].
  template <class Put>
  static void tile(long t, int M, int NCOL, int colTiles, long j0, long j1, const float* dyLanes, long dyStride,
                   const float* xLanes, long xChanStride, const long* tapShift, Put&& put) {
    const int m0 = (int)(t / colTiles) * MRW, k0 = (int)(t % colTiles) * NT;
    const float* dy[MRW];
    const float* x[NT];
    // Tiles at the edge repeat their last row/column: valid memory, results discarded.
    for (int i = 0; i < MRW; ++i) dy[i] = dyLanes + std::min(m0 + i, M - 1) * dyStride;
    for (int c = 0; c < NT; ++c) {
      const int col = std::min(k0 + c, NCOL - 1);
      x[c] = xLanes + (col / RS) * xChanStride + tapShift[col % RS];
    }
    simd::vec acc[MRW][NT];
#pragma GCC unroll 8
    for (int i = 0; i < MRW; ++i)
#pragma GCC unroll 16
      for (int c = 0; c < NT; ++c) acc[i][c] = simd::zero();
    for (long j = j0; j < j1; j += VW) {
      simd::vec d[MRW];
#pragma GCC unroll 8
      for (int i = 0; i < MRW; ++i) d[i] = simd::loadu(dy[i] + j);
#pragma GCC unroll 16
      for (int c = 0; c < NT; ++c) {
        simd::vec xv = simd::loadu(x[c] + j);
        simd::keep(xv);
#pragma GCC unroll 8
        for (int i = 0; i < MRW; ++i) acc[i][c] = simd::fmadd(d[i], xv, acc[i][c]);
      }
    }
    for (int i = 0; i < MRW && m0 + i < M; ++i)
      for (int c = 0; c < NT && k0 + c < NCOL; ++c) put(m0 + i, k0 + c, simd::hsum(acc[i][c]));
  }

  // dw entry of row i, column col (= kept channel index * RS + tap).
  static float& dwAt(float* dw, const int32_t* rows, const int32_t* cols, int i, int col) {
    return dw[((long)rows[i] * L::C + cols[col / RS]) * RS + col % RS];
  }

  // dw = the sum of the team's private M x NCOL partials (ws.bBlock), rows shared out among the
  // team. Call inside the team's region, after the loop that filled the partials.
  static void writeSums(Workspace& ws, int team, int M, const int32_t* rows, int NCOL, const int32_t* cols, float* dw) {
#pragma omp for schedule(static)
    for (int i = 0; i < M; ++i) {
      const float* sum = sumOverTeam(ws, team, (long)i * NCOL, NCOL);
      for (int col = 0; col < NCOL; ++col) dwAt(dw, rows, cols, i, col) = sum[col];
    }
  }

  // dw from dy and x: in chunks of images packed by each work item when there are enough of them
  // (runImageChunks), else all N images packed first (Lanes::packDy / packX) and summed over.
  template <class Lanes>
  static void run(const float* dy, const float* x, int M, const int32_t* rows, int KC, const int32_t* cols, int N,
                  float* dw, Workspace& ws, int threads) {
    if (M == 0 || KC == 0) return;
    const int nb = imagesPerChunk<Lanes>(M, KC, N);
    if (nb < N && (N + nb - 1) / nb >= 2 * threads) return runImageChunks<Lanes>(dy, x, M, rows, KC, cols, N, nb, dw, ws, threads);
    const long J = Lanes::lanes(N), xStride = Lanes::xStride(N);
    float* dyLanes = ws.dyPack.get((size_t)M * J);
    float* xLanes = ws.xPack.get((size_t)KC * xStride);
    long shift[RS];
    Lanes::tapShifts(shift, N);
    Lanes::packDy(dy, rows, M, N, dyLanes, threads);
    Lanes::packX(x, cols, KC, N, xLanes, threads);
    runPacked(M, rows, KC, cols, J, dyLanes, J, xLanes, xStride, shift, dw, ws, threads);
  }

  // The most images (at least 1) whose packed dy rows and x lanes fit CHUNK_BYTES; N when one
  // image alone does not fit (then lane chunks keep the working set in L2 instead).
  template <class Lanes>
  static int imagesPerChunk(int M, int KC, int N) {
    const auto bytes = [&](int n) { return 4 * ((long)M * Lanes::lanes(n) + (long)KC * Lanes::xStride(n)); };
    if (bytes(1) > CHUNK_BYTES) return N;
    int nb = 1;
    while (nb < N && bytes(nb + 1) <= CHUNK_BYTES) ++nb;
    return nb;
  }

  // Images in chunks of nb: each work item packs its images' dy rows and x lanes into its
  // thread's own buffer, which stays in L2 while every tile passes over it, and sums into the
  // thread's private partial. x and dy cross memory once; packing all images first wrote the
  // packed copies out and read them back (a third of a 3x3 pass with 8 kept channels).
  template <class Lanes>
  static void runImageChunks(const float* dy, const float* x, int M, const int32_t* rows, int KC, const int32_t* cols,
                             int N, int nb, float* dw, Workspace& ws, int threads) {
    const int NCOL = KC * RS, colTiles = (NCOL + NT - 1) / NT;
    const long tiles = (long)((M + MRW - 1) / MRW) * colTiles;
    const int chunks = (N + nb - 1) / nb;
    const long packFloats = (long)M * Lanes::lanes(nb) + (long)KC * Lanes::xStride(nb);
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) {
      ws.bBlock[t].get((size_t)M * NCOL);
      ws.lanePack[t].get((size_t)packFloats);
    }
    parallel(threads, [&] {
      const int team = omp_get_num_threads(), me = omp_get_thread_num();
      float* part = ws.bBlock[me].data;
      float* dyLanes = ws.lanePack[me].data;
      std::memset(part, 0, sizeof(float) * M * NCOL);
#pragma omp for schedule(dynamic, 1)
      for (int k = 0; k < chunks; ++k) {
        const int n0 = k * nb, n = std::min(nb, N - n0);
        const long J = Lanes::lanes(n);
        float* xLanes = dyLanes + (long)M * J;
        long shift[RS];
        Lanes::tapShifts(shift, n);
        Lanes::packDy(dy + (long)n0 * L::K * L::P * L::Q, rows, M, n, dyLanes, 1);
        Lanes::packX(x + (long)n0 * L::C * L::H * L::W, cols, KC, n, xLanes, 1);
        for (long t = 0; t < tiles; ++t)
          tile(t, M, NCOL, colTiles, 0, J, dyLanes, J, xLanes, Lanes::xStride(n), shift,
               [&](int i, int col, float v) { part[(long)i * NCOL + col] += v; });
      }
      // (the loop's barrier: every partial is complete)
      writeSums(ws, team, M, rows, NCOL, cols, dw);
    });
  }

  // Sums over packed lanes: dyLanes, M rows of J lanes (stride dyStride); xLanes, column (c, tap)
  // at xLanes + c * xChanStride + tapShift[tap]. Writes dw[rows[i]][cols[c]][tap].
  static void runPacked(int M, const int32_t* rows, int KC, const int32_t* cols, long J, const float* dyLanes,
                        long dyStride, const float* xLanes, long xChanStride, const long* tapShift, float* dw,
                        Workspace& ws, int threads) {
    const int NCOL = KC * RS;
    const int colTiles = (NCOL + NT - 1) / NT;
    const long tiles = (long)((M + MRW - 1) / MRW) * colTiles;
    const long chunk = std::max(MIN_CHUNK, std::min(CHUNK_BYTES / (4L * (M + KC)), J / (4L * threads)) / VW * VW);
    const long chunks = (J + chunk - 1) / chunk;
    if (threads == 1 || chunks < 2L * threads) {  // tiles are the work items, each writes its own dw entries
      parallel(threads, [&] {
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < tiles; ++t)
          tile(t, M, NCOL, colTiles, 0, J, dyLanes, dyStride, xLanes, xChanStride, tapShift,
               [&](int i, int col, float v) { dwAt(dw, rows, cols, i, col) = v; });
      });
      return;
    }
    // Chunks are the work items: each thread sums its chunks of every tile into a private M x NCOL
    // partial; one pass then adds the partials up into dw.
    ws.ensureThreads(threads);
    for (int t = 0; t < threads; ++t) ws.bBlock[t].get((size_t)M * NCOL);
    parallel(threads, [&] {
      const int team = omp_get_num_threads();
      float* part = ws.bBlock[omp_get_thread_num()].data;
      std::memset(part, 0, sizeof(float) * M * NCOL);
#pragma omp for schedule(dynamic, 1)
      for (long k = 0; k < chunks; ++k)
        for (long t = 0; t < tiles; ++t)
          tile(t, M, NCOL, colTiles, k * chunk, std::min(J, (k + 1) * chunk), dyLanes, dyStride, xLanes, xChanStride,
               tapShift, [&](int i, int col, float v) { part[(long)i * NCOL + col] += v; });
      // (the loop's barrier: every partial is complete)
      writeSums(ws, team, M, rows, NCOL, cols, dw);
    });
  }
};

// Planes lanes (stride 1): image n's lanes are a zero-padded HP x WP plane (x row i <-> input row
// i - PH); dy sits at rows < P, columns < Q of the same pitch, zeros elsewhere, so tap (r,s) is
// the constant shift r*DH*WP + s*DW and garbage lanes multiply zeros.
struct PlaneLanes {
  static constexpr int WP = L::Q + (L::S - 1) * L::DW, HP = L::P + (L::R - 1) * L::DH;
  static constexpr long IMG = (long)HP * WP;
  static constexpr long MAX_SHIFT = (long)(L::R - 1) * L::DH * WP + (L::S - 1) * L::DW;
  // Lanes of n images (a whole number of vectors), and the distance between two channels' x lanes.
  static constexpr long lanes(int n) { return (n * IMG + simd::VW - 1) / simd::VW * simd::VW; }
  static constexpr long xStride(int n) { return (lanes(n) + MAX_SHIFT + 15) / 16 * 16; }

  static void tapShifts(long* shift, int) {
    for (int tap = 0; tap < L::R * L::S; ++tap) shift[tap] = (long)(tap / L::S) * L::DH * WP + (tap % L::S) * L::DW;
  }
  static void packDy(const float* dy, const int32_t* rows, int M, int N, float* out, int threads) {
    const long J = lanes(N);
    parallelFor(threads, M, [&](long i) {
      float* o = out + i * J;
      for (int n = 0; n < N; ++n) {  // each lane written once: copies, then zero gaps
        float* img = o + n * IMG;
        for (int p = 0; p < L::P; ++p) {
          std::memcpy(img + (long)p * WP, dy + (((long)n * L::K + rows[i]) * L::P + p) * L::Q, sizeof(float) * L::Q);
          std::memset(img + (long)p * WP + L::Q, 0, sizeof(float) * (WP - L::Q));
        }
        std::memset(img + (long)L::P * WP, 0, sizeof(float) * (IMG - (long)L::P * WP));
      }
      std::memset(o + N * IMG, 0, sizeof(float) * (J - N * IMG));
    });
  }
  static void packX(const float* x, const int32_t* cols, int KC, int N, float* out, int threads) {
    const int jl = std::max(0, L::PW), jh = std::min(WP, L::W + L::PW);
    const long X_STRIDE = xStride(N);
    parallelFor(threads, KC, [&](long c) {
      float* o = out + c * X_STRIDE;
      for (int n = 0; n < N; ++n)  // each lane written once: zero borders, copy the rest
        for (int i = 0; i < HP; ++i) {
          float* row = o + n * IMG + (long)i * WP;
          const int sr = i - L::PH;
          if (sr < 0 || sr >= L::H || jh <= jl) {
            std::memset(row, 0, sizeof(float) * WP);
            continue;
          }
          std::memset(row, 0, sizeof(float) * jl);
          std::memcpy(row + jl, x + (((long)n * L::C + cols[c]) * L::H + sr) * L::W + (jl - L::PW), sizeof(float) * (jh - jl));
          std::memset(row + jh, 0, sizeof(float) * (WP - jh));
        }
      std::memset(o + N * IMG, 0, sizeof(float) * (X_STRIDE - N * IMG));
    });
  }
};

// Im2row lanes (any stride): lanes are the output positions (n, p, q) without padding garbage;
// x is gathered per (channel, tap) row, so taps are replicated: the choice for small outputs.
struct RowLanes {
  static constexpr int ceilDiv(int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
  // Lanes of n images (a whole number of vectors), and the distance between two channels' x lanes.
  static constexpr long lanes(int n) { return ((long)n * L::P * L::Q + simd::VW - 1) / simd::VW * simd::VW; }
  static constexpr long xStride(int n) { return lanes(n) * L::R * L::S; }

  static void tapShifts(long* shift, int N) {
    for (int tap = 0; tap < L::R * L::S; ++tap) shift[tap] = (long)tap * lanes(N);
  }
  static void packDy(const float* dy, const int32_t* rows, int M, int N, float* out, int threads) {
    constexpr long PQ = (long)L::P * L::Q;
    const long J = lanes(N);
    parallelFor(threads, M, [&](long i) {
      float* o = out + i * J;
      for (int n = 0; n < N; ++n) std::memcpy(o + n * PQ, dy + ((long)n * L::K + rows[i]) * PQ, sizeof(float) * PQ);
      std::memset(o + N * PQ, 0, sizeof(float) * (J - N * PQ));
    });
  }
  static void packX(const float* x, const int32_t* cols, int KC, int N, float* out, int threads) {
    const long J = lanes(N), X_STRIDE = xStride(N);
    parallelFor(threads, (long)KC * L::R * L::S, [&](long ct) {
      const int c = (int)(ct / (L::R * L::S)), tap = (int)(ct % (L::R * L::S));
      const int r = tap / L::S, s = tap % L::S;
      float* o = out + (long)c * X_STRIDE + (long)tap * J;
      // Columns q in [qlo, qhi) read real input; the rest are padding. Loops without a
      // conditional load: GCC 12 -O3 miscompiled the select-inside-the-loop form (found by
      // the fuzzer, test/fuzz/regressions/4a96730aed74.json).
      const int qlo = std::min(L::Q, std::max(0, ceilDiv(L::PW - s * L::DW, L::SW)));
      const int qhi = std::max(qlo, std::min(L::Q, ceilDiv(L::W + L::PW - s * L::DW, L::SW)));
      long j = 0;
      for (int n = 0; n < N; ++n) {
        const float* plane = x + ((long)n * L::C + cols[c]) * L::H * L::W;
        for (int p = 0; p < L::P; ++p, j += L::Q) {
          const int ih = p * L::SH - L::PH + r * L::DH;
          if (ih < 0 || ih >= L::H) {
            std::fill(o + j, o + j + L::Q, 0.f);
            continue;
          }
          const float* row = plane + (long)ih * L::W;
          std::fill(o + j, o + j + qlo, 0.f);
          for (int q = qlo; q < qhi; ++q) o[j + q] = row[q * L::SW + s * L::DW - L::PW];
          std::fill(o + j + qhi, o + j + L::Q, 0.f);
        }
      }
      std::fill(o + j, o + J, 0.f);
    });
  }
};
