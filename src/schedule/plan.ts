// The scheduler: turns a ConvLayer plus options into a Plan (plain, JSON-serializable data):
// ISA, register tiles, gather strategy and blocking per pass. Heuristic and always valid.

import type { ConvLayer, Pair } from '../ir/conv.js';
import { ArgumentError } from '../errors.js';
import type { Isa, IsaName } from './isa.js';
import type { PassName, PassStrategy } from '../ir/passes.js';

/** Forward / backward-data: an implicit GEMM over destination positions. */
export interface GemmPlan {
  readonly engine: 'gemm';
  /**
   * planes: zero-padded planes, taps are shifts (stride 1); im2col: gathered blocks, padding taps
   * skipped; pointwise (1x1 kernels): kept source channels are the B rows, columns span images.
   */
  readonly source: 'planes' | 'im2col' | 'pointwise';
  /** im2col column order: image-major (n,p,q) or position-major (p,q,n), which skips more padding taps. */
  readonly order: 'image' | 'position';
  /** Microtile: MR rows (filters or channels) x NR = NV vectors of columns. */
  readonly MR: number;
  readonly NV: number;
  readonly NR: number;
  /** planes: destination rows per work item; im2col and pointwise: columns per packed block. */
  readonly rowsPerBlock: number;
  /**
   * planes: tiles start at destination row starts, ceil(dstW / NR) per row, so no vector crosses
   * a row end (else tiles run along the padded plane and cross them).
   */
  readonly rowTiles: boolean;
  readonly columnsPerBlock: number;
  /**
   * Backward-data of a strided 1x1 (pointwise only): columns are the dy positions, each stored to
   * the dx position it came from; the rest of dx is zeroed first.
   */
  readonly subsampled: boolean;
}

/** Forward / backward-data, channel-vectorized direct conv: MQ positions x NR = NV vectors of channels. */
export interface DirectPlan {
  readonly engine: 'direct';
  readonly source: 'direct';
  /** A tile's MQ positions: consecutive columns of a row, or MQ images at one position (tiny outputs). */
  readonly tile: 'columns' | 'images';
  /** Destination rows per work item (their source rows are packed once per item). */
  readonly rowsPerBlock: number;
  readonly MQ: number;
  readonly NV: number;
  readonly NR: number;
}

export type ConvPassPlan = GemmPlan | DirectPlan;

/** Backward-weights, tap-major direct: MT channels x NR = NV vectors of filters per tap. */
export interface DirectWeightsPlan {
  readonly engine: 'direct';
  readonly source: 'direct';
  /** What the MT broadcasts of a step range over: kept channels, or column taps of one channel (few channels). */
  readonly tile: 'channels' | 'taps';
  readonly MT: number;
  readonly NV: number;
  readonly NR: number;
  /**
   * images: blocks of images shared by all threads (small planes); rows: blocks of one image x
   * rowsPerBlock output rows, each packed and reduced by one thread into private partial sums.
   */
  readonly blocking: 'images' | 'rows';
  readonly imagesPerBlock: number;
  readonly rowsPerBlock: number;
}

/**
 * Backward-weights of a stride-1 1x1 without padding: one GEMM over the positions. Vectors run
 * along the smaller kept side (NR = NV vectors), transposed per block; MT rows of the other side
 * are broadcast straight from their planes.
 */
export interface PointwiseWeightsPlan {
  readonly engine: 'pointwise';
  readonly source: 'pointwise';
  readonly vectors: 'filters' | 'channels';
  readonly MT: number;
  readonly NV: number;
  readonly NR: number;
}

export type WeightsPlan = DotPlan | DirectWeightsPlan | PointwiseWeightsPlan;

/** Expert override of the gather strategy per pass (tests and tuning use it); unset = heuristic. */
export type Strategy = { [P in PassName]?: PassStrategy<P> };

/** Backward-weights: dot products along a lane axis with MRW x NT register accumulators. */
export interface DotPlan {
  readonly engine: 'dot';
  /** planes: padded-pitch lanes, taps are shifts (stride 1); im2row: one gathered row per (channel, tap). */
  readonly source: 'planes' | 'im2row';
  readonly filtersPerTile: number;
  readonly columnsPerTile: number;
}

export interface Plan {
  readonly isa: IsaName;
  readonly vectorWidth: number;
  readonly forward: ConvPassPlan;
  /** null: the layer has inputGrad: false, so no backward-data pass is built. */
  readonly backwardData: ConvPassPlan | null;
  readonly backwardWeights: WeightsPlan;
}

// Bytes of packed B one work item may hold: half the 1-2 MiB L2 of current x86 cores.
const L2_BUDGET = 512 * 1024;
// L1 data cache of the smaller current x86 cores (Zen 3 and 4; Zen 5 and recent Xeons have 48 KiB).
const L1_BYTES = 32 * 1024;
// Bytes of GEMM A panels one pass keeps in L2 (A_BUDGET in engine/gemm.hpp); more stream from L3.
const A_STREAM_BYTES = 256 * 1024;
// Vectors L2 sustains into L1 per FMA slot (Zen 3: 32 bytes a cycle at peak, two 8-float FMAs).
const L2_VECTORS_PER_FMA = 0.38;
// Output positions a backward-weights row block should reduce over at least (see directWeightsTiling).
const MIN_BLOCK_POSITIONS = 32;
// Private per-thread partial sums of dw from which a batch below the thread count shares blocks.
const SHARED_PARTIALS_BYTES = 128 * 1024;
// Cost factor of a direct tile that takes every vector register in an unrolled tap loop (directPlan).
const ALL_REGISTERS_COST = 1.15;
// Cost factor of a direct tile whose weights (and row stage) overflow L1 (directL1Cost).
const L1_OVERFLOW_COST = 1.1;

/**
 * `parallelism`: the threads the kernel is expected to run with, a hint for the blocking only (the
 * plan does not hold it; a kernel runs with any thread count).
 */
