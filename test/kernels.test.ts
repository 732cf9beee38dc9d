// Every kernel path against the float64 reference: random shapes (odd sizes, stride, padding,
// dilation, tiny inputs), masks all/none/one/random, both gradient policies, every ISA here.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultCacheDir } from '../src/codegen/cache.js';
import { conv2d, supportedIsas, type ConvSpec, type MaskedConv } from '../src/index.js';
import { compileMaskedConvGroups, type GroupOptions } from '../src/api/compile.js';
import type { Strategy } from '../src/schedule/plan.js';
import { refBackwardData, refBackwardWeights, refForward } from './reference.js';
import { expectChannelsZero, expectClose, poison, randomMask, rng, type MaskKind, type Rng } from './util.js';

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
const SPECS = [...FIXED, ...Array.from({ length: 15 }, () => randomSpec(r0))];
const MASK_CASES: [MaskKind, MaskKind][] = [
  ['all', 'all'],
  ['random', 'random'],
  ['none', 'random'],
  ['random', 'none'],
  ['one', 'one'],
];

interface Case {
  spec: ConvSpec;
  x: Float32Array;
  w: Float32Array;
  bias?: Float32Array;
  dy: Float32Array;
  masks: { out: Uint8Array; in: Uint8Array }[];
}

function makeCase(spec: ConvSpec, seed: number): Case {
  const l = conv2d(spec),
    r = rng(seed);
  const [R, S] = l.kernel;
  return {
    spec,
    x: r.uniformArray(l.batch * l.inChannels * l.inHeight * l.inWidth),
    w: r.uniformArray(l.outChannels * l.inChannels * R * S),
    bias: l.bias ? r.uniformArray(l.outChannels) : undefined,
    dy: r.uniformArray(l.batch * l.outChannels * l.outHeight * l.outWidth),
    masks: MASK_CASES.map(([o, i]) => ({
      out: randomMask(r, l.outChannels, o, 0.6),
      in: randomMask(r, l.inChannels, i, 0.6),
    })),
  };
}

const CASES = SPECS.map((s, i) => makeCase(s, 1000 + i));

// A 1x1 whose forward and backward-data each move more than 17 MiB (kept inputs read + outputs
// written): pointwise writes its results with streaming stores there (engine/common.hpp,
// STREAM_RESULTS_BYTES), when the output is 64-byte aligned, as the runtime's allocated outputs are.
const LARGE: ConvSpec = { batch: 2, inChannels: 64, outChannels: 64, inHeight: 160, inWidth: 160, kernel: 1 };
const LARGE_CASE = makeCase(LARGE, 77);

// The reference is the slow part: compute it once per case and mask, share it across ISAs.
const refs = new Map<
  string,
  { y: Float64Array; dx: Float64Array; soft: Map<boolean, { dw: Float64Array; dbias: Float64Array }> }
>();
function reference(c: Case, mi: number, soft: boolean) {
  const key = `${CASES.indexOf(c)}:${mi}`;
  const l = conv2d(c.spec),
    m = c.masks[mi];
  let e = refs.get(key);
  if (!e) {
    e = {
      y: refForward(l, c.x, c.w, c.bias, m.out, m.in),
      dx: refBackwardData(l, c.dy, c.w, m.out, m.in),
      soft: new Map(),
    };
    refs.set(key, e);
  }
  if (!e.soft.has(soft)) e.soft.set(soft, refBackwardWeights(l, c.dy, c.x, m.out, m.in, soft));
  return { y: e.y, dx: e.dx, ...e.soft.get(soft)! };
}

function checkAll(conv: MaskedConv, c: Case, soft: boolean, label: string) {
  const l = conv.spec;
  const [R, S] = l.kernel;
  const yShape = [l.batch, l.outChannels, l.outHeight, l.outWidth] as const;
  const xShape = [l.batch, l.inChannels, l.inHeight, l.inWidth] as const;
  const wShape = [l.outChannels, l.inChannels, R, S] as const;
  c.masks.forEach((m, mi) => {
    const tag = `${label} mask#${mi}`;
    conv.setMasks(m);
    const ref = reference(c, mi, soft);
    const y = conv.forward(c.x, c.w, c.bias, poison(c.dy.length));
    expectClose(y, ref.y, 1e-5, `${tag} forward`);
    expectChannelsZero(y, yShape, 1, m.out, `${tag} forward pruned`);
    const dx = conv.backwardData(c.dy, c.w, poison(c.x.length));
    expectClose(dx, ref.dx, 1e-5, `${tag} backwardData`);
    expectChannelsZero(dx, xShape, 1, m.in, `${tag} backwardData pruned`);
    const g = conv.backwardWeights(c.dy, c.x, poison(c.w.length), l.bias ? poison(l.outChannels) : undefined);
    expectClose(g.dw, ref.dw, 1e-5, `${tag} backwardWeights dw`);
    expectChannelsZero(g.dw, wShape, 1, m.in, `${tag} dw pruned channels`);
    if (!soft) expectChannelsZero(g.dw, wShape, 0, m.out, `${tag} dw pruned filters`);
    if (l.bias) expectClose(g.dbias!, ref.dbias, 1e-5, `${tag} dbias`);
    else expect(g.dbias).toBeUndefined();
  });
}

