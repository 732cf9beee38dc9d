// The shapes every kernel path is checked on (test/kernels.test.ts runs them against the
// reference on the ISAs this machine has; test/codegen/isa-build.test.ts compiles them for the others).
import { conv2d, supportedIsas, type ConvSpec } from '../src/index.js';
import type { Strategy } from '../src/schedule/plan.js';
import { rng, type Rng } from './util.js';

/** Hand-picked shapes that force each plan variant, then seeded random ones. */
const FIXED: ConvSpec[] = [
  { batch: 2, inChannels: 19, outChannels: 37, inHeight: 12, inWidth: 11, kernel: 3, padding: 1, bias: true },
  { batch: 3, inChannels: 130, outChannels: 17, inHeight: 2, inWidth: 2, kernel: 3, padding: 1 }, // 2x2 output: position-major im2col
  { batch: 2, inChannels: 33, outChannels: 70, inHeight: 4, inWidth: 4, kernel: 3, padding: 1, bias: true },
  { batch: 2, inChannels: 16, outChannels: 24, inHeight: 9, inWidth: 7, kernel: 1 }, // 1x1
  { batch: 2, inChannels: 6, outChannels: 10, inHeight: 11, inWidth: 13, kernel: 3, stride: 2, padding: 1 }, // strided bwd-data
  { batch: 1, inChannels: 3, outChannels: 5, inHeight: 2, inWidth: 3, kernel: [5, 4], padding: [3, 2] }, // input smaller than the window
  {
    batch: 4,
    inChannels: 7,
    outChannels: 9,
    inHeight: 10,
    inWidth: 10,
    kernel: [3, 2],
    dilation: [2, 3],
    padding: [2, 3],
  },
  { batch: 1, inChannels: 3, outChannels: 64, inHeight: 20, inWidth: 20, kernel: 7, stride: 3, padding: 4, bias: true },
  { batch: 2, inChannels: 1, outChannels: 1, inHeight: 5, inWidth: 5, kernel: 2 },
  { batch: 4, inChannels: 32, outChannels: 40, inHeight: 40, inWidth: 40, kernel: 3, padding: 1 }, // dw over several image blocks
  { batch: 3, inChannels: 40, outChannels: 33, inHeight: 7, inWidth: 7, kernel: 1, stride: 2 }, // strided 1x1 (projection)
  { batch: 4, inChannels: 12, outChannels: 18, inHeight: 11, inWidth: 10, kernel: 1, stride: [3, 2] }, // uneven strides, no padding (pointwise)
  { batch: 1, inChannels: 70, outChannels: 20, inHeight: 5, inWidth: 9, kernel: 1, padding: 1, bias: true }, // padded 1x1
  { batch: 2, inChannels: 17, outChannels: 65, inHeight: 14, inWidth: 13, kernel: 1, bias: true }, // 1x1, columns cross images
  { batch: 2, inChannels: 3, outChannels: 40, inHeight: 37, inWidth: 35, kernel: 7, stride: 2, padding: 3 }, // stem: dw tiles over column taps
  { batch: 21, inChannels: 20, outChannels: 33, inHeight: 8, inWidth: 8, kernel: 3, padding: 1 }, // dw row blocks of 2 whole images
  { batch: 4, inChannels: 5, outChannels: 7, inHeight: 30, inWidth: 30, kernel: 3, padding: 1 }, // dot dw over lane chunks
  // strided, padded 1x1: backward-data over the dy grid, outputs in the padding store nowhere
  { batch: 2, inChannels: 9, outChannels: 21, inHeight: 13, inWidth: 11, kernel: 1, stride: [2, 3], padding: [1, 0] },
  // strided, padded 1x1 on a larger plane: backward-weights packs the x grid in row blocks
  { batch: 2, inChannels: 24, outChannels: 40, inHeight: 30, inWidth: 34, kernel: 1, stride: 2, padding: 1 },
  // 1 MiB and more of pruned channels in y and dx: zeroed with streaming stores
  { batch: 4, inChannels: 128, outChannels: 128, inHeight: 40, inWidth: 40, kernel: 1 },
  // ... and on 7x7 planes, where gaps under 8 vectors take plain stores
  { batch: 16, inChannels: 16, outChannels: 1024, inHeight: 7, inWidth: 7, kernel: 1 },
  // weight panels of 64 KiB or more, fewer than two a thread: packed in slices of their channels.
  // 1x1 forward by runs (all kept) and by row windows (random masks), 1x1 backward-data by
  // neighbour rows (all kept), strided 3x3 forward by runs and backward-data entry by entry
  // (several tap classes)
  { batch: 2, inChannels: 2048, outChannels: 32, inHeight: 3, inWidth: 3, kernel: 1 },
  { batch: 2, inChannels: 32, outChannels: 512, inHeight: 5, inWidth: 5, kernel: 1 },
  { batch: 2, inChannels: 128, outChannels: 64, inHeight: 8, inWidth: 8, kernel: 3, stride: 2, padding: 1 },
  // narrow planes: backward-weights packs and reduces blocks of 4 images, the last one partial
  { batch: 5, inChannels: 8, outChannels: 20, inHeight: 300, inWidth: 5, kernel: 3, padding: 1 },
  // 72 channels x 9 taps a filter row: the forward packs rows in several 64-float chunks, ragged lane masks
  { batch: 2, inChannels: 72, outChannels: 40, inHeight: 6, inWidth: 5, kernel: 3, padding: 1, bias: true },
  // 1x1 on 132 positions: pointwise backward-weights, 3 images (blocks) shared by both threads
  { batch: 3, inChannels: 160, outChannels: 136, inHeight: 12, inWidth: 11, kernel: 1 },
  // stride-2 1x1 on 23-wide grid rows: the forward copies each row's even columns 16 at a time, then 7
  { batch: 2, inChannels: 20, outChannels: 24, inHeight: 6, inWidth: 45, kernel: 1, stride: 2 },
  // stride-2 1x1 with 31-wide rows (16-column grid rows): backward-data's spread stores end one
  // float short of 2 vectors at each odd row end, and 9 rows leave an odd last row to zero
  { batch: 2, inChannels: 20, outChannels: 24, inHeight: 9, inWidth: 31, kernel: 1, stride: 2 },
  // 1x1 strided down the rows only: backward-data stores whole vectors and runs along dx rows
  { batch: 2, inChannels: 18, outChannels: 20, inHeight: 10, inWidth: 37, kernel: 1, stride: [2, 1] },
  // batch 1 with 12-wide rows and 585 KiB of dw sums a thread: backward-weights shares image blocks
  { batch: 1, inChannels: 130, outChannels: 100, inHeight: 12, inWidth: 12, kernel: 3, padding: 1 },
];