export function choosePlan(layer: ConvLayer, isa: Isa, parallelism: number, strategy: Strategy = {}): Plan {
  const [R, S] = layer.kernel;
  const keptOut = Math.max(1, Math.round(layer.outChannels * layer.density.out));
  const keptIn = Math.max(1, Math.round(layer.inChannels * layer.density.in));
  const stride1 = layer.stride[0] === 1 && layer.stride[1] === 1;
  const fwd: GemmShape = {
    rows: keptOut,
    reduceChannels: keptIn,
    taps: R * S,
    batch: layer.batch,
    dstH: layer.outHeight,
    dstW: layer.outWidth,
    planeExtraH: (R - 1) * layer.dilation[0],
    planeExtraW: (S - 1) * layer.dilation[1],
    planesAllowed: stride1,
    srcW: layer.inWidth,
    strides: layer.stride,
    pointwiseUseful: R === 1 && S === 1,
    phases: 1,
    kernelW: S,
    dilationW: layer.dilation[1],
    tileTaps: R * S,
    backwardData: false,
  };
  // Backward-data's columns are dx positions: a strided 1x1 would compute every skipped one as zeros.
  const bwd: GemmShape = {
    ...fwd,
    rows: keptIn,
    reduceChannels: keptOut,
    dstH: layer.inHeight,
    dstW: layer.inWidth,
    srcW: layer.outWidth,
    strides: [1, 1],
    pointwiseUseful: R === 1 && S === 1 && stride1,
    phases: layer.stride[1],
    // A dx row of one phase is reached by every stride-th kernel row (exact where the dilation and
    // the stride have no common factor, the usual case), its columns likewise.
    tileTaps: Math.ceil(R / layer.stride[0]) * Math.ceil(S / layer.stride[1]),
    backwardData: true,
  };
  // A strided 1x1's backward-data as a GEMM over the dy grid (every dx position it writes is real).
  const subsampled: GemmShape | null =
    R === 1 && S === 1 && !stride1
      ? { ...bwd, dstH: layer.outHeight, dstW: layer.outWidth, srcW: layer.outWidth, pointwiseUseful: true }
      : null;
  return Object.freeze({
    isa: isa.name,
    vectorWidth: isa.vectorWidth,
    forward: convPassPlan(isa, parallelism, fwd, strategy.forward, 'forward'),
    backwardData: layer.inputGrad ? backwardDataPlan(isa, parallelism, bwd, subsampled, strategy.backwardData) : null,
    backwardWeights: weightsPlan(isa, parallelism, layer, keptOut, keptIn, stride1, strategy.backwardWeights),
  });
}

interface GemmShape {
  rows: number;
  reduceChannels: number;
  taps: number;
  batch: number;
  dstH: number;
  dstW: number;
  planeExtraH: number;
  planeExtraW: number;
  planesAllowed: boolean;
  /** Source width and the source-side stride between neighbouring destination columns. */
  srcW: number;
  strides: Pair;
  /** A 1x1 kernel whose every destination column has a source (the pointwise GEMM wastes nothing). */
  pointwiseUseful: boolean;
  /** Column phases of the direct engine: a strided backward-data tiles each of its SW phases apart. */
  phases: number;
  /** Kernel width and column dilation: the column taps a direct tile's kernel row runs. */
  kernelW: number;
  dilationW: number;
  /** Kernel taps a direct tile runs at most: all, or a strided backward-data's per row and column phase. */
  tileTaps: number;
  /** The backward-data pass (its destination is dx). */
  backwardData: boolean;
}

function backwardDataPlan(
  isa: Isa,
  threads: number,
  g: GemmShape,
  subsampled: GemmShape | null,
  forced: Strategy['backwardData'],
): ConvPassPlan {
  if (subsampled && (forced ?? defaultConvSource(isa, subsampled)) === 'pointwise')
    return { ...gemmPlan(isa, threads, subsampled, 'pointwise'), subsampled: true };
  return convPassPlan(isa, threads, g, forced, 'backwardData');
}

function convPassPlan(
  isa: Isa,
  threads: number,
  g: GemmShape,
  forced: Strategy['forward'],
  pass: string,
): ConvPassPlan {
  if (forced === 'planes' && !g.planesAllowed) {
    throw new ArgumentError(`options.strategy.${pass}`, forced, "'im2col' or 'direct': 'planes' needs stride 1");
  }
  if (forced === 'pointwise' && g.taps !== 1) {
    throw new ArgumentError(
      `options.strategy.${pass}`,
      forced,
      "'planes', 'im2col' or 'direct': 'pointwise' needs a 1x1 kernel",
    );
  }
  const source = forced ?? defaultConvSource(isa, g);
  return source === 'direct' ? directPlan(isa, threads, g, g.strides) : gemmPlan(isa, threads, g, source);
}

