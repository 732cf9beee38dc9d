// ---- engine/pointwise-weights: backward-weights of a stride-1 1x1 kernel without padding ----
// dw[k][c] = sum over images n and positions j of dy[n][k][j] * x[n][c][j]: one GEMM whose
// reduction runs over the N*P*Q positions (a 1x1 reads x at the position it writes). Vectors run
// along the smaller side (VEC_IS_X: the kept channels, else the kept filters), transposed block by
// block into panels [position][NR]; the other side is broadcast straight from its planes, MT rows
// (MT sequential streams) at a time, and never packed. (DirectWeights transposes dy and
// interleaves x: packing was 36-40% of the 1x1 passes on 56x56 planes with 32 and 128 kept.)
// Expects (kernel.cpp includes it inside the layer namespace): the std headers, L:: (the layer's
// shape), simd:: (isa/<isa>.hpp) and engine/common.hpp.

template <int MT, int NV, bool VEC_IS_X>
struct PointwiseWeights {
  static_assert(L::R == 1 && L::S == 1 && L::SH == 1 && L::SW == 1 && L::PH == 0 && L::PW == 0,
                "pointwise backward-weights serves stride-1 1x1 kernels without padding");
  static constexpr int VW = simd::VW, NR = NV * VW;
  static constexpr long PQ = (long)L::P * L::Q;
  static constexpr long BLOCK_BYTES = 256 * 1024;  // a block's panels stay in L2
  static constexpr int PREFETCH = 64;              // floats ahead in each plane a pack or a tile streams
  // Per thread, for private partial sums: up to 2 MiB (1 MiB sent 256 -> 1024 @14 at d=1, 1 MiB
  // of sums, to the shared blocks: 1.2-1.45x slower, batch 8-16, Zen 4).
  static constexpr long PARTIAL_BYTES = 2L << 20;
  static constexpr long PACK_PIECE = 64;           // positions: a shared block is packed in pieces this long

  // The two sides of the GEMM: rows of one are vectors, rows of the other broadcasts.
  struct Side {
    const float* t;      // dy or x
    int chans;           // its channels per image (K or C)
    const int32_t* idx;  // its kept rows (filters or channels), sorted
    int count;
    const float* plane(int i, int n) const { return t + ((long)n * chans + idx[i]) * PQ; }
  };

  // Panel pm of the vector side, positions [j0, j1) of image n, into out[j - j0][NR] (rows past
  // the side's count are zero). VW rows x VW positions at a time through the register transpose.
  static void packPanel(const Side& vec, int pm, int n, long j0, long j1, float* out) {
    for (long b0 = j0; b0 < j1; b0 += VW) {
      const long np = std::min<long>(VW, j1 - b0);
      float* o = out + (b0 - j0) * NR;
      for (int v = 0; v < NV; ++v) {
        const int i0 = pm * NR + v * VW;
        if (np == VW && i0 + VW <= vec.count) {
          const float* src[VW];
          for (int r = 0; r < VW; ++r) {
            src[r] = vec.plane(i0 + r, n) + b0;
            __builtin_prefetch(src[r] + PREFETCH);
          }
          simd::transpose(src, o + v * VW, NR);
          continue;
        }
        for (int l = 0; l < VW; ++l) {
          const float* in = i0 + l < vec.count ? vec.plane(i0 + l, n) + b0 : nullptr;
          for (long q = 0; q < np; ++q) o[q * NR + v * VW + l] = in ? in[q] : 0.f;
        }
      }
    }
  }

  // acc += over positions [j0, j1) of image n: the block's panel (position-major, from j0) times
  // broadcasts of broadcast-side rows g*MT.. (rows past its count repeat the last: discarded).
  [[gnu::always_inline]] static inline void tile(const float* panel, const Side& bc, int g, int n, long j0, long j1,
                          simd::vec (&acc)[MT][NV]) {
    const float* b[MT];
    for (int m = 0; m < MT; ++m) b[m] = bc.plane(std::min(g * MT + m, bc.count - 1), n) + j0;
    const long len = j1 - j0;
    for (long j = 0; j < len; ++j, panel += NR) {
      if ((j & 15) == 0)  // a line per stream: ask for the one PREFETCH floats ahead
        for (int m = 0; m < MT; ++m) __builtin_prefetch(b[m] + j + PREFETCH);
      simd::vec dv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) dv[v] = simd::loadu(panel + v * VW);
#pragma GCC unroll 16
      for (int m = 0; m < MT; ++m) {
        const simd::vec s = simd::broadcast(b[m][j]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[m][v] = simd::fmadd(s, dv[v], acc[m][v]);
      }
    }
  }

