// Proves test/reference.ts correct by means independent of its loops: hand-computed values, an explicit
// pad+dilate+subsample forward, adjoint identities, finite differences, and mask-semantics rules.

import { describe, it, expect } from 'vitest';
import { refOutSize, refForward, refBackwardData, refBackwardWeights, type RefConv, type Mask } from './reference.js';
import {
  rng,
  randomMask,
  relL2,
  poison,
  expectClose,
  expectChannelsZero,
  dot,
  type Rng,
  type MaskKind,
} from './util.js';

function conv(
  N: number,
  C: number,
  K: number,
  H: number,
  W: number,
  kernel: [number, number],
  stride: [number, number] = [1, 1],
  padding: [number, number] = [0, 0],
  dilation: [number, number] = [1, 1],
): RefConv {
  return { batch: N, inChannels: C, outChannels: K, inHeight: H, inWidth: W, kernel, stride, padding, dilation };
}

/**
 * Random small layers. Padding up to 3 (often > R/2), dilation/stride up to 3, and inputs as small as
 * 1x1 so the window can exceed the input; layers with empty output are redrawn.
 */
function randomConv(r: Rng): RefConv {
  for (;;) {
    const c = conv(
      r.int(1, 2),
      r.int(1, 4),
      r.int(1, 4),
      r.int(1, 7),
      r.int(1, 7),
      [r.int(1, 4), r.int(1, 4)],
      [r.int(1, 3), r.int(1, 3)],
      [r.int(0, 3), r.int(0, 3)],
      [r.int(1, 3), r.int(1, 3)],
    );
    const [P, Q] = refOutSize(c);
    if (P >= 1 && Q >= 1) return c;
  }
}

function sizes(c: RefConv) {
  const [P, Q] = refOutSize(c);
  const { batch: N, inChannels: C, outChannels: K, inHeight: H, inWidth: W } = c;
  const [R, S] = c.kernel;
  return { N, C, K, H, W, R, S, P, Q, x: N * C * H * W, w: K * C * R * S, y: N * K * P * Q };
}

const KINDS: MaskKind[] = ['all', 'random', 'random', 'one', 'none'];

/** Data plus masks for one random case. */
function randomCase(seed: number) {
  const r = rng(seed);
  const c = randomConv(r);
  const z = sizes(c);
  return {
    r,
    c,
    z,
    x: r.normalArray(z.x),
    w: r.normalArray(z.w),
    b: r.normalArray(z.K),
    dy: r.normalArray(z.y),
    mOut: randomMask(r, z.K, r.pick(KINDS)),
    mIn: randomMask(r, z.C, r.pick(KINDS)),
  };
}

/**
 * Forward by a different construction than the reference: materialize the zero-padded input and the
 * zero-inserted (dilated) kernel, do a stride-1 "valid" correlation, then keep every stride-th output.
 * No masks: masking is tested separately by zeroing data.
 */
function altForward(c: RefConv, x: Float32Array, w: Float32Array, bias?: Float32Array): Float64Array {
  const { N, C, K, H, W, R, S, P, Q } = sizes(c);
  const [ph, pw] = c.padding;
  const Hp = H + 2 * ph,
    Wp = W + 2 * pw;
  const xp = new Float64Array(N * C * Hp * Wp);
  for (let n = 0; n < N; n++)
    for (let ch = 0; ch < C; ch++)
      for (let h = 0; h < H; h++)
        for (let v = 0; v < W; v++) xp[((n * C + ch) * Hp + h + ph) * Wp + v + pw] = x[((n * C + ch) * H + h) * W + v];
  const Rd = c.dilation[0] * (R - 1) + 1,
    Sd = c.dilation[1] * (S - 1) + 1;
  const wd = new Float64Array(K * C * Rd * Sd);
  for (let k = 0; k < K; k++)
    for (let ch = 0; ch < C; ch++)
      for (let i = 0; i < R; i++)
        for (let j = 0; j < S; j++)
          wd[((k * C + ch) * Rd + i * c.dilation[0]) * Sd + j * c.dilation[1]] = w[((k * C + ch) * R + i) * S + j];
  const Pf = Hp - Rd + 1,
    Qf = Wp - Sd + 1; // full stride-1 output
  const y = new Float64Array(N * K * P * Q);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++)
      for (let a = 0; a < Pf; a++)
        for (let b = 0; b < Qf; b++) {
          if (a % c.stride[0] !== 0 || b % c.stride[1] !== 0) continue;
          let acc = bias ? bias[k] : 0;
          for (let ch = 0; ch < C; ch++)
            for (let i = 0; i < Rd; i++)
              for (let j = 0; j < Sd; j++)
                acc += wd[((k * C + ch) * Rd + i) * Sd + j] * xp[((n * C + ch) * Hp + a + i) * Wp + b + j];
          y[((n * K + k) * P + a / c.stride[0]) * Q + b / c.stride[1]] = acc;
        }
  return y;
}