// The direct engine wins wherever its channel vectors fill up (measured on VGG-16 layers from
// 32x32 to 2x2: 84-97% of peak at >= 32 rows; ResNet's 32-32 @16x16 at d=0.5, 16 rows: 178-190
// GFLOP/s against 140 for planes); with fewer rows or few reduction channels, planes
// (stride 1) vectorize spatially instead. Strided layers stay direct: its column phases read
// only real taps (im2col on a strided backward-data measured 8 GFLOP/s on ResNet's 16->32 s2).
// 1x1 kernels are plain GEMMs: vectors along positions store straight into the destination
// channel, where the direct engine spends a scalar store per output (ResNet-50's 1x1 layers ran at
// 8-15% of peak on it).
function defaultConvSource(isa: Isa, g: GemmShape): 'planes' | 'im2col' | 'pointwise' | 'direct' {
  // ... given enough columns to fill its vector tiles: a 1x1 on a 2x2 plane at batch 1 (4 columns)
  // ran at 0.75x of dense oneDNN on pointwise; channel vectors serve it better. Up to 16 vectors
  // of columns (a 14x14 plane at batch 1, 7x7 at batch 4), a stride-1 1x1 whose reduction is at
  // least half its rows runs direct: 1.03-1.65x faster than pointwise on all 14 such passes
  // measured (Zen 4, d=0.5, batch 1-4); with a shorter reduction direct ran 0.69-0.96x on four
  // passes (1.03x and 1.09x on two more).
  // Backward-data does the same at any batch where position vectors cross images in at least one
  // of 16 (planes of fewer than 16 vectors that are not whole vectors: 7x7, 14x14, 11x11 on
  // AVX-512; pointwise packs the tiles that cross and stores them lane by lane) and the reduction
  // is at least 4 times the rows. `bench/engine-ab.ts`, Zen 4, d=0.5, both build orders, direct
  // against pointwise: 512 -> 2048 @7 at batch 8 1.07x in a fast phase of the VM and in a slow one,
  // at batch 16 1.07x, 256 -> 1024 @14 b4-8 1.01-1.03x, 320 -> 1280 @7x14 b6 1.10x. Forwards with
  // such reductions flip with the VM's phase (1024 -> 256 @14 b8 1.03x fast, 0.91x slow; 2048 ->
  // 512 @7 b8 1.04x / 0.96x: the slow phases, a busy sibling hyperthread most likely, cost the
  // FMA-dense direct tiles more) and stay pointwise. With shorter reductions direct ran 0.67-1.01x
  // (512 -> 256 forward @11 0.78-0.88x, 384 -> 384 @13 backward-data at d=0.6 0.67x, 1024 -> 1024
  // @7 0.99-1.00x); whole-vector planes (8x8 b64 0.95x / 0.99x, 16x16 0.92x), larger ones (17x17
  // 0.81x / 0.92x, 28x28 0.92-0.99x, 56x56 0.83x) and AVX2, where direct's tiles are load-bound (7x7
  // and 14x14, batch 4-8: 0.91-1.01x), stay pointwise.
  const cols = g.batch * g.dstH * g.dstW;
  const plane = g.dstH * g.dstW;
  const crossingPlanes =
    g.backwardData &&
    !loadsScarce(isa) &&
    plane % isa.vectorWidth !== 0 &&
    plane < 16 * isa.vectorWidth &&
    g.reduceChannels >= 4 * g.rows;
  const fewColumns = cols <= 16 * isa.vectorWidth && 2 * g.reduceChannels >= g.rows;
  if (g.pointwiseUseful && cols >= 4 * isa.vectorWidth)
    return (fewColumns || crossingPlanes) && g.planesAllowed ? 'direct' : 'pointwise';
  // Rows that leave direct's channel vectors partly empty run on planes where planes' tiles are
  // fuller (Zen 4, AVX-512, planes against direct: 20 kept rows in 32 lanes 1.64x, 22-24 of 32
  // 1.2-1.5x, 52 of 64 and 84-115 of 96-128 1.07-1.17x on 16-, 32- and 56-wide planes; where the
  // fills were close, 84 and 115 rows on 28-wide planes, 0.93-0.97x). With full vectors direct
  // stays ahead (planes 0.85-0.97x, 1.03x with 32 kept on 32x32).
  // Where a broadcast takes a load slot (AVX2), a planes tile of one vector (the only one a row
  // of one vector fits) is load-bound: its fill counts at the rate its loads allow. (Zen 3,
  // forward / backward-data on 8x8 planes, direct over planes' 12 x 8 row tiles: ResNet-56's 64
  // at d=0.7-0.9 1.15-1.24x, VGG's 256 at d=0.7 1.25x / 1.21x, 128 -> 256 at d=0.9 1.31x / 1.17x.)
  const vw = isa.vectorWidth;
  const directLanes = g.rows / (Math.ceil(g.rows / vw) * vw);
  const planesRate = loadsScarce(isa) ? 1 / planesLoadBound(isa, g) : 1;
  const planesScore = g.planesAllowed ? planesFill(g, vw) * planesRate : 0;
  // On AVX-512 the same holds with few reduction channels (first layers, or a pass that reduces
  // over few kept filters). `bench/engine-ab.ts`, Zen 4, d=0.5, direct against planes: forward 3x3
  // 6 -> 48 kept @28 b8 1.26x, 4 -> 32 @56 b8 1.01x, 3 -> 16 @32 b64 1.06x, 4 -> 32 @16 b64 1.03x,
  // 5x5 1 -> 32 @28 b64 1.08x; backward-data 32 -> 4 @56 b8 1.03x, 32 -> 6 @16 b64 1.04x; where
  // planes fill more lanes it stays ahead (6 -> 20 kept @28: direct 0.87x; 3 -> 8 @32: 0.60x).
  const fewChannelsDirect = vw > 1 && !loadsScarce(isa); // AVX-512 (the scalar build keeps planes: not measured)
  if (g.rows >= vw && (g.reduceChannels >= 8 || fewChannelsDirect) && planesScore <= directLanes) return 'direct';
  // Few reduction channels where a broadcast is a load (AVX2): direct where planes' tiles run
  // partly empty, planes where they fill. Zen 3, forward, direct against planes: 1 -> 32
  // 3x3 and 5x5 @28 b64 1.09x, 3 -> 32 5x5 @28 b64 1.23x, 2 -> 64 @28 b16 1.04x (28-wide rows in
  // 32 lanes); with full tiles planes stay (1 -> 64 @32 0.81x, 3 -> 64 @32 b64 0.89-0.96x, 4 ->
  // 48 5x5 @32 0.95x, 4 -> 64 kept @16 0.88x).
  if (g.rows >= vw && loadsScarce(isa) && planesScore < directLanes) return 'direct';
  const planesUseful = g.dstW / (g.dstW + g.planeExtraW);
  return g.planesAllowed && planesUseful >= 0.75 ? 'planes' : 'direct';
}

// How much slower than its FMAs the planes tile the plan would pick runs for its loads.
function planesLoadBound(isa: Isa, g: GemmShape): number {
  const { MR, NV } = pickPlanesTile(isa, g.rows, g.dstW, g.dstH, g.planeExtraW);
  return loadBound(isa, MR, NV);
}

// The share of planes' tile lanes that compute real outputs, with tiles of one vector.
function planesFill(g: GemmShape, vw: number): number {
  const { byRows, alongPlane } = planesTileCost(g.dstW, g.dstH, g.planeExtraW, vw);
  return 1 / Math.min(byRows, alongPlane);
}

/**
 * Lanes computed per real output by planes tiles of NR columns: row tiles (the last tile's lanes
 * past the row), or tiles along the padded plane (its padding columns, the last tile's lanes past
 * the plane, and the pieces of crossing vectors, costed like the padding).
 */
function planesTileCost(dstW: number, dstH: number, extraW: number, NR: number) {
  const planeCols = (dstW + extraW) * dstH;
  return {
    byRows: (Math.ceil(dstW / NR) * NR) / dstW,
    alongPlane: ((Math.ceil(planeCols / NR) * NR) / (dstW * dstH)) * (1 + extraW / dstW),
  };
}

function gemmPlan(isa: Isa, threads: number, g: GemmShape, source: 'planes' | 'im2col' | 'pointwise'): GemmPlan {
  const vw = isa.vectorWidth;
  const cols = source === 'planes' ? (g.dstW + g.planeExtraW) * g.dstH : g.batch * g.dstH * g.dstW;
  const { MR, NV, rowTiles } =
    source === 'planes'
      ? pickPlanesTile(isa, g.rows, g.dstW, g.dstH, g.planeExtraW)
      : { ...pickMicrotile(isa, g.rows, cols, g.reduceChannels * g.taps), rowTiles: false };
  const NR = NV * vw;
  let rowsPerBlock = g.dstH;
  let columnsPerBlock = NR;
  if (source === 'planes') {
    const rowBytes = g.reduceChannels * (g.dstW + g.planeExtraW) * 4;
    rowsPerBlock = clamp(Math.floor(L2_BUDGET / rowBytes) - g.planeExtraH, 1, g.dstH);
    // Enough items for every thread: split rows when the batch alone does not feed them.
    while (rowsPerBlock > 1 && g.batch * Math.ceil(g.dstH / rowsPerBlock) < 4 * threads)
      rowsPerBlock = Math.ceil(rowsPerBlock / 2);
  } else if (source === 'im2col') {
    const colBytes = g.reduceChannels * g.taps * 4;
    columnsPerBlock = clamp(Math.floor(L2_BUDGET / colBytes / NR), 1, 8) * NR;
  } else {
    // Pointwise: a packed block (kept channels x columns) takes half the L2 budget; at least 4 items per thread.
    const byCache = Math.floor(L2_BUDGET / 2 / (g.reduceChannels * 4) / NR);
    const byThreads = Math.floor(cols / (4 * threads) / NR);
    columnsPerBlock = clamp(Math.min(byCache, byThreads), 1, 16) * NR;
  }
  // Small outputs: position-major columns share their padding taps, which the block then skips.
  const order = source === 'im2col' && g.dstH * g.dstW <= 64 ? 'position' : 'image';
  return Object.freeze({
    engine: 'gemm' as const,
    source,
    order,
    MR,
    NV,
    NR,
    rowsPerBlock,
    rowTiles,
    columnsPerBlock,
    subsampled: false,
  });
}