function randomSpec(r: Rng): ConvSpec {
  for (;;) {
    const R = r.int(1, 7),
      S = r.next() < 0.7 ? R : r.int(1, 7);
    const spec: ConvSpec = {
      batch: r.int(1, 4),
      inChannels: r.pick([1, 2, 3, 5, 8, 13, 16, 17, 31, 40, 64, 65, 130]),
      outChannels: r.pick([1, 2, 3, 7, 8, 15, 16, 24, 33, 48, 64, 100]),
      inHeight: r.int(1, 14),
      inWidth: r.int(1, 14),
      kernel: [R, S],
      stride: [r.int(1, 3), r.int(1, 3)],
      padding: [r.int(0, R), r.int(0, S)],
      dilation: [r.int(1, 3), r.int(1, 3)],
      bias: r.next() < 0.5,
    };
    const work = spec.batch * spec.inChannels * spec.outChannels * R * S * spec.inHeight * spec.inWidth;
    try {
      if (work < 3e6) {
        conv2d(spec);
        return spec;
      }
    } catch {
      /* output < 1: draw again */
    }
  }
}

const r0 = rng(20261125);
// Shapes added later go after the random ones: a shape's index seeds its data, and moving the
// others would redraw theirs.
const ADDED: ConvSpec[] = [
  // One vector of rows on AVX2: direct tiles share broadcasts across a kernel row's column taps
  // (RowShare in engine/direct.hpp), with span-bounded first and last tiles; forward at stride 1
  // and 2, backward-data at stride 1.
  { batch: 2, inChannels: 9, outChannels: 8, inHeight: 9, inWidth: 17, kernel: 3, padding: 1 },
  { batch: 2, inChannels: 8, outChannels: 9, inHeight: 9, inWidth: 17, kernel: 3, padding: 1, bias: true },
  { batch: 2, inChannels: 10, outChannels: 7, inHeight: 15, inWidth: 23, kernel: 3, stride: 2, padding: 1 },
  // Weights outweigh the packed source: each thread packs its own run of weight panels and runs
  // them over every block (DirectPass owned panels), one block and three.
  { batch: 1, inChannels: 128, outChannels: 256, inHeight: 5, inWidth: 6, kernel: 3, padding: 1 },
  { batch: 3, inChannels: 128, outChannels: 192, inHeight: 7, inWidth: 7, kernel: 3, padding: 1, bias: true },
  // More kept input channels than backward-data columns: under pointwise each thread packs its own
  // transposed weight panels (GemmPass::packTransposedRange), stride 1 and 2, last panel partial.
  { batch: 2, inChannels: 150, outChannels: 40, inHeight: 4, inWidth: 5, kernel: 1 },
  { batch: 1, inChannels: 200, outChannels: 24, inHeight: 9, inWidth: 9, kernel: 1, stride: 2 },
  // 32-256 KiB of packed weights, less than the packed source: each thread of a direct pass packs
  // all of them into a copy of its own (DirectPass private weights).
  { batch: 8, inChannels: 64, outChannels: 64, inHeight: 8, inWidth: 8, kernel: 3, padding: 1 },
];
export const SPECS = [...FIXED, ...Array.from({ length: 15 }, () => randomSpec(r0)), ...ADDED];