/** Copy of a [D0][D1][A][B] array with the masked-off indices along `axis` set to 0. */
function zeroAlong(a: Float32Array, d0: number, d1: number, inner: number, axis: 0 | 1, keep: Mask): Float32Array {
  const out = Float32Array.from(a);
  for (let i0 = 0; i0 < d0; i0++)
    for (let i1 = 0; i1 < d1; i1++)
      if (!keep[axis === 0 ? i0 : i1]) out.fill(0, (i0 * d1 + i1) * inner, (i0 * d1 + i1 + 1) * inner);
  return out;
}

const SEEDS = Array.from({ length: 60 }, (_, i) => 1000 + i);

describe('refOutSize', () => {
  it('matches the floor formula on known cases', () => {
    expect(refOutSize(conv(1, 1, 1, 3, 3, [2, 2]))).toEqual([2, 2]);
    expect(refOutSize(conv(1, 1, 1, 7, 6, [3, 3], [2, 2], [1, 1]))).toEqual([4, 3]); // (7+2-3)/2+1, (6+2-3)/2+1=3.5->3
    expect(refOutSize(conv(1, 1, 1, 5, 5, [3, 1], [1, 1], [0, 0], [2, 1]))).toEqual([1, 5]); // dilated window 5
    expect(refOutSize(conv(1, 1, 1, 2, 1, [3, 4], [1, 1], [2, 2]))).toEqual([4, 2]); // input smaller than window
  });
});