/**
 * Direct tile: MQ positions x NV channel vectors. Each step loads NV weight vectors and
 * broadcasts MQ source values for MQ*NV FMAs; choose the least padded work (channel vectors,
 * row tails) with enough independent accumulators to hide FMA latency.
 */
function directPlan(isa: Isa, threads: number, g: GemmShape, strides: Pair): DirectPlan {
  const vw = isa.vectorWidth;
  // Tiny rows: tile across images instead, so every position keeps its exact tap list. Rows of 7
  // (ResNet-50's last stage) fill a column tile: 512->512 3x3 stride 2 @14 -> 7x7 at batch 8 ran
  // its forward 1.25x faster on columns (the padding taps of the edge columns cost less than
  // broadcasts from 8 images' lines), stride 1 @7 the same or slightly faster.
  const tile = g.dstW < 7 && g.batch >= 4 ? 'images' : 'columns';
  // A column tile runs within one phase: a stride-2 backward-data on 14 columns tiles 7 per phase.
  const positions = tile === 'images' ? g.batch : Math.ceil(g.dstW / g.phases);
  // Column tiles of a one-phase row run their column taps unrolled, each over the positions where
  // it reads real input (TileTaps in engine/direct.hpp). There a tile that takes every vector
  // register (accumulators, weight vectors, one broadcast) has GCC spill accumulators in the FMA
  // loop: on AVX2 (Zen 3, d=0.5) 4 x 2 ran 1.45x / 1.23x (forward / backward-data) faster than
  // 4 x 3 on 8-wide rows, 6 x 2 1.33x / 1.10x on 16-wide and 1.05x / 1.02x on 7-wide ones; the
  // scalar build's 4 x 2 1.06x / 1.16x on 8-wide. Image tiles and strided backward-data phases
  // keep such tiles (there 4 x 3 ran 1.08-1.15x faster than the next best). AVX-512 tiles never
  // take all 32 registers.
  // Where a broadcast is a load (AVX2), one-vector column tiles broadcast each source position of a
  // kernel row once for all its column taps (rowShareLoads): they then beat the two-vector tiles
  // (Zen 3, d=0.5, forward / backward-data, `bench/tile-ab.ts`): 512 @7 b8 4 x 2 -> 8 x 1 1.24x /
  // 1.28x, 256 @14 b8 5 x 2 1.08x / 1.06x, 128 @16 b64 6 x 2 1.25x / 1.08x, 64 @56 b8 backward-data
  // 1.32x, 128 @28 b8 forward 1.28x, 64 @32 b8 1.31x, stride-2 64 -> 128 @56 1.01x; 8 kept rows
  // over 14 x 1 tiles: 16 @28 b32 1.47x / 1.33x, 5x5 @28 1.10x, 16 @56 b8 1.14x / 1.24x.
  const unrolledTaps = tile === 'columns' && g.phases === 1;
  let best = { MQ: 1, NV: 1, cost: Infinity };
  for (let NV = 1; NV <= 4; NV++) {
    for (let MQ = 1; MQ <= 16; MQ++) {
      if (!tileFits(isa, MQ, NV)) continue;
      const rowsPadded = (Math.ceil(g.rows / (NV * vw)) * NV * vw) / g.rows;
      const colsPadded = (Math.ceil(positions / MQ) * MQ) / positions;
      const shared = unrolledTaps && NV === 1 ? rowShareLoads(isa, g, MQ) : null;
      const fmas = shared ? MQ * g.kernelW : MQ * NV; // per step: a tap, or a kernel row's taps
      const spills = unrolledTaps && MQ * NV + NV + 1 >= isa.registers ? ALL_REGISTERS_COST : 1;
      const bound = shared ?? directLoadBound(isa, MQ, NV);
      const cost =
        rowsPadded *
        colsPadded *
        bound *
        (1 + isa.directStepCost / fmas) *
        spills *
        directL1Cost(isa, g, MQ, NV * vw, tile === 'columns');
      if (cost < best.cost - 1e-9) best = { MQ, NV, cost };
    }
  }
  // Rows per item: its packed source rows (kept channels, padded) should stay in L2.
  const [sh] = strides;
  const rowBytes = 4 * g.reduceChannels * (g.srcW + g.planeExtraW + best.MQ * strides[1]);
  let rowsPerBlock = g.dstH;
  if (tile === 'columns') {
    rowsPerBlock = clamp(Math.floor((L2_BUDGET / rowBytes - g.planeExtraH) / sh), 1, g.dstH);
    // Split rows while the batch alone does not feed the threads, but not below the kernel's
    // height: each block packs its rows plus the R - 1 the taps reach past them, and blocks of one
    // row on 7x7 planes packed every source row three times (3x3, batch 1-2: 1.02-1.05x with the
    // floor, Zen 4).
    const minRows = Math.min(g.dstH, g.planeExtraH + 1);
    while (
      rowsPerBlock > 1 &&
      Math.ceil(rowsPerBlock / 2) >= minRows &&
      g.batch * Math.ceil(g.dstH / rowsPerBlock) < 4 * threads
    )
      rowsPerBlock = Math.ceil(rowsPerBlock / 2);
  }
  return Object.freeze({
    engine: 'direct' as const,
    source: 'direct' as const,
    tile,
    rowsPerBlock,
    MQ: best.MQ,
    NV: best.NV,
    NR: best.NV * vw,
  });
}

/**
 * Register tile for the broadcast microkernel: MR x NV accumulators + NV operand vectors + one
 * broadcast must fit the register file; among those, the least padded work on the expected
 * rows/columns, then the biggest tile (more FMAs per load). Loads count: on AVX2, 13-14 x 1 tiles
 * (a broadcast per FMA) on 1x1 layers @7 and @14 ran 1.06-1.30x slower than 6 x 2 (Zen 3, d=0.5);
 * on AVX-512 this moves one measured family layer (MobileNet v2 960->160 @7 backward-data, 16 x 1
 * to 13 x 2), not timed there yet. `reduce` is the reduction length (kept channels x taps): a
 * tile whose B columns overflow L1 over it reads them from L2 (l2Bound).
 */
