// Shared test helpers: seeded randomness, masks, NaN-poisoned buffers and comparison/assertion helpers.
// Seeded so every failure reproduces; assertions throw descriptive Errors usable from any test runner.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drawKept } from '../src/runtime/masks.js';
import type { Mask } from './reference.js';

/** A new empty folder under the test run's temporary folder (global-setup.ts), removed with it. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(process.env.MASKACC_TEST_TMP ?? tmpdir(), `${prefix}-`));
}

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [lo, hiInclusive]. */
  int(lo: number, hiInclusive: number): number;
  pick<T>(arr: readonly T[]): T;
  /** Standard normal samples (Box-Muller). */
  normalArray(n: number): Float32Array;
  uniformArray(n: number, lo?: number, hi?: number): Float32Array;
}

/** mulberry32: tiny, fast, good enough for test data, and identical on every platform. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int(lo, hi) {
      if (hi < lo) throw new Error(`rng.int: empty range [${lo}, ${hi}]`);
      return lo + Math.floor(next() * (hi - lo + 1));
    },
    pick(arr) {
      if (arr.length === 0) throw new Error('rng.pick: empty array');
      return arr[Math.floor(next() * arr.length)];
    },
    normalArray(n) {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const u = 1 - next(); // (0,1] so log() is finite
        out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
      }
      return out;
    },
    uniformArray(n, lo = -1, hi = 1) {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * next();
      return out;
    },
  };
}

/** n flags with exactly `keep` of them set, chosen uniformly at random (drawKept over r). */
export function keptAtRandom(r: Rng, n: number, keep: number): Uint8Array {
  const m = new Uint8Array(n);
  for (const i of drawKept(n, keep, r.next)) m[i] = 1;
  return m;
}

export type MaskKind = 'all' | 'none' | 'one' | 'random';

/** 'one' keeps exactly one random entry; 'random' keeps each with probability `density`. */
export function randomMask(r: Rng, n: number, kind: MaskKind, density = 0.5): Uint8Array {
  const m = new Uint8Array(n);
  switch (kind) {
    case 'all':
      m.fill(1);
      break;
    case 'none':
      break;
    case 'one':
      if (n > 0) m[r.int(0, n - 1)] = 1;
      break;
    case 'random':
      for (let i = 0; i < n; i++) m[i] = r.next() < density ? 1 : 0;
      break;
  }
  return m;
}

/** Buffer of NaN: outputs a kernel forgets to write then fail relL2 instead of passing as stale zeros. */
export function poison(n: number): Float32Array {
  return new Float32Array(n).fill(NaN);
}

/** ||a-e||_2 / max(||e||_2, tiny); any NaN/Inf in `actual` gives Infinity. */
export function relL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new Error(`relL2: length mismatch actual=${actual.length} expected=${expected.length}`);
  }
  let num = 0;
  let den = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    if (!Number.isFinite(a)) return Infinity;
    const diff = a - expected[i];
    num += diff * diff;
    den += expected[i] * expected[i];
  }
  // An all-zero expectation (e.g. everything pruned) then demands an absolute error below ~tol*tiny.
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toPrecision(8) : String(v);
}

/** Throws with label, relative error, and the first/worst differing elements if relL2 > tol. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol = 1e-5,
  label = 'values',
): void {
  const err = relL2(actual, expected);
  if (err <= tol) return;
  // Per-element threshold for "bad": scale-relative so one index stands out in the message.
  let norm = 0;
  for (let i = 0; i < expected.length; i++) norm = Math.max(norm, Math.abs(expected[i]));
  const elemTol = tol * Math.max(norm, 1e-30);
  let first = -1;
  let worst = -1;
  let worstDiff = -1;
  let bad = 0;
  for (let i = 0; i < actual.length; i++) {
    const diff = Number.isFinite(actual[i]) ? Math.abs(actual[i] - expected[i]) : Infinity;
    if (diff > elemTol) {
      bad++;
      if (first < 0) first = i;
    }
    if (diff > worstDiff) {
      worstDiff = diff;
      worst = i;
    }
  }
  const at = (i: number) => (i < 0 ? 'none' : `[${i}] actual=${fmt(actual[i])} expected=${fmt(expected[i])}`);
  throw new Error(
    `${label}: relL2=${fmt(err)} > tol=${tol} (n=${actual.length}, ${bad} elements off by > ${fmt(elemTol)}); ` +
      `first bad ${at(first)}; worst ${at(worst)}`,
  );
}

export type Shape4 = readonly [number, number, number, number];

/**
 * Asserts every element whose index along `axis` (0 or 1) has keep[idx] falsy is exactly 0
 * (-0 counts as 0; NaN fails). For y/dy/dx [N][Ch][A][B] use axis 1;
 * for dw [K][C][R][S] use axis 0 with mOut (pruned filter rows) or axis 1 with mIn (pruned columns).
 */
export function expectChannelsZero(
  arr: ArrayLike<number>,
  shape: Shape4,
  axis: 0 | 1,
  keep: Mask,
  label = 'values',
): void {
  const [d0, d1, d2, d3] = shape;
  if (arr.length !== d0 * d1 * d2 * d3) {
    throw new Error(`${label}: length ${arr.length} != shape ${shape.join('x')}`);
  }
  const axisLen = axis === 0 ? d0 : d1;
  if (keep.length !== axisLen) throw new Error(`${label}: mask length ${keep.length} != axis ${axis} size ${axisLen}`);
  const inner = d2 * d3;
  for (let i0 = 0; i0 < d0; i0++)
    for (let i1 = 0; i1 < d1; i1++) {
      const ch = axis === 0 ? i0 : i1;
      if (keep[ch]) continue;
      const base = (i0 * d1 + i1) * inner;
      for (let j = 0; j < inner; j++) {
        const v = arr[base + j];
        if (v !== 0) {
          throw new Error(
            `${label}: pruned ${axis === 0 ? 'axis-0' : 'axis-1'} index ${ch} not zero at ` +
              `[${i0},${i1},${Math.floor(j / d3)},${j % d3}] (flat ${base + j}) = ${fmt(v)}`,
          );
        }
      }
    }
}

/** Float64 dot product, used for adjoint identities. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`dot: length mismatch ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