describe('hand-computed cases', () => {
  // x = [[1,2,3],[4,5,6],[7,8,9]] (1x1x3x3), w = [[1,2],[3,4]] (1x1x2x2), bias 0.5.
  const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const w = Float32Array.from([1, 2, 3, 4]);
  const b = Float32Array.from([0.5]);

  it('stride 1, no padding', () => {
    const c = conv(1, 1, 1, 3, 3, [2, 2]);
    // y00 = 1*1+2*2+3*4+4*5 = 37; y01 = 1*2+2*3+3*5+4*6 = 47; y10 = 1*4+2*5+3*7+4*8 = 67; y11 = 1*5+2*6+3*8+4*9 = 77.
    expect(Array.from(refForward(c, x, w, b))).toEqual([37.5, 47.5, 67.5, 77.5]);
    const ones = Float32Array.from([1, 1, 1, 1]);
    // dx[h,v] = sum of the w taps that touch (h,v) over the 4 windows:
    // corners see one tap each (1,2,3,4); edges two (1+2, 1+3, 2+4, 3+4); center all four (10).
    expect(Array.from(refBackwardData(c, ones, w))).toEqual([1, 3, 2, 4, 10, 6, 3, 7, 4]);
    // dw[r,s] = sum of the 2x2 block of x at offset (r,s): 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9; dbias = 4 outputs.
    const g = refBackwardWeights(c, ones, x);
    expect(Array.from(g.dw)).toEqual([12, 16, 24, 28]);
    expect(Array.from(g.dbias)).toEqual([4]);
  });

  it('stride 2, padding 1', () => {
    const c = conv(1, 1, 1, 3, 3, [2, 2], [2, 2], [1, 1]);
    // P = floor((3+2-1-1)/2)+1 = 2. Window origins (-1,-1), (-1,1), (1,-1), (1,1).
    // y00: only tap (1,1) lands in range, on x00: 4*1 = 4.
    // y01: taps (1,0),(1,1) on x01,x02: 3*2+4*3 = 18.
    // y10: taps (0,1),(1,1) on x10,x20: 2*4+4*7 = 36.
    // y11: all taps on x11,x12,x21,x22: 5+12+24+36 = 77.
    expect(Array.from(refForward(c, x, w, undefined))).toEqual([4, 18, 36, 77]);
    // dy = [1,10,100,1000]: dx at x00 gets only w11*dy00 = 4; x22 gets w11*dy11 = 4000; x11 gets w00*dy11 = 1000.
    const dx = refBackwardData(c, Float32Array.from([1, 10, 100, 1000]), w);
    // Full map: row0 = [4*1, 3*10, 4*10], row1 = [2*100, 1*1000, 2*1000], row2 = [4*100, 3*1000, 4*1000].
    expect(Array.from(dx)).toEqual([4, 30, 40, 200, 1000, 2000, 400, 3000, 4000]);
  });

  it('dilation 2 on a 3x3 input touches only the corners', () => {
    const c = conv(1, 1, 1, 3, 3, [2, 2], [1, 1], [0, 0], [2, 2]);
    // Effective window 3x3 -> one output: 1*x00 + 2*x02 + 3*x20 + 4*x22 = 1+6+21+36 = 64.
    expect(Array.from(refForward(c, x, w, undefined))).toEqual([64]);
    const g = refBackwardWeights(c, Float32Array.from([2]), x);
    expect(Array.from(g.dw)).toEqual([2, 6, 14, 18]); // 2 * corners (1,3,7,9)
  });

  it('masks on a 2-filter, 2-channel case', () => {
    const c = conv(1, 2, 2, 1, 1, [1, 1]);
    // x = [3, 5] (two channels, 1x1). w[k][c] = [[1,2],[10,20]]; bias [100, 1000].
    const xs = Float32Array.from([3, 5]);
    const ws = Float32Array.from([1, 2, 10, 20]);
    const bs = Float32Array.from([100, 1000]);
    expect(Array.from(refForward(c, xs, ws, bs))).toEqual([100 + 3 + 10, 1000 + 30 + 100]);
    // Keep filter 0 only and channel 1 only: y0 = 100 + 2*5 = 110, y1 = 0 (bias dropped too).
    expect(Array.from(refForward(c, xs, ws, bs, [1, 0], [false, true]))).toEqual([110, 0]);
    // dy = [7, 11]; dx[c] for kept c = sum over kept k of w[k][c]*dy[k] -> dx1 = 2*7 = 14, dx0 = 0.
    expect(Array.from(refBackwardData(c, Float32Array.from([7, 11]), ws, [1, 0], [0, 1]))).toEqual([0, 14]);
    // dw = dy[k]*x[c] for kept (k,c): only (0,1) = 7*5 = 35; with gradOfPrunedFilters also (1,1) = 11*5 = 55.
    const dy = Float32Array.from([7, 11]);
    const g0 = refBackwardWeights(c, dy, xs, [1, 0], [0, 1]);
    expect(Array.from(g0.dw)).toEqual([0, 35, 0, 0]);
    expect(Array.from(g0.dbias)).toEqual([7, 0]);
    const g1 = refBackwardWeights(c, dy, xs, [1, 0], [0, 1], true);
    expect(Array.from(g1.dw)).toEqual([0, 35, 0, 55]);
    expect(Array.from(g1.dbias)).toEqual([7, 11]);
  });
});

