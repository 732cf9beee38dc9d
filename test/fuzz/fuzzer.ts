// A seeded fuzzer: draws specs, masks, gradient policies, ISAs and engine families, runs all
// three passes against the float64 reference (outputs poisoned, pruned planes of x and dy NaN: the
// kernels must not read them) and shrinks any failure to a minimal case, which is saved as a
// regression (test/fuzz/regressions/*.json, replayed by npm test).
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { conv2d, supportedIsas, type ConvSpec, type IsaName, type MaskedConv } from '../../src/index.js';
import { compileMaskedConvGroups } from '../../src/api/compile.js';
import type { Strategy } from '../../src/schedule/plan.js';
import { refBackwardData, refBackwardWeights, refForward } from '../reference.js';
import { randomMask, relL2, rng, type MaskKind, type Rng } from '../util.js';

export interface FuzzCase {
  spec: ConvSpec;
  isa: IsaName;
  strategy: Strategy;
  soft: boolean;
  masks: { out: number[]; in: number[] };
  seed: number;
  /** Images the calls run (the batch is a run-time size up to spec.batch); default spec.batch. */
  images?: number;
}

export const REGRESSION_DIR = join(dirname(fileURLToPath(import.meta.url)), 'regressions');
const FAMILIES: Strategy[] = [
  {},
  { forward: 'direct', backwardData: 'direct', backwardWeights: 'direct' },
  { forward: 'im2col', backwardData: 'im2col', backwardWeights: 'im2row' },
  { forward: 'planes', backwardData: 'planes', backwardWeights: 'planes' },
  { backwardWeights: 'pointwise' },
];

export function drawCase(r: Rng, seed: number): FuzzCase {
  for (;;) {
    const R = r.int(1, 7),
      S = r.next() < 0.6 ? R : r.int(1, 7);
    const spec: ConvSpec = {
      batch: r.int(1, 5),
      inChannels: r.int(1, 70),
      outChannels: r.int(1, 70),
      inHeight: r.int(1, 16),
      inWidth: r.int(1, 16),
      kernel: [R, S],
      stride: [r.int(1, 3), r.int(1, 3)],
      padding: [r.int(0, R), r.int(0, S)],
      dilation: [r.int(1, 3), r.int(1, 3)],
      bias: r.next() < 0.5,
      density: { out: r.pick([1, 0.7, 0.5, 0.2]), in: r.pick([1, 0.7, 0.5, 0.2]) },
    };
    let layer;
    try {
      layer = conv2d(spec);
    } catch {
      continue; // output < 1: draw again
    }
    const work = layer.batch * layer.inChannels * layer.outChannels * R * S * layer.outHeight * layer.outWidth;
    if (work > 4e6) continue;
    let strategy = r.pick(FAMILIES);
    if (strategy.backwardWeights === 'pointwise') {
      // That engine serves stride-1 1x1 kernels without padding: make the layer one.
      Object.assign(spec, { kernel: [1, 1], stride: [1, 1], padding: [0, 0] });
      layer = conv2d(spec);
    }
    if (strategy.forward === 'planes' && !(layer.stride[0] === 1 && layer.stride[1] === 1)) strategy = {};
    const images = r.next() < 0.3 ? r.int(1, spec.batch) : undefined; // sometimes a partial batch
    return {
      spec,
      strategy,
      seed,
      soft: r.next() < 0.5,
      isa: r.pick(supportedIsas()),
      masks: drawMasks(r, spec),
      ...(images === undefined ? {} : { images }),
    };
  }
}

function drawMasks(r: Rng, spec: ConvSpec): FuzzCase['masks'] {
  const kinds: MaskKind[] = ['all', 'none', 'one', 'random', 'random', 'random'];
  return {
    out: Array.from(randomMask(r, spec.outChannels, r.pick(kinds), spec.density!.out)),
    in: Array.from(randomMask(r, spec.inChannels, r.pick(kinds), spec.density!.in)),
  };
}