// A 1x1 whose forward and backward-data each move more than 17 MiB (kept inputs read + outputs
// written): pointwise writes its results with streaming stores there (engine/common.hpp,
// STREAM_RESULTS_BYTES), when the output is 64-byte aligned, as the runtime's allocated outputs are.
export const LARGE: ConvSpec = { batch: 2, inChannels: 64, outChannels: 64, inHeight: 160, inWidth: 160, kernel: 1 };

// A pointwise 1x1 with more kept rows than columns in both passes: the threads own runs of weight
// panels and each zeroes the pruned channels next to its own (GemmPass::runPointwise), the last
// thread also those after the last kept channel, which random masks seldom leave.
// (Two threads need 2 MFLOP a call: kernel.cpp.hbs, MIN_FLOPS_PER_THREAD.)
export const OWNED: ConvSpec = { batch: 2, inChannels: 256, outChannels: 256, inHeight: 5, inWidth: 5, kernel: 1 };

// Forced strategies over a subset of the shapes, so every engine meets odd sizes on every ISA
// (the heuristic alone would leave some engines untried on some shapes).
export const FORCED: { name: string; strategy: Strategy; specs: number[] }[] = [
  // Direct on the odd shapes (the heuristic already runs it on most of the even ones): keeps npm test near 10 minutes.
  {
    name: 'direct',
    strategy: { forward: 'direct', backwardData: 'direct', backwardWeights: 'direct' },
    specs: SPECS.map((_, i) => i).filter((i) => i % 2 === 1),
  },
  // im2col runs only when forced or tuned (direct, planes or pointwise beat it on every measured
  // layer): every fourth shape, both column orders among them; the fuzzer forces it on more.
  {
    name: 'im2col/im2row',
    strategy: { forward: 'im2col', backwardData: 'im2col', backwardWeights: 'im2row' },
    specs: SPECS.map((_, i) => i).filter((i) => i % 4 === 0),
  },
  {
    name: 'pointwise',
    strategy: { forward: 'pointwise', backwardData: 'pointwise' },
    specs: SPECS.map((s, i) => [s, i] as const)
      .filter(([s]) => conv2d(s).kernel.every((v) => v === 1))
      .map(([, i]) => i),
  },
  {
    name: 'pointwise backward-weights',
    strategy: { backwardWeights: 'pointwise' },
    specs: SPECS.map((s, i) => [conv2d(s), i] as const)
      .filter(([l]) => [...l.kernel, ...l.stride].every((v) => v === 1) && l.padding.every((v) => v === 0))
      .map(([, i]) => i),
  },
  {
    name: 'planes',
    strategy: { forward: 'planes', backwardData: 'planes', backwardWeights: 'planes' },
    specs: SPECS.map((s, i) => [s, i] as const)
      .filter(([s, i]) => conv2d(s).stride.every((v) => v === 1) && i % 2 === 1)
      .map(([, i]) => i),
  },
];

// The shapes a forced strategy runs on one ISA: all of them on the machine's best ISA (what its
// users run), every other one on the ISAs below it (scalar, and AVX2 on an AVX-512 machine),
// which keeps npm test near 10 minutes; the fuzzer draws more engine and ISA pairs.
export function forcedSpecs(f: (typeof FORCED)[number], isa: string): number[] {
  return isa === supportedIsas()[0] ? f.specs : f.specs.filter((_, j) => j % 2 === 0);
}