describe('forward vs independent pad+dilate+subsample construction', () => {
  it.each(SEEDS)('seed %i', (seed) => {
    const { c, x, w, b } = randomCase(seed);
    expectClose(refForward(c, x, w, b), altForward(c, x, w, b), 1e-12, `forward ${JSON.stringify(c)}`);
  });

  it('masks equal zeroing the data: mIn zeroes x channels, mOut zeroes whole output filters', () => {
    for (const seed of SEEDS) {
      const { c, z, x, w, b, mOut, mIn } = randomCase(seed);
      const expected = altForward(c, zeroAlong(x, z.N, z.C, z.H * z.W, 1, mIn), w, b);
      for (let n = 0; n < z.N; n++)
        for (let k = 0; k < z.K; k++)
          if (!mOut[k]) expected.fill(0, (n * z.K + k) * z.P * z.Q, (n * z.K + k + 1) * z.P * z.Q);
      expectClose(refForward(c, x, w, b, mOut, mIn), expected, 1e-12, `masked forward seed ${seed}`);
      // The same via the weights: zeroing w columns for pruned c is equivalent to zeroing x channels.
      const viaW = refForward(c, x, zeroAlong(w, z.K, z.C, z.R * z.S, 1, mIn), b, mOut);
      expectClose(viaW, expected, 1e-12, `masked forward via w seed ${seed}`);
    }
  });
});

describe('adjoint identities <A x, dy> = <x, A^T dy> = <w, dW>', () => {
  it.each(SEEDS)('seed %i (random masks)', (seed) => {
    const { c, x, w, dy, mOut, mIn } = randomCase(seed);
    const lhs = dot(refForward(c, x, w, undefined, mOut, mIn), dy);
    const viaX = dot(x, refBackwardData(c, dy, w, mOut, mIn));
    const viaW = dot(w, refBackwardWeights(c, dy, x, mOut, mIn, false).dw);
    // Scale by the sum of |terms| so near-zero inner products don't make the tolerance meaningless.
    const scale = Math.max(1, dot(refForward(c, x.map(Math.abs), w.map(Math.abs), undefined), dy.map(Math.abs)));
    expect(Math.abs(lhs - viaX) / scale).toBeLessThan(1e-9);
    expect(Math.abs(lhs - viaW) / scale).toBeLessThan(1e-9);
    // gradOfPrunedFilters: the weight adjoint then matches the forward with all filters kept.
    const full = dot(refForward(c, x, w, undefined, undefined, mIn), dy);
    const viaWFull = dot(w, refBackwardWeights(c, dy, x, mOut, mIn, true).dw);
    expect(Math.abs(full - viaWFull) / scale).toBeLessThan(1e-9);
  });

  it('bias adjoint: <bias, dbias> equals the bias contribution to <y, dy>', () => {
    for (const seed of SEEDS.slice(0, 20)) {
      const { c, x, w, b, dy, mOut, mIn } = randomCase(seed);
      const contrib = dot(refForward(c, x, w, b, mOut, mIn), dy) - dot(refForward(c, x, w, undefined, mOut, mIn), dy);
      const viaB = dot(b, refBackwardWeights(c, dy, x, mOut, mIn).dbias);
      expect(Math.abs(contrib - viaB)).toBeLessThan(1e-9 * Math.max(1, Math.abs(viaB)));
    }
  });
});