export function pickMicrotile(isa: Isa, rows: number, cols: number, reduce: number): { MR: number; NV: number } {
  const vw = isa.vectorWidth;
  let best = { MR: 1, NV: 1, cost: Infinity };
  for (let NV = 1; NV <= 6; NV++) {
    for (let MR = 1; MR <= 16; MR++) {
      if (!tileFits(isa, MR, NV)) continue;
      const padded = Math.ceil(rows / MR) * MR * Math.ceil(cols / (NV * vw)) * NV * vw;
      const bound = Math.max(loadBound(isa, MR, NV), l2Bound(MR, NV * vw, rows, reduce));
      const cost = (padded / (rows * cols)) * bound * (1 + 2 / (MR * NV));
      if (cost < best.cost - 1e-9) best = { MR, NV, cost };
    }
  }
  return { MR: best.MR, NV: best.NV };
}

/**
 * Planes microtile. Tiles either run along the padded plane (pitch dstW + extraW), computing the
 * padding columns and storing the vectors that cross a row end in pieces, or start at each row
 * (row tiles), computing the last tile's lanes past the row. 8 kept filters on 32x32 (ResNet-56's
 * first stage at d=0.5): row tiles of 32 ran 1.12x faster than 48-column tiles along the plane,
 * and 32 or 48 along the plane ran alike, so the pieces cost about as much as the padding columns.
 * Against tiles along the plane everywhere (Zen 4, AVX-512): 1.10-1.50x on 16- to 48-wide rows
 * (3x3 and 5x5, 4-12 kept), the same on 7-, 23-, 56-, 100- and 112-wide rows, 0.98x on 14.
 */
function pickPlanesTile(isa: Isa, rows: number, dstW: number, dstH: number, extraW: number) {
  const vw = isa.vectorWidth;
  // Where a broadcast costs a load slot of its own (AVX2), one-vector tiles (a broadcast per FMA)
  // are load-bound: with the load bound, AVX2 planes took 6 x 16 or 5 x 16 tiles over 11-14 x 8
  // (Zen 3, forward / backward-data: ResNet-56's 16 @32 at d=0.7 1.26x / 1.21x, VGG's 128 @16 at
  // d=0.9 1.10x / 1.10x, 64 @56 at d=0.9 1.11x / 1.12x; the 3-channel first layer at d=0.5
  // 1.16x). AVX-512 keeps the scores its tiles were measured with: the bound would move
  // ResNet-56's first stage at d=0.5 to 48-column tiles along the plane, 1.12x slower there.
  let best = { MR: 1, NV: 1, rowTiles: false, cost: Infinity };
  for (let NV = 1; NV <= 6; NV++) {
    const { byRows, alongPlane } = planesTileCost(dstW, dstH, extraW, NV * vw);
    for (let MR = 1; MR <= 16; MR++) {
      if (!tileFits(isa, MR, NV)) continue;
      const rowsPadded = (Math.ceil(rows / MR) * MR) / rows;
      const perFma = (loadsScarce(isa) ? loadBound(isa, MR, NV) : 1) * (1 + 2 / (MR * NV));
      for (const rowTiles of [true, false]) {
        const cost = rowsPadded * (rowTiles ? byRows : alongPlane) * perFma;
        if (cost < best.cost - 1e-9) best = { MR, NV, rowTiles, cost };
      }
    }
  }
  return { MR: best.MR, NV: best.NV, rowTiles: best.rowTiles };
}

function weightsPlan(
  isa: Isa,
  threads: number,
  layer: ConvLayer,
  keptOut: number,
  keptIn: number,
  stride1: boolean,
  forced: Strategy['backwardWeights'],
): WeightsPlan {
  const [R, S] = layer.kernel;
  const P = layer.outHeight,
    Q = layer.outWidth;
  const useful = (P * Q) / ((P + (R - 1) * layer.dilation[0]) * (Q + (S - 1) * layer.dilation[1]));
  if (forced === 'planes' && !stride1) {
    throw new ArgumentError(
      'options.strategy.backwardWeights',
      forced,
      "'im2row' or 'direct': 'planes' needs stride 1",
    );
  }
  // Direct from three quarters of a filter vector up (against planes lanes that pack per chunk of
  // images: 12 of 16 lanes 0.67-0.81x on 16-32 channels, 1.08x with 64 kept channels; 14 lanes
  // 1.02-1.32x; 16 lanes 1.14-1.19x); with fewer kept filters its vectors run too empty. First
  // layers (C = 1 or 3) with full filter vectors: direct's column-tap tiles beat planes lanes
  // (3->64 3x3 @32 b64: 1.6x, 32 kept 1.8x; 1->32 @28: 2.0x; 3->32 5x5 @64: 1.5x). And with
  // N*P*Q up to 4 vectors of positions, dot lanes run empty and pay their horizontal sums on a
  // short reduction (8 kept of 16 filters, 3x3: direct 1.6-1.8x faster at 1-32 positions, 0.9x at
  // 128, 0.6x at 512).
  //
  // Where a broadcast takes a load slot (AVX2) and 16 registers hold few tiles, 3-tap kernel rows
  // make poor tap tiles: 3 taps need 3 filter vectors (24 filters a panel) to fill 8 accumulators,
  // or 4 broadcasts pad them. Planes lanes beat them on every stride-1 layer with up to 16 vectors
  // of kept filters measured (Zen 3, 2 threads, `bench/engine-ab.ts`): 3->16 3x3 @32 b64 2.4x (8
  // kept) and 1.3x (16); 3->64 @32 b64 1.4-1.7x (32, 45, 48 and 64 kept); 3->128 @32 b32 1.5x;
  // 1->32 @28 b64 1.5x; 3->64 @112 b8 1.2x and @224 b1 1.8x; 8->64 @56 b8 (4 kept channels)
  // 1.8x. From 24 vectors on the tap tiles won (192 kept 1.1x, 256 1.1-1.3x), and 5-tap rows
  // (5 x 2 tiles) keep them: 1->64 5x5 @28 b64 ran 1.3x faster on them, 3->32 5x5 @64 b16 1.0-1.3x
  // slower.
  const vw = isa.vectorWidth;
  const fewPositions = layer.batch * P * Q <= 4 * vw;
  const planesFit = stride1 && useful >= 0.6;
  const tapTiles =
    keptOut >= vw &&
    tapTilesApply(layer, keptIn) &&
    !(planesFit && loadsScarce(isa) && layer.kernel[1] < 5 && keptOut <= 16 * vw);
  const direct = (keptOut >= Math.ceil(0.75 * vw) && keptIn >= 8) || tapTiles || fewPositions;
  const source =
    forced ??
    (pointwiseWeightsApply(layer) && P * Q >= POINTWISE_WEIGHTS_MIN_VECTORS * isa.vectorWidth
      ? 'pointwise'
      : direct
        ? 'direct'
        : planesFit
          ? 'planes'
          : keptOut >= vw
            ? 'direct'
            : 'im2row');
  if (source === 'pointwise') {
    if (!pointwiseWeightsApply(layer))
      throw new ArgumentError(
        'options.strategy.backwardWeights',
        forced,
        "'planes', 'im2row' or 'direct': 'pointwise' needs a stride-1 1x1 kernel without padding",
      );
    return pointwiseWeightsPlan(isa, keptOut, keptIn);
  }
  if (source === 'direct') return directWeightsPlan(isa, threads, layer, keptOut, keptIn);
  const ncol = keptIn * R * S;
  // Per lane chunk: MRW aligned dy loads + NT unaligned x loads (most split a cache line, so count
  // them twice) feed MRW*NT FMAs; with two load and two FMA ports, loads must not outnumber FMAs.
  let best = { MRW: 1, NT: 1, cost: Infinity };
  for (let MRW = 1; MRW <= 8; MRW++) {
    for (let NT = 1; NT <= 16; NT++) {
      if (MRW * NT + MRW + 1 > isa.registers) continue;
      const fmas = MRW * NT;
      const efficiency = fmas / Math.max(fmas, MRW + 2 * NT);
      const padded = (Math.ceil(keptOut / MRW) * MRW * Math.ceil(ncol / NT) * NT) / (keptOut * ncol);
      const cost = (padded / efficiency) * (1 + 1 / fmas);
      if (cost < best.cost - 1e-9) best = { MRW, NT, cost };
    }
  }
  return Object.freeze({ engine: 'dot' as const, source, filtersPerTile: best.MRW, columnsPerTile: best.NT });
}