  // Tile (pm, g) of sums [MT][NR] into dw: lane l of row m is (vector-side row pm*NR + l,
  // broadcast-side row g*MT + m). Filters outer: dw rows are C floats apart.
  static void scatter(const float* sum, const Side& vec, const Side& bc, int pm, int g, float* dw) {
    const int lanes = std::min(NR, vec.count - pm * NR), ms = std::min(MT, bc.count - g * MT);
    const int32_t* vIdx = vec.idx + pm * NR;
    const int32_t* bIdx = bc.idx + g * MT;
    if constexpr (VEC_IS_X) {  // rows m are filters, lanes channels
      for (int m = 0; m < ms; ++m)
        for (int l = 0; l < lanes; ++l) dw[(long)bIdx[m] * L::C + vIdx[l]] = sum[m * NR + l];
    } else {  // lanes are filters, rows m channels
      for (int l = 0; l < lanes; ++l)
        for (int m = 0; m < ms; ++m) dw[(long)vIdx[l] * L::C + bIdx[m]] = sum[m * NR + l];
    }
  }

  // How a call is cut: block blk holds images [n0, n1) and positions [j0, j1) of each; its panels
  // are packed image after image, panelSize floats apart.
  struct Block {
    int n0, n1;
    long j0, j1;
    // Where image n's positions start in a packed panel of this block.
    long imageAt(int n) const { return (n - n0) * (j1 - j0) * NR; }
  };
  struct Blocks {
    int n, images;
    long jb, perImage, count, panelSize;
    // n images cut in blocks of `positions` of one image (at least 256), or, on planes shorter than
    // that, of whole planes of up to a thread's share of the images.
    static Blocks of(int n, int threads, long positions) {
      const long jb = std::min(PQ, positions);
      const int images = jb == PQ ? (int)std::min<long>((n + threads - 1) / threads, positions / PQ) : 1;
      const long perImage = (PQ + jb - 1) / jb;
      return {n, images, jb, perImage, images > 1 ? (n + images - 1) / images : n * perImage, images * jb * NR};
    }
    Block at(long blk) const {
      if (images > 1) {
        const int n0 = (int)blk * images;
        return {n0, std::min(n, n0 + images), 0, PQ};
      }
      const int n0 = (int)(blk / perImage);
      const long j0 = blk % perImage * jb;
      return {n0, n0 + 1, j0, std::min(PQ, j0 + jb)};
    }
  };
  static constexpr long TILE = (long)MT * NR;  // floats of a tile's sums

  // acc += packed panel `panel` of block k times broadcast group g.
  [[gnu::always_inline]] static inline void blockTile(const float* panel, const Side& bc, int g, const Block& k,
                                                      simd::vec (&acc)[MT][NV]) {
    for (int n = k.n0; n < k.n1; ++n) tile(panel + k.imageAt(n), bc, g, n, k.j0, k.j1, acc);
  }

  // dw[rows[i]][ci[c]] for the M gradient rows and KC kept channels.
  static void run(const float* dy, const float* x, float* dw, const int32_t* rows, int M, const int32_t* ci, int KC,
                  Workspace& ws, int threads) {
    const Side dySide{dy, L::K, rows, M}, xSide{x, L::C, ci, KC};
    const Side& vec = VEC_IS_X ? xSide : dySide;
    const Side& bc = VEC_IS_X ? dySide : xSide;
    const int panels = (vec.count + NR - 1) / NR, groups = (bc.count + MT - 1) / MT;
    if (panels == 0 || groups == 0) return;
    const long tiles = (long)panels * groups;
    // Blocks of positions of one image: the block's panels stay in L2 while each group of MT
    // broadcast rows passes over all of them (groups outer), so those rows stream from memory
    // once. At least 256 positions (16 lines a stream): sizing blocks by both sides cut 256 ->
    // 1024 1x1 @14 at d=1 into runs of 64 and ran it at a third of peak. Planes shorter than that
    // (7x7, 14x14) make blocks of whole planes of several images, up to a thread's share of them:
    // a tile's sums then stay in registers across the block's images.
    const Blocks b = Blocks::of(ws.n, threads, std::max<long>(256, BLOCK_BYTES / (4L * panels * NR) / VW * VW));
    // Each thread takes whole blocks and sums into private partials of all of dw, added up at the
    // end; unless those partials are large, or the blocks too few: then the threads share each
    // block, packing it and splitting its tiles. (Blocks of several images are a thread's share.)
    ws.ensureThreads(threads);
    if (threads == 1 || (tiles * TILE * 4 <= PARTIAL_BYTES && b.count >= (b.images > 1 ? 1 : 2) * threads)) {
      for (int t = 0; t < threads; ++t) ws.bBlock[t].get((size_t)(tiles * TILE + panels * b.panelSize));
      runPrivate(vec, bc, dw, panels, groups, b, ws, threads);
    } else {
      ws.aPack.get((size_t)(panels * b.panelSize));
      ws.dyPack.get((size_t)(tiles * TILE));
      runShared(vec, bc, dw, panels, groups, b, ws, threads);
    }
  }

