// Every kernel path against the float64 reference: random shapes (odd sizes, stride, padding,
// dilation, tiny inputs), masks all/none/one/random, both gradient policies, every ISA here.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultCacheDir } from '../src/codegen/cache.js';
import { conv2d, supportedIsas, type ConvSpec, type MaskedConv } from '../src/index.js';
import { compileMaskedConvGroups, type GroupOptions } from '../src/api/compile.js';
import { FORCED, forcedSpecs, LARGE, OWNED, SPECS } from './kernel-specs.js';
import { refBackwardData, refBackwardWeights, refForward } from './reference.js';
import { expectChannelsZero, expectClose, poison, randomMask, rng, type MaskKind } from './util.js';

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
      const pointwise = { forward: 'pointwise', backwardData: 'pointwise' } as const;
      groups.push({ name: `${isa} owned`, specs: [OWNED], options: { isa, strategy: pointwise } });
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

  it('threads that own pointwise panels zero the pruned channels before, between and after the kept ones', async () => {
    const conv = (await buildAll()).get(`${isa} owned`)![0];
    const l = conv2d(OWNED),
      r = rng(5);
    const plane = l.outHeight * l.outWidth;
    const x = r.uniformArray(l.batch * l.inChannels * plane),
      w = r.uniformArray(l.outChannels * l.inChannels),
      dy = r.uniformArray(l.batch * l.outChannels * plane);
    // Kept runs that leave pruned channels at the head, in between and at the tail.
    const mask = Uint8Array.from({ length: 256 }, (_, c) => (c >= 9 && c < 230 && c % 7 !== 3 ? 1 : 0));
    conv.setMasks({ out: mask, in: mask });
    const y = conv.forward(x, w, undefined, poison(dy.length));
    expectClose(y, refForward(l, x, w, undefined, mask, mask), 1e-5, `${isa} owned forward`);
    const dx = conv.backwardData(dy, w, poison(x.length));
    expectClose(dx, refBackwardData(l, dy, w, mask, mask), 1e-5, `${isa} owned backwardData`);
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