describe('finite differences of L = <forward(x, w), g>', () => {
  // L is linear in x and in w, so a central difference is exact up to rounding; we divide by the actual
  // float32 step taken (f32(a+h) - f32(a-h)) so rounding the perturbed input doesn't bias the estimate.
  function fdCheck(seed: number, gradOfPrunedFilters: boolean) {
    const { r, c, z, x, w, b, dy, mOut, mIn } = randomCase(seed);
    const L = (xx: Float32Array, ww: Float32Array, mo: Mask | undefined) => dot(refForward(c, xx, ww, b, mo, mIn), dy);
    const h = 0.25;
    const dx = refBackwardData(c, dy, w, mOut, mIn);
    const g = refBackwardWeights(c, dy, x, mOut, mIn, gradOfPrunedFilters);
    for (let t = 0; t < 4; t++) {
      const i = r.int(0, z.x - 1);
      const xp = Float32Array.from(x),
        xm = Float32Array.from(x);
      xp[i] += h;
      xm[i] -= h;
      const fd = (L(xp, w, mOut) - L(xm, w, mOut)) / (xp[i] - xm[i]);
      expect(Math.abs(fd - dx[i])).toBeLessThan(1e-9 * Math.max(1, Math.abs(dx[i])));

      const j = r.int(0, z.w - 1);
      const wp = Float32Array.from(w),
        wm = Float32Array.from(w);
      wp[j] += h;
      wm[j] -= h;
      // For a pruned filter with gradOfPrunedFilters, the gradient is that of the unmasked-filter loss.
      const k = Math.floor(j / (z.C * z.R * z.S));
      const mo = gradOfPrunedFilters && !mOut[k] ? undefined : mOut;
      const fdw = (L(x, wp, mo) - L(x, wm, mo)) / (wp[j] - wm[j]);
      expect(Math.abs(fdw - g.dw[j])).toBeLessThan(1e-9 * Math.max(1, Math.abs(g.dw[j])));
    }
    // dbias[k]: perturb one bias entry.
    const k = r.int(0, z.K - 1);
    const bp = Float32Array.from(b),
      bm = Float32Array.from(b);
    bp[k] += h;
    bm[k] -= h;
    const mo = gradOfPrunedFilters ? undefined : mOut;
    const fdb =
      (dot(refForward(c, x, w, bp, mo, mIn), dy) - dot(refForward(c, x, w, bm, mo, mIn), dy)) / (bp[k] - bm[k]);
    expect(Math.abs(fdb - g.dbias[k])).toBeLessThan(1e-9 * Math.max(1, Math.abs(g.dbias[k])));
  }
  it.each(SEEDS.slice(0, 20))('seed %i, gradOfPrunedFilters=false', (seed) => fdCheck(seed, false));
  it.each(SEEDS.slice(20, 40))('seed %i, gradOfPrunedFilters=true', (seed) => fdCheck(seed, true));
});

describe('masking semantics', () => {
  it.each(SEEDS)('seed %i', (seed) => {
    const { c, z, x, w, b, dy, mOut, mIn } = randomCase(seed);
    const y = refForward(c, x, w, b, mOut, mIn);
    expectChannelsZero(y, [z.N, z.K, z.P, z.Q], 1, mOut, 'y pruned filters');
    const dx = refBackwardData(c, dy, w, mOut, mIn);
    expectChannelsZero(dx, [z.N, z.C, z.H, z.W], 1, mIn, 'dx pruned channels');

    const g0 = refBackwardWeights(c, dy, x, mOut, mIn, false);
    const g1 = refBackwardWeights(c, dy, x, mOut, mIn, true);
    const full = refBackwardWeights(c, dy, x, undefined, mIn); // every filter kept
    const shapeW = [z.K, z.C, z.R, z.S] as const;
    expectChannelsZero(g0.dw, shapeW, 0, mOut, 'dw pruned rows');
    expectChannelsZero(g0.dw, shapeW, 1, mIn, 'dw pruned cols');
    expectChannelsZero(g1.dw, shapeW, 1, mIn, 'dw pruned cols (gradOfPrunedFilters)');

    const row = z.C * z.R * z.S;
    for (let k = 0; k < z.K; k++) {
      // dbias sum rule, computed directly from dy.
      let s = 0;
      for (let n = 0; n < z.N; n++) for (let i = 0; i < z.P * z.Q; i++) s += dy[(n * z.K + k) * z.P * z.Q + i];
      expect(g0.dbias[k]).toBe(mOut[k] ? s : 0);
      expect(g1.dbias[k]).toBe(s);
      // gradOfPrunedFilters: pruned rows equal the unmasked gradient rows; kept rows unchanged.
      expect(Array.from(g1.dw.subarray(k * row, (k + 1) * row))).toEqual(
        Array.from(full.dw.subarray(k * row, (k + 1) * row)),
      );
      if (mOut[k])
        expect(Array.from(g0.dw.subarray(k * row, (k + 1) * row))).toEqual(
          Array.from(full.dw.subarray(k * row, (k + 1) * row)),
        );
    }
    // Masks only remove terms: kept dx channels equal the all-filters-kept dx restricted to kept filters,
    // i.e. dx with mOut equals dx computed on dy whose pruned filters are zeroed.
    const dyZ = zeroAlong(dy, z.N, z.K, z.P * z.Q, 1, mOut);
    expectClose(dx, refBackwardData(c, dyZ, w, undefined, mIn), 1e-12, 'dx via zeroed dy');
  });

  it('accepts boolean and numeric masks alike, and extra fields on the layer object', () => {
    const { c, z, x, w, b, mOut, mIn } = randomCase(7);
    const layer = { ...c, kind: 'conv2d', bias: true, outHeight: z.P, outWidth: z.Q }; // richer object
    const asBool = (m: Uint8Array) => Array.from(m, (v) => v !== 0);
    const y1 = refForward(layer, x, w, b, mOut, mIn);
    const y2 = refForward(c, x, w, b, asBool(mOut), asBool(mIn));
    expect(Array.from(y1)).toEqual(Array.from(y2));
  });

  it('rejects wrong mask and buffer lengths instead of silently reading undefined', () => {
    const c = conv(1, 2, 3, 4, 4, [3, 3]);
    const z = sizes(c);
    const x = new Float32Array(z.x),
      w = new Float32Array(z.w);
    expect(() => refForward(c, x, w, undefined, [1, 1])).toThrow(/mOut/);
    expect(() => refForward(c, x, w, undefined, undefined, [1])).toThrow(/mIn/);
    expect(() => refForward(c, new Float32Array(3), w, undefined)).toThrow(/x length/);
  });
});