/**
 * A partial batch (n < spec.batch images, the batch is a run-time size): the same kernel on the
 * first n images, against the reference on those images, with mask case #1 (random). Outputs are
 * views of poisoned full-batch arrays: the tail past n images must stay untouched.
 */
const partialRefs = new Map<Case, { n: number; dw: Float64Array; dbias: Float64Array }>();
function checkPartialBatch(conv: MaskedConv, c: Case, label: string) {
  const l = conv.spec;
  if (l.batch < 2) return;
  const m = c.masks[1],
    full = reference(c, 1, false);
  const X = l.inChannels * l.inHeight * l.inWidth,
    Y = l.outChannels * l.outHeight * l.outWidth;
  let e = partialRefs.get(c);
  if (!e) {
    const n = Math.ceil(l.batch / 2);
    const g = refBackwardWeights(
      { ...l, batch: n },
      c.dy.subarray(0, n * Y),
      c.x.subarray(0, n * X),
      m.out,
      m.in,
      false,
    );
    e = { n, ...g };
    partialRefs.set(c, e);
  }
  const n = e.n,
    tag = `${label} partial batch ${n}/${l.batch}`;
  conv.setMasks(m);
  const yAll = poison(l.batch * Y),
    dxAll = poison(l.batch * X);
  const y = conv.forward(c.x.subarray(0, n * X), c.w, c.bias, yAll.subarray(0, n * Y));
  expectClose(y, full.y.subarray(0, n * Y), 1e-5, `${tag} forward`);
  const dx = conv.backwardData(c.dy.subarray(0, n * Y), c.w, dxAll.subarray(0, n * X));
  expectClose(dx, full.dx.subarray(0, n * X), 1e-5, `${tag} backwardData`);
  for (const [name, tail] of [
    ['y', yAll.subarray(n * Y)],
    ['dx', dxAll.subarray(n * X)],
  ] as const)
    expect(
      tail.every((v) => Number.isNaN(v)),
      `${tag}: ${name} written past image ${n}`,
    ).toBe(true);
  const g = conv.backwardWeights(
    c.dy.subarray(0, n * Y),
    c.x.subarray(0, n * X),
    poison(c.w.length),
    l.bias ? poison(l.outChannels) : undefined,
  );
  expectClose(g.dw, e.dw, 1e-5, `${tag} backwardWeights dw`);
  if (l.bias) expectClose(g.dbias!, e.dbias, 1e-5, `${tag} dbias`);
  // The allocated form sizes its output by the call's images.
  expect(conv.forward(c.x.subarray(0, X), c.w, c.bias).length, `${tag} allocated y`).toBe(Y);
}