  // Each thread: whole blocks into its private partials (ws.bBlock), then the team's sum to dw.
  static void runPrivate(const Side& vec, const Side& bc, float* dw, int panels, int groups, const Blocks& b,
                         Workspace& ws, int threads) {
    const long tiles = (long)panels * groups;
    parallel(threads, [&] {
      const int team = omp_get_num_threads();
      float* part = ws.bBlock[omp_get_thread_num()].data;
      float* pack = part + tiles * TILE;
      bool fresh = true;  // a thread's first block writes every tile of its partials
#pragma omp for schedule(dynamic, 1) nowait
      for (long blk = 0; blk < b.count; ++blk) {
        const Block k = b.at(blk);
        for (int pm = 0; pm < panels; ++pm)
          for (int n = k.n0; n < k.n1; ++n) packPanel(vec, pm, n, k.j0, k.j1, pack + pm * b.panelSize + k.imageAt(n));
        for (int g = 0; g < groups; ++g)
          for (int pm = 0; pm < panels; ++pm) {
            float* p = part + ((long)pm * groups + g) * TILE;
            simd::vec acc[MT][NV];
            if (fresh)
              zeroTile(acc);
            else
              loadTile(p, acc);
            blockTile(pack + pm * b.panelSize, bc, g, k, acc);
            storeTile(p, acc);
          }
        fresh = false;
      }
      if (fresh) std::memset(part, 0, sizeof(float) * tiles * TILE);  // no block came to this thread
#pragma omp barrier
      // (every partial is complete)
#pragma omp for schedule(static)
      for (long t = 0; t < tiles; ++t)
        scatter(sumOverTeam(ws, team, t * TILE, TILE), vec, bc, (int)(t / groups), (int)(t % groups), dw);
    });
  }

  // The team on each block in turn: the pack in pieces, then the tiles (sums in ws.dyPack).
  static void runShared(const Side& vec, const Side& bc, float* dw, int panels, int groups, const Blocks& b,
                        Workspace& ws, int threads) {
    const long tiles = (long)panels * groups;
    parallel(threads, [&] {
      float* pack = ws.aPack.data;
      float* sums = ws.dyPack.data;
      for (long blk = 0; blk < b.count; ++blk) {
        const Block k = b.at(blk);
        const long pieces = (k.j1 - k.j0 + PACK_PIECE - 1) / PACK_PIECE, perPanel = (k.n1 - k.n0) * pieces;
#pragma omp for schedule(static)
        for (long it = 0; it < panels * perPanel; ++it) {
          const int pm = (int)(it / perPanel), n = k.n0 + (int)(it % perPanel / pieces);
          const long a = k.j0 + it % pieces * PACK_PIECE, e = std::min(k.j1, a + PACK_PIECE);
          packPanel(vec, pm, n, a, e, pack + pm * b.panelSize + k.imageAt(n) + (a - k.j0) * NR);
        }
        // (the loop's barrier: the block is packed)
        // Static: a thread sums the same tiles in every block, so they stay in its caches (handed
        // out dynamically, tiles moved between cores' caches: 1024 -> 1024 @14 b8 ran 1.2x slower).
#pragma omp for schedule(static)
        for (long t = 0; t < tiles; ++t) {
          float* p = sums + t * TILE;
          simd::vec acc[MT][NV];
          if (blk == 0)
            zeroTile(acc);
          else
            loadTile(p, acc);
          const int pm = (int)(t / groups), g = (int)(t % groups);
          blockTile(pack + pm * b.panelSize, bc, g, k, acc);
          storeTile(p, acc);
        }
        // (the loop's barrier: the next block may overwrite the pack)
      }
#pragma omp for schedule(static)
      for (long t = 0; t < tiles; ++t) scatter(sums + t * TILE, vec, bc, (int)(t / groups), (int)(t % groups), dw);
    });
  }
};