/**
 * Tap-major direct dw: MT broadcasts x NR = NV vectors of kept filters per step. The MT broadcasts
 * range over kept channels, or, with few kept channels (first layers: C = 1 or 3), over the column
 * taps of one channel, so the tile stays wide.
 */
function pointwiseWeightsApply(layer: ConvLayer): boolean {
  const [R, S] = layer.kernel;
  return R === 1 && S === 1 && layer.stride.every((v) => v === 1) && layer.padding.every((v) => v === 0);
}

// Pointwise broadcasts each row straight from its plane, one run of P*Q floats per image, and pays
// for runs shorter than a few vectors: from 14x14 planes up it beat DirectWeights' packs (Zen 4,
// AVX-512, d=0.5: 1.04-1.5x on 11 ResNet-50 and MobileNet layers at batch 1-8); on 7x7 (runs of 3
// vectors) it ran 0.75-0.8x then, and since direct and pointwise both changed (c3d56b9, 63a481f)
// 0.92-1.07x at batch 1-8 by the VM's phase (ResNet-50's 512 <-> 2048 and 1024 -> 1024; at batch 1
// 1.85x in a slow phase), 0.80-0.84x at batch 16 and 0.91-0.94x at 32 (Zen 4, d=0.5-0.7, both
// orders): direct keeps them. With AVX2's 8-float vectors a 7x7 plane is a run of 6: there pointwise
// ran 1.10-1.21x (Zen 3, d=0.5: ResNet-50 2048 -> 512 and 512 -> 2048 b8 and b32, MobileNet v2
// 960 -> 160 b4), 0.97x on 1024 -> 1024 b8.
const POINTWISE_WEIGHTS_MIN_VECTORS = 6;

/**
 * Vectors along the side that costs least per position: the tile's FMAs over both padded sides,
 * plus the vector side's transposes (~0.4 cycles a float against one cycle per vector FMA).
 */
function pointwiseWeightsPlan(isa: Isa, keptOut: number, keptIn: number): PointwiseWeightsPlan {
  const vw = isa.vectorWidth;
  let best = { vectors: 'filters' as 'filters' | 'channels', MT: 1, NV: 1, cost: Infinity };
  for (const vectors of ['channels', 'filters'] as const) {
    const [vecRows, bcRows] = vectors === 'channels' ? [keptIn, keptOut] : [keptOut, keptIn];
    for (let NV = 1; NV <= 4; NV++) {
      for (let MT = 1; MT <= 16; MT++) {
        if (!tileFits(isa, MT, NV)) continue;
        const vecPadded = Math.ceil(vecRows / (NV * vw)) * NV * vw;
        const bcPadded = Math.ceil(bcRows / MT) * MT;
        const fmas = MT * NV;
        const tile = ((vecPadded * bcPadded) / vw) * loadBound(isa, MT, NV) * (1 + 2 / fmas);
        const cost = tile + 0.4 * vecRows;
        if (cost < best.cost - 1e-9) best = { vectors, MT, NV, cost };
      }
    }
  }
  return Object.freeze({
    engine: 'pointwise' as const,
    source: 'pointwise' as const,
    vectors: best.vectors,
    MT: best.MT,
    NV: best.NV,
    NR: best.NV * vw,
  });
}

function directWeightsPlan(
  isa: Isa,
  threads: number,
  layer: ConvLayer,
  keptOut: number,
  keptIn: number,
): DirectWeightsPlan {
  const taps = tapTilesApply(layer, keptIn)
    ? directWeightsTiling(isa, threads, layer, keptOut, keptIn, 'taps')
    : undefined;
  // Tap tiles need row blocking; where that does not pay (few rows and images), tile channels.
  return taps?.blocking === 'rows' ? taps : directWeightsTiling(isa, threads, layer, keptOut, keptIn, 'channels');
}

/**
 * Consecutive tiles of a row (and of the next rows) run through the same packed weights: kept
 * reduction channels x the tile's taps x NR, plus, for a strided backward-data, the stage of the
 * row its column tiles write. Where that overflows L1, every tile reads its weights again from L2.
 * Measured where FMAs issue at half rate (Zen 4, AVX-512, `bench/tile-ab.ts` in both plan orders,
 * d=0.5 unless said): the tile that fits against the plan without this, forward / backward-data:
 * ResNet's 64 @56 b8 14 x 1 against 14 x 2 1.03x / 1.03-1.05x (against 8 x 3 at d=0.7 1.01x /
 * 1.01x); backward-data of 3x3 /2 128 -> 128 @56 1.10-1.12x (1.06-1.08x at d=0.7), of 64 -> 128 /2
 * @56 1.05-1.07x; VGG's 64 @224 b1 16 x 1 against 14 x 2 1.04-1.05x / 1.04-1.05x; MobileNet v2's
 * 960 -> 160 1x1 @7 b4 forward 8 x 1 against 7 x 3 1.12x; even on 64 @30x90, the 11x11 /4 stem and
 * the forward of 64 -> 128 /2 @56. Where neither fits (128 @28, 256 @14, the forwards of 128 /2
 * @56 and 256 /2 @28), 14 x 1 ran even with 14 x 2 and the step cost keeps the wider tile.
 * On 14 shapes drawn at random among those whose tile this moves (3x3 and 5x5, stride 1-2, 14- to
 * 64-wide planes, batch 2-8): 0.975-1.11x, 11 of 14 faster, geometric mean 1.024x.
 * Full-rate machines keep their scores: a one-vector tile is load-bound there (loadBound), their
 * L1 may hold 48 KiB, and nothing was measured on one.
 */