/** Run cases (compiled in batches sharing ISA, engines and policy); returns the failures with their reason. */
export async function runCases(cases: FuzzCase[]): Promise<{ c: FuzzCase; reason: string }[]> {
  const groups = new Map<string, FuzzCase[]>();
  for (const c of cases) {
    const k = JSON.stringify([c.isa, c.strategy, c.soft]);
    groups.set(k, [...(groups.get(k) ?? []), c]);
  }
  // One build for every group: a build's fixed cost is most of a one-layer case's time.
  const list = [...groups.values()];
  const convs = await compileMaskedConvGroups(
    list.map((group) => ({
      specs: group.map((c) => c.spec),
      options: { isa: group[0].isa, strategy: group[0].strategy, gradOfPrunedFilters: group[0].soft },
    })),
    { respecialize: false },
  );
  const failures: { c: FuzzCase; reason: string }[] = [];
  list.forEach((group, gi) =>
    group.forEach((c, i) => {
      const reason = check(c, convs[gi][i]);
      if (reason) failures.push({ c, reason });
    }),
  );
  return failures;
}

function check(c: FuzzCase, conv: MaskedConv): string | undefined {
  const n = c.images ?? conv.spec.batch;
  const l = { ...conv.spec, batch: n }, // the reference sees the images the calls run
    r = rng(c.seed);
  const [R, S] = l.kernel;
  const x = r.uniformArray(l.batch * l.inChannels * l.inHeight * l.inWidth),
    w = r.uniformArray(l.outChannels * l.inChannels * R * S);
  const bias = l.bias ? r.uniformArray(l.outChannels) : undefined;
  const dy = r.uniformArray(l.batch * l.outChannels * l.outHeight * l.outWidth);
  conv.setMasks(c.masks);
  const poison = (n: number) => new Float32Array(n).fill(NaN);
  // The kernels never read a pruned channel's planes of x, nor a pruned filter's planes of dy (a
  // soft weight gradient excepted: it is the pruned filters' gradient). They hold NaN here, so a
  // read shows in the result; compact activations leave those planes unwritten.
  const xp = fillPlanes(x, n, c.masks.in, l.inHeight * l.inWidth),
    dyp = fillPlanes(dy, n, c.masks.out, l.outHeight * l.outWidth);
  const y = conv.forward(xp, w, bias, poison(dy.length));
  const dx = conv.backwardData(dyp, w, poison(x.length));
  // Half the soft cases say dy is zero on the pruned filters (as a compact dy is): then they read
  // none of it either, and their gradient rows are zero.
  const prunedDyIsZero = c.soft && c.seed % 2 === 1;
  const g = conv.backwardWeights(
    c.soft && !prunedDyIsZero ? dy : dyp,
    xp,
    poison(w.length),
    l.bias ? poison(l.outChannels) : undefined,
    { prunedDyIsZero },
  );
  const dyRef = prunedDyIsZero ? fillPlanes(dy, n, c.masks.out, l.outHeight * l.outWidth, 0) : dy;
  const ref = refBackwardWeights(l, dyRef, x, c.masks.out, c.masks.in, c.soft);
  const checks: [string, Float32Array, ArrayLike<number>][] = [
    ['forward', y, refForward(l, x, w, bias, c.masks.out, c.masks.in)],
    ['backwardData', dx, refBackwardData(l, dy, w, c.masks.out, c.masks.in)],
    ['backwardWeights.dw', g.dw, ref.dw],
  ];
  if (l.bias) checks.push(['backwardWeights.dbias', g.dbias!, ref.dbias]);
  for (const [name, actual, expected] of checks) {
    const err = relL2(actual, expected);
    if (!(err <= 1e-5)) return `${name}: rel L2 ${err}`;
    for (let i = 0; i < actual.length; i++)
      if (expected[i] === 0 && actual[i] !== 0) return `${name}: [${i}] = ${actual[i]}, expected exactly 0`;
  }
  return undefined;
}