// Forced strategies over a subset of the shapes, so every engine meets odd sizes on every ISA
// (the heuristic alone would leave some engines untried on some shapes).
const FORCED: { name: string; strategy: Strategy; specs: number[] }[] = [
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
function forcedSpecs(f: (typeof FORCED)[number], isa: string): number[] {
  return isa === supportedIsas()[0] ? f.specs : f.specs.filter((_, j) => j % 2 === 0);
}

// Every ISA's kernels, heuristic and forced, in one addon: one build instead of one per ISA and strategy.
let built: Promise<Map<string, MaskedConv[]>> | undefined;
function buildAll(): Promise<Map<string, MaskedConv[]>> {
  built ??= (async () => {
    const groups: { name: string; specs: ConvSpec[]; options: GroupOptions }[] = [];
    for (const isa of supportedIsas()) {
      groups.push({ name: `${isa} hard`, specs: SPECS, options: { isa } });
      // Same binary (the gradient policy is a run-time row list): shared units.
      groups.push({ name: `${isa} soft`, specs: SPECS, options: { isa, gradOfPrunedFilters: true } });
      groups.push({ name: `${isa} large`, specs: [LARGE], options: { isa } });
      for (const f of FORCED)
        groups.push({
          name: `${isa} ${f.name}`,
          specs: forcedSpecs(f, isa).map((i) => SPECS[i]),
          options: { isa, strategy: f.strategy },
        });
    }
    const convs = await compileMaskedConvGroups(groups, { respecialize: false });
    return new Map(groups.map((g, i) => [g.name, convs[i]]));
  })();
  return built;
}

// The microkernels take their register tile by reference; left out of line, the tile lives in
// memory (a unit of two layers once ran 8x8-plane passes 2.3x slower that way). The addon holding
// every spec, ISA and engine must contain none of them as a function of its own.
it('the microkernels are inlined into their passes in an addon of many layers', async () => {
  const keys = new Set([...(await buildAll()).values()].flat().map((c) => c.cacheKey));
  for (const key of keys) {
    const symbols = execFileSync('nm', ['-C', join(defaultCacheDir(), `${key}.node`)], {
      encoding: 'utf8',
      maxBuffer: 1 << 28,
    });
    expect(symbols, key).toMatch(/layer\d+::/); // the symbol table is there to check
    expect(symbols, key).not.toMatch(/(bcastKernel|bcastKernelSpan|spanTaps|microkernel|broadcastStep)</);
    expect(symbols, key).not.toMatch(/::(tapTile|tile)\(/);
  }
});

describe.each(supportedIsas())('kernels on %s', (isa) => {
  let hard: MaskedConv[];
  let soft: MaskedConv[];
  const forced = new Map<string, MaskedConv[]>();
  beforeAll(async () => {
    const all = await buildAll();
    hard = all.get(`${isa} hard`)!;
    soft = all.get(`${isa} soft`)!;
    for (const f of FORCED) forced.set(f.name, all.get(`${isa} ${f.name}`)!);
  });

  it.each(SPECS.map((s, i) => [i, JSON.stringify(s)] as const))('spec %i %s matches the reference', (i) => {
    checkAll(hard[i], CASES[i], false, `${isa} spec#${i} hard`);
    checkAll(soft[i], CASES[i], true, `${isa} spec#${i} soft`);
    checkPartialBatch(hard[i], CASES[i], `${isa} spec#${i}`);
  });

  it('a 1x1 that moves more than the cache holds writes streaming stores that match the reference', async () => {
    const conv = (await buildAll()).get(`${isa} large`)![0];
    const m = LARGE_CASE.masks[1]; // random, 0.6 kept
    const kept = (mask: Uint8Array) => mask.reduce((a, v) => a + v, 0);
    const plane = 160 * 160;
    // Both passes cross the streaming threshold (bytes of kept inputs read plus outputs written).
    expect(4 * 2 * plane * (kept(m.in) + LARGE.outChannels)).toBeGreaterThanOrEqual(17 * 2 ** 20);
    expect(4 * 2 * plane * (kept(m.out) + LARGE.inChannels)).toBeGreaterThanOrEqual(17 * 2 ** 20);
    conv.setMasks(m);
    const l = conv2d(LARGE),
      c = LARGE_CASE;
    const ref = { y: refForward(l, c.x, c.w, undefined, m.out, m.in), dx: refBackwardData(l, c.dy, c.w, m.out, m.in) };
    // Allocated outputs are 64-byte aligned; poisoned, then written again in place.
    const y = conv.forward(LARGE_CASE.x, LARGE_CASE.w).fill(NaN);
    expectClose(conv.forward(LARGE_CASE.x, LARGE_CASE.w, undefined, y), ref.y, 1e-5, `${isa} large forward`);
    const dx = conv.backwardData(LARGE_CASE.dy, LARGE_CASE.w).fill(NaN);
    expectClose(conv.backwardData(LARGE_CASE.dy, LARGE_CASE.w, dx), ref.dx, 1e-5, `${isa} large backwardData`);
  });

  it.each(FORCED.map((f) => [f.name] as const))('strategy %s matches the reference on its shapes', (name) => {
    const f = FORCED.find((g) => g.name === name)!;
    forcedSpecs(f, isa).forEach((specIndex, j) => {
      checkAll(forced.get(name)![j], CASES[specIndex], false, `${isa} ${name} spec#${specIndex}`);
      checkPartialBatch(forced.get(name)![j], CASES[specIndex], `${isa} ${name} spec#${specIndex}`);
    });
  });

  it('the heuristic plans use several engines', () => {
    const used = new Set(
      hard.flatMap((c) => [c.plan.forward.source, c.plan.backwardData!.source, c.plan.backwardWeights.source]),
    );
    for (const v of ['planes', 'direct', 'pointwise']) expect(used, v).toContain(v);
  });

  it('changing masks does not recompile and reuses the kernel', () => {
    const conv = hard[0];
    const before = conv.cacheKey;
    checkAll(conv, CASES[0], false, `${isa} remask`);
    expect(conv.cacheKey).toBe(before);
  });
});