function directL1Cost(isa: Isa, g: GemmShape, MQ: number, NR: number, columnTiles: boolean): number {
  if (!isa.halfRateFma) return 1;
  const weights = g.reduceChannels * g.tileTaps * NR * 4;
  const stage = columnTiles && g.phases > 1 ? (g.dstW + MQ * g.phases) * NR * 4 : 0;
  return weights + stage <= L1_BYTES ? 1 : L1_OVERFLOW_COST;
}

/** Tiles of column taps: few kept channels, kernel rows of 3 taps or more, output rows of 8 or more. */
function tapTilesApply(layer: ConvLayer, keptIn: number): boolean {
  return keptIn <= 4 && layer.kernel[1] >= 3 && layer.outWidth >= 8;
}

function directWeightsTiling(
  isa: Isa,
  threads: number,
  layer: ConvLayer,
  keptOut: number,
  keptIn: number,
  tile: 'channels' | 'taps',
): DirectWeightsPlan {
  const vw = isa.vectorWidth;
  const [R, S] = layer.kernel,
    P = layer.outHeight,
    Q = layer.outWidth;
  const across = tile === 'taps' ? S : keptIn;
  let best = { MT: 1, NV: 1, cost: Infinity };
  for (let NV = 1; NV <= 4; NV++) {
    for (let MT = 1; MT <= 16; MT++) {
      if (!tileFits(isa, MT, NV)) continue;
      const rowsPadded = (Math.ceil(keptOut / (NV * vw)) * NV * vw) / keptOut;
      const acrossPadded = (Math.ceil(across / MT) * MT) / across;
      const fmas = MT * NV;
      const bound = R * S > 1 ? directLoadBound(isa, MT, NV) : loadBound(isa, MT, NV);
      const cost = rowsPadded * acrossPadded * bound * (1 + 2 / fmas);
      if (cost < best.cost - 1e-9) best = { MT, NV, cost };
    }
  }
  const Mpad = Math.ceil(keptOut / (best.NV * vw)) * best.NV * vw;
  // Images per reduction block: what one work item reads of a block, a panel of packed dy and a
  // group of packed x, should stay in L2 (a strided 1x1 packs only the P x Q grid of x it reads,
  // engine/direct.hpp). Every block reloads and stores every item's partial sums: sizing blocks
  // by all panels and channels instead made 1x1 layers with 1024 kept filters on 7x7 outputs
  // run 3 blocks for 8 images, 1.3-1.5x slower than one.
  const grid = R === 1 && S === 1 && (layer.stride[0] > 1 || layer.stride[1] > 1);
  const bytesPerImage = 4 * (P * Q * best.NV * vw + (grid ? P * Q : layer.inHeight * layer.inWidth) * best.MT);
  const imagesFitting = Math.floor((2 * L2_BUDGET) / bytesPerImage);
  const imagesPerBlock = clamp(imagesFitting, 1, layer.batch);
  // Long rows: blocks of output rows whose packed dy and input rows stay in L2, taken by the
  // threads on their own (ResNet-50's 56x56 layers ran at 2-8% of peak with the whole batch
  // transposed up front and every item streaming it from memory).
  const xRow =
    tile === 'taps'
      ? keptIn * ((Q - 1) * layer.stride[1] + (Math.ceil(S / best.MT) * best.MT - 1) * layer.dilation[1] + 1)
      : Math.ceil(keptIn / best.MT) * best.MT * layer.inWidth;
  const rowBytes = 4 * (Q * Mpad + layer.stride[0] * xRow);
  const fixedBytes = 4 * (R - 1) * layer.dilation[0] * xRow;
  let rowsPerBlock = clamp(Math.floor((L2_BUDGET - fixedBytes) / rowBytes), 1, P);
  // More blocks for the threads, but not below MIN_BLOCK_POSITIONS positions a block: every block
  // reloads and stores each tile's partial sums (a 14x14 1x1 at batch 1 ran 14 one-row blocks).
  const minRows = Math.min(P, Math.ceil(MIN_BLOCK_POSITIONS / Q));
  while (
    rowsPerBlock > minRows &&
    layer.batch * Math.ceil(P / rowsPerBlock) < 4 * threads &&
    Math.ceil(rowsPerBlock / 2) >= minRows
  )
    rowsPerBlock = Math.ceil(rowsPerBlock / 2);
  // Fewer images than threads: row blocking must cut the images up to feed the threads, and each
  // thread then keeps (zeroes, reloads, sums up) private partial sums of all of dw. With 128 KiB of
  // them or more, the threads share image blocks instead (batch 1, d=0.5, Zen 4: 3x3 256 @14,
  // 128 @28, 512 @14, 256 stride 2 @28 and 256 dilation 2 @14 1.11-1.27x, 5x5 128 @17 1.04x). At
  // batch 4-8, whole-batch shared blocks went both ways between runs (0.77-1.01x), and with small
  // partials they lost (64 @56 b1: 0.70x).
  const partialBytes = 4 * Mpad * Math.ceil(keptIn / best.MT) * best.MT * R * S;
  const shareImages =
    tile === 'channels' &&
    layer.batch < threads &&
    partialBytes >= SHARED_PARTIALS_BYTES &&
    imagesFitting >= layer.batch;
  const blocking =
    !shareImages && Q >= 8 && layer.batch * Math.ceil(P / rowsPerBlock) >= 2 * threads ? 'rows' : 'images';
  // Whole images fit: several per block amortize the partial sums' traffic (channel tiles only).
  let imagesPerRowBlock = 1;
  if (blocking === 'rows' && rowsPerBlock === P && tile === 'channels') {
    imagesPerRowBlock = clamp(Math.floor(L2_BUDGET / (P * rowBytes + fixedBytes)), 1, layer.batch);
    while (imagesPerRowBlock > 1 && Math.ceil(layer.batch / imagesPerRowBlock) < 4 * threads)
      imagesPerRowBlock = Math.ceil(imagesPerRowBlock / 2);
  }
  return Object.freeze({
    engine: 'direct' as const,
    source: 'direct' as const,
    tile,
    MT: best.MT,
    NV: best.NV,
    NR: best.NV * vw,
    blocking,
    imagesPerBlock: blocking === 'images' ? imagesPerBlock : imagesPerRowBlock,
    rowsPerBlock: blocking === 'rows' ? rowsPerBlock : P,
  });
}

/**
 * A broadcast register tile (M broadcasts x NV vectors) fits: its accumulators, NV operand vectors
 * and one broadcast in the register file, with enough accumulators (8) to hide FMA latency.
 */
function tileFits(isa: Isa, M: number, NV: number): boolean {
  return M * NV + NV + 1 <= isa.registers && M * NV >= Math.min(8, isa.registers / 2);
}