describe('util', () => {
  it('rng is deterministic and in range', () => {
    const a = rng(42),
      b = rng(42);
    for (let i = 0; i < 100; i++) {
      const v = a.next();
      expect(v).toBe(b.next());
      expect(v >= 0 && v < 1).toBe(true);
    }
    const r = rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(r.int(2, 4));
    expect([...seen].sort()).toEqual([2, 3, 4]);
    const u = r.uniformArray(1000, -2, 3);
    expect(u.every((v) => v >= -2 && v < 3)).toBe(true);
    const nrm = r.normalArray(4000);
    const mean = nrm.reduce((s, v) => s + v, 0) / nrm.length;
    expect(Math.abs(mean)).toBeLessThan(0.1);
  });

  it('randomMask kinds', () => {
    const r = rng(3);
    expect(Array.from(randomMask(r, 5, 'all'))).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(randomMask(r, 5, 'none'))).toEqual([0, 0, 0, 0, 0]);
    expect(randomMask(r, 9, 'one').reduce((s, v) => s + v, 0)).toBe(1);
    const dense = randomMask(r, 1000, 'random', 0.9).reduce((s, v) => s + v, 0);
    expect(dense).toBeGreaterThan(850);
  });

  it('relL2 / poison / expectClose', () => {
    expect(relL2([1, 2], [1, 2])).toBe(0);
    expect(relL2(poison(3), [0, 0, 0])).toBe(Infinity);
    expect(relL2([0, 0], [0, 0])).toBe(0);
    expect(() => expectClose([1, 2, 3], [1, 2, 3])).not.toThrow();
    expect(() => expectClose([1, 2.5, 3], [1, 2, 3], 1e-5, 'myLabel')).toThrow(/myLabel.*first bad \[1\]/);
    expect(() => expectClose(poison(2), [0, 0], 1e-5, 'unwritten')).toThrow(/unwritten/);
  });

  it('expectChannelsZero catches a nonzero or NaN in a pruned channel, ignores kept ones', () => {
    const a = new Float64Array(2 * 3 * 2 * 2).fill(1);
    // Zero channel 1 (axis 1) for both batch entries.
    for (const n of [0, 1]) a.fill(0, (n * 3 + 1) * 4, (n * 3 + 2) * 4);
    expect(() => expectChannelsZero(a, [2, 3, 2, 2], 1, [1, 0, 1], 'ok')).not.toThrow();
    expect(() => expectChannelsZero(a, [2, 3, 2, 2], 1, [1, 1, 0], 'bad')).toThrow(/bad: pruned axis-1 index 2/);
    a[(1 * 3 + 1) * 4 + 3] = NaN;
    expect(() => expectChannelsZero(a, [2, 3, 2, 2], 1, [1, 0, 1], 'nan')).toThrow(/\[1,1,1,1\]/);
    expect(() => expectChannelsZero(a, [2, 3, 2, 2], 0, [0, 1], 'axis0')).toThrow(/axis-0 index 0/);
  });
});