/** A copy of NCHW `a` with the planes of the channels `mask` prunes set to `value` (default NaN). */
function fillPlanes(a: Float32Array, n: number, mask: ArrayLike<number>, plane: number, value = NaN): Float32Array {
  const out = a.slice();
  const C = mask.length;
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < C; ch++) if (!mask[ch]) out.fill(value, (i * C + ch) * plane, (i * C + ch + 1) * plane);
  return out;
}

/** Smaller variants of a case: each dimension halved or set to its minimum, masks kept consistent. */
function shrinkSteps(c: FuzzCase): FuzzCase[] {
  const out: FuzzCase[] = [];
  const s = c.spec;
  const with_ = (patch: Partial<ConvSpec>, masks = c.masks): FuzzCase | undefined => {
    const spec = { ...s, ...patch };
    try {
      conv2d(spec);
    } catch {
      return undefined;
    }
    return { ...c, spec, masks };
  };
  const shrinkN = (v: number) =>
    [1, Math.floor(v / 2), v - 1].filter((n, i, a) => n >= 1 && n < v && a.indexOf(n) === i);
  for (const b of shrinkN(s.batch)) {
    const shrunk = with_({ batch: b });
    if (shrunk) out.push(c.images === undefined ? shrunk : { ...shrunk, images: Math.min(c.images, b) });
  }
  if (c.images !== undefined) for (const n of shrinkN(c.images)) out.push({ ...c, images: n });
  for (const n of shrinkN(s.outChannels))
    out.push(with_({ outChannels: n }, { ...c.masks, out: c.masks.out.slice(0, n) })!);
  for (const n of shrinkN(s.inChannels))
    out.push(with_({ inChannels: n }, { ...c.masks, in: c.masks.in.slice(0, n) })!);
  for (const h of shrinkN(s.inHeight)) out.push(with_({ inHeight: h })!);
  for (const w of shrinkN(s.inWidth)) out.push(with_({ inWidth: w })!);
  for (const key of ['stride', 'dilation'] as const) {
    const [a, b] = s[key] as [number, number];
    if (a > 1) out.push(with_({ [key]: [1, b] })!);
    if (b > 1) out.push(with_({ [key]: [a, 1] })!);
  }
  const [ph, pw] = s.padding as [number, number];
  if (ph > 0) out.push(with_({ padding: [0, pw] })!);
  if (pw > 0) out.push(with_({ padding: [ph, 0] })!);
  if (s.bias) out.push(with_({ bias: false })!);
  return out.filter(Boolean);
}

/** Greedy shrinking: take any smaller variant that still fails until none does. */
export async function shrink(failing: FuzzCase, log: (s: string) => void = () => {}): Promise<FuzzCase> {
  let current = failing;
  for (let round = 0; round < 60; round++) {
    const candidates = shrinkSteps(current);
    const failures = candidates.length ? await runCases(candidates) : [];
    if (!failures.length) break;
    current = failures[0].c;
    log(`shrunk to ${JSON.stringify(current.spec)}`);
  }
  return current;
}

export function saveRegression(c: FuzzCase, reason: string): string {
  mkdirSync(REGRESSION_DIR, { recursive: true });
  const file = join(
    REGRESSION_DIR,
    `${createHash('sha256').update(JSON.stringify(c)).digest('hex').slice(0, 12)}.json`,
  );
  writeFileSync(file, `${JSON.stringify({ reason, case: c }, null, 1)}\n`);
  return file;
}

/**
 * `count` cases; every `masksPerSpec` consecutive cases share spec, ISA, engines and policy
 * and differ in masks and data, so one compiled kernel serves them all (masks are run-time
 * state, the compile is what costs: the long run uses this to test 10,000 cases in an hour).
 */
export function drawCases(seed: number, count: number, masksPerSpec = 1): FuzzCase[] {
  const r = rng(seed);
  const cases: FuzzCase[] = [];
  for (let i = 0; i < count; i++) {
    const id = seed * 100003 + i;
    cases.push(
      i % masksPerSpec ? { ...cases[i - 1], seed: id, masks: drawMasks(r, cases[i - 1].spec) } : drawCase(r, id),
    );
  }
  return cases;
}