/**
 * The load bound of a one-vector direct column tile whose kernel rows share their broadcasts
 * (RowShare in engine/direct.hpp: where a broadcast is a load, each source position a kernel row
 * reads is broadcast once for all its column taps), or null where the kernel does not share them.
 * Its conditions are RowShare::APPLIES.
 */
function rowShareLoads(isa: Isa, g: GemmShape, MQ: number): number | null {
  const S = g.kernelW,
    step = g.strides[1];
  if (!loadsScarce(isa) || g.phases !== 1 || S < 2 || step > 2 || MQ + S + 1 > isa.registers) return null;
  const positions = new Set<number>();
  for (let s = 0; s < S; s++) for (let m = 0; m < MQ; m++) positions.add(s * g.dilationW + m * step);
  return Math.max(1, (positions.size + S) / (S * MQ * isa.loadsPerFma));
}

/** Whether a broadcast takes a load slot of its own (AVX2), so that loads may set a tile's pace. */
function loadsScarce(isa: Isa): boolean {
  return isa.loadsPerFma < 1;
}

/**
 * How much slower than its FMAs a GEMM microtile runs when its B columns (NR x the reduction) and
 * A panel do not fit L1 while the A panels stream from beyond L2 (more than the A_BUDGET chunk of
 * engine/gemm.hpp): every panel then reads the tile's B from L2, 1/MR of a vector per FMA, and L2
 * refills L1 with about L2_VECTORS_PER_FMA. Zen 3, AVX2, d=0.5, forward / backward-data, 2 x 40
 * tiles against what this picks: 1024 -> 1024 1x1 @7 b4 (512 x 512 kept, 80 KiB of B) 6 x 16
 * 1.15-1.32x / 1.24x, 2048 -> 512 @14 b1 6 x 16 1.10-1.27x / 1.21x. With all of A in L2 (32 kept
 * rows over 512, 64 KiB) 2 x 40 stayed ahead of 4 x 24 (0.88-0.98x), and with 32 kept in the
 * reduction (10 KiB of B) of 6 x 16 (0.80-0.93x): those keep it. Checked on layers it was not
 * fitted to: 256 -> 1024 @14 b1 d=1 1.15x / 1.20x, 2048 -> 1024 @7 b4 1.18-1.21x / 1.11-1.18x.
 * AVX-512 tiles (more rows in 32 registers) keep their plans: none of 1176 1x1 shapes changed.
 */
function l2Bound(MR: number, NR: number, rows: number, reduce: number): number {
  if (reduce * (NR + MR) * 4 <= L1_BYTES || rows * reduce * 4 <= A_STREAM_BYTES) return 1;
  return Math.max(1, 1 / (MR * L2_VECTORS_PER_FMA));
}

/** How much slower than its FMAs a broadcast tile runs when its M + NV loads a step set the pace. */
function loadBound(isa: Isa, M: number, NV: number, loadsPerFma = isa.loadsPerFma): number {
  return Math.max(1, (M + NV) / (M * NV * loadsPerFma));
}

/**
 * loadBound for the direct engines' tiles, at the machine's FMA rate: where FMAs issue at half
 * rate (halfRateFma) a load slot comes twice per FMA. A Zen 4 (AVX-512 on 256-bit units) ran the
 * one-vector tiles this then picks faster than the 8 x 2 and 8 x 3 ones of the full-rate score
 * (d=0.5 unless said, 2 threads, alternating in one process; forward / backward-data /
 * backward-weights): VGG-16's 64 @32 b64 1.09x / 1.09x / 1.04x (1.03x / 1.04x at d=1), 64 -> 128
 * @16 1.06x / 1.09x / 1.03x, 128 @16 1.07x / 1.06x; 512 @2 b64 at d=0.7 1.13x / 1.01x and @4 0.99x
 * / 0.99x; ResNet-56's 16 -> 32 /2 @32 at d=1 1.11x forward and 1.09x backward-weights, 32 @16 at
 * d=1 1.07x / 1.09x / 1.03x, 32 -> 64 /2 @16 backward-weights 1.14x, 64 @8 1.04x; ResNet-50's 64
 * @56 b8 backward-weights 1.02x; of the shape families, 5x5, 4x4 /2 and 3x3 /2 layers 1.02-1.15x
 * per pass. Backward-weights of 1x1 kernels keep the full-rate bound: with it halved, 16 x 1 tiles
 * ran 0.86x of 8 x 2 on 64 -> 64 1x1 @56 b8 (pointwise) and 0.84x on 64 -> 128 1x1 /2 @56 (direct).
 */
function directLoadBound(isa: Isa, M: number, NV: number): number {
  return loadBound(isa, M, NV, isa.halfRateFma ? 2 * isa.loadsPerFma : isa.loadsPerFma);
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/** The plan as a few lines of text: used by MaskedConv.explain() and the generated C++ header. */
export function describePlan(p: Plan): string[] {
  const conv = (g: ConvPassPlan) =>
    g.engine === 'direct'
      ? `direct (channel-vectorized, ${g.tile} tiles, ${g.rowsPerBlock} rows/block), tile MQ positions x NR channels = ${g.MQ} x ${g.NR}`
      : `${g.source}${
          g.source === 'im2col'
            ? ` (${g.order}-major, ${g.columnsPerBlock} columns/block)`
            : g.source === 'pointwise'
              ? ` (${g.columnsPerBlock} columns/block${g.subsampled ? ', over the dy grid' : ''})`
              : ` (${g.rowsPerBlock} rows/block, ${g.rowTiles ? 'row tiles' : 'tiles along the plane'})`
        }, microtile MR x NR = ${g.MR} x ${g.NR}`;
  const d = p.backwardWeights;
  const weights =
    d.engine === 'pointwise'
      ? `pointwise (vectors along kept ${d.vectors}), tile MT x NR = ${d.MT} x ${d.NR}`
      : d.engine === 'direct'
        ? `direct (tap-major), tile MT ${d.tile === 'taps' ? 'column taps' : 'channels'} x NR filters = ${d.MT} x ${d.NR}, ${
            d.blocking === 'rows'
              ? `${d.imagesPerBlock} image(s) x ${d.rowsPerBlock} rows/block per thread`
              : `${d.imagesPerBlock} images/block`
          }`
        : `${d.source} lanes, ${d.filtersPerTile} filters x ${d.columnsPerTile} (channel, tap) accumulators`;
  return [
    `isa: ${p.isa} (vector width ${p.vectorWidth})`,
    `forward: ${conv(p.forward)}`,
    `backwardData: ${p.backwardData ? conv(p.backwardData) : 'none (inputGrad: false)'}`,
    `backwardWeights: ${weights}`,
  ];
}

/**
 * The regime of a plan: its engine per pass. Masks whose kept counts keep the regime run on the
 * compiled kernel as is; a mask that changes it is worth a re-specialized kernel.
 */
export function regimeOf(p: Plan): string {
  return [p.forward.source, p.backwardData?.source ?? 'none', p.backwardWeights.source].join('/');
}
