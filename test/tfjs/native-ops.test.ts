// The native training ops the Layers API runs on, built for every ISA this CPU runs, against plain
// float64 references: the NHWC <-> NCHW transposes (whole vector blocks and ragged edges) and the
// compact channels-last ones (kept channels only, pruned planes never read or written), the
// channels-last batch norm (rows path) and the NCHW one with a keep-mask and fused ReLU, ReLU, and
// max pooling of both layouts with 'same' padding. Outputs are NaN-poisoned before each call.
import { describe, expect, it } from 'vitest';
import { compileTrainOps, type Pool2dShape, type TrainOpsAddon } from '../../src/codegen/compile-train-ops.js';
import { supportedIsas } from '../../src/schedule/isa.js';
import { poison, relL2, rng } from '../util.js';

const cacheDir = process.env.MASKACC_CACHE_DIR!;

/** Per image [A][B] -> [B][A]. */
function transposeRef(src: Float32Array, N: number, A: number, B: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let n = 0; n < N; n++)
    for (let a = 0; a < A; a++) for (let b = 0; b < B; b++) out[n * A * B + b * A + a] = src[n * A * B + a * B + b];
  return out;
}

/** Batch norm over a [N][C][HW] view in float64: y, dx, dgamma, dbeta. */
function batchNormRef(
  x: Float32Array,
  dy: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  keep: Uint8Array,
  [N, C, HW]: number[],
  eps: number,
  relu: boolean,
) {
  const M = N * HW;
  const at = (n: number, c: number, i: number) => (n * C + c) * HW + i;
  const y = new Float64Array(x.length),
    dx = new Float64Array(x.length),
    dgamma = new Float64Array(C),
    dbeta = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0,
      ss = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += x[at(n, c, i)];
    const mean = s / M;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) ss += (x[at(n, c, i)] - mean) ** 2;
    const invstd = 1 / Math.sqrt(ss / M + eps);
    if (!keep[c]) continue; // y, dx, dgamma, dbeta stay 0
    let sg = 0,
      sgh = 0;
    const g = (k: number) => (!relu || y[k] > 0 ? dy[k] : 0);
    for (let n = 0; n < N; n++)
      for (let i = 0; i < HW; i++) {
        const k = at(n, c, i);
        const v = (x[k] - mean) * invstd * gamma[c] + beta[c];
        y[k] = relu ? Math.max(v, 0) : v;
      }
    for (let n = 0; n < N; n++)
      for (let i = 0; i < HW; i++) {
        const k = at(n, c, i);
        sg += g(k);
        sgh += g(k) * (x[k] - mean) * invstd;
      }
    dbeta[c] = sg;
    dgamma[c] = sgh;
    for (let n = 0; n < N; n++)
      for (let i = 0; i < HW; i++) {
        const k = at(n, c, i);
        dx[k] = ((gamma[c] * invstd) / M) * (M * g(k) - sg - (x[k] - mean) * invstd * sgh);
      }
  }
  return { y, dx, dgamma, dbeta };
}

/** Max pooling with out-of-range taps skipped; the gradient to each window's first maximum. */
function maxPoolRef(x: Float32Array, dy: Float32Array, a: number[], last: boolean) {
  const [N, C, H, W, kh, kw, sh, sw, pt, pl, P, Q] = a;
  const xi = (n: number, c: number, h: number, w: number) =>
    last ? ((n * H + h) * W + w) * C + c : ((n * C + c) * H + h) * W + w;
  const yi = (n: number, c: number, p: number, q: number) =>
    last ? ((n * P + p) * Q + q) * C + c : ((n * C + c) * P + p) * Q + q;
  const y = new Float32Array(N * C * P * Q),
    dx = new Float32Array(x.length);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < P; p++)
        for (let q = 0; q < Q; q++) {
          let best = -Infinity,
            at = -1;
          for (let r = 0; r < kh; r++)
            for (let s = 0; s < kw; s++) {
              const [h, w] = [p * sh - pt + r, q * sw - pl + s];
              if (h < 0 || h >= H || w < 0 || w >= W) continue;
              if (x[xi(n, c, h, w)] > best) [best, at] = [x[xi(n, c, h, w)], xi(n, c, h, w)];
            }
          y[yi(n, c, p, q)] = best;
          dx[at] += dy[yi(n, c, p, q)];
        }
  return { y, dx };
}

describe.each(supportedIsas())('native training ops, %s', (isa) => {
  let ops: TrainOpsAddon;
  const load = async () => (ops ??= await compileTrainOps({ cacheDir, isa }));

  it('transposeImages: whole vector blocks, ragged edges, one row or column', async () => {
    await load();
    const r = rng(7);
    for (const [N, A, B] of [
      [2, 37, 19],
      [1, 16, 48],
      [3, 5, 33],
      [1, 1, 7],
      [2, 64, 1],
      [1, 784, 32],
    ]) {
      const src = r.uniformArray(N * A * B),
        dst = poison(src.length);
      ops.transposeImages(N, A, B, 2, src, dst);
      expect(relL2(dst, transposeRef(src, N, A, B)), `${N}x${A}x${B}`).toBe(0);
    }
  }, 300_000);

  it('channelsToPlanes / planesToChannels: compact channels-last <-> full NCHW, any keep-mask', async () => {
    await load();
    const r = rng(8);
    for (const [N, HW, C] of [
      [2, 37, 19],
      [1, 48, 40],
      [3, 5, 33],
      [1, 784, 32],
      [2, 7, 1],
    ])
      for (const density of [0, 0.3, 0.5, 1]) {
        const keep = Uint8Array.from({ length: C }, () => (r.next() < density ? 1 : 0));
        const kept = [...keep.keys()].filter((c) => keep[c]);
        const K = kept.length;
        // compact [N][HW][K] -> [N][C][HW]: the kept planes written, the pruned ones untouched.
        const compact = r.uniformArray(N * HW * K),
          planes = poison(N * C * HW);
        ops.channelsToPlanes(N, HW, C, keep, 2, compact, planes);
        const expected = poison(N * C * HW);
        for (let n = 0; n < N; n++)
          for (let p = 0; p < HW; p++)
            kept.forEach((c, k) => (expected[(n * C + c) * HW + p] = compact[(n * HW + p) * K + k]));
        expect(
          planes.every((v, i) => Object.is(v, expected[i])),
          `to planes ${N}x${HW}x${C} kept ${K}`,
        ).toBe(true);
        // Back: only the kept planes are read (the pruned ones hold NaN here).
        const full = r.uniformArray(N * C * HW);
        for (let n = 0; n < N; n++)
          for (let c = 0; c < C; c++) if (!keep[c]) full.fill(NaN, (n * C + c) * HW, (n * C + c + 1) * HW);
        const back = poison(N * HW * K);
        ops.planesToChannels(N, C, HW, keep, 2, full, back);
        const ref = new Float32Array(N * HW * K);
        for (let n = 0; n < N; n++)
          for (let p = 0; p < HW; p++) kept.forEach((c, k) => (ref[(n * HW + p) * K + k] = full[(n * C + c) * HW + p]));
        expect(
          back.every((v, i) => v === ref[i]),
          `to channels ${N}x${HW}x${C} kept ${K}`,
        ).toBe(true);
      }
  }, 300_000);

  it('batch norm, channels-last rows and NCHW, with a keep-mask, with and without ReLU', async () => {
    await load();
    const r = rng(11);
    for (const [N, C, HW] of [
      [200, 37, 1], // rows path: channels-last, 200 positions
      [3000, 16, 1], // rows across several row blocks and both threads
      [3, 5, 49], // NCHW planes
    ])
      for (const relu of [false, true]) {
        const n = N * C * HW;
        const x = r.uniformArray(n, -1, 3),
          dy = r.uniformArray(n),
          gamma = r.uniformArray(C, 0.5, 1.5),
          beta = r.uniformArray(C);
        const keep = Uint8Array.from({ length: C }, (_, c) => (c % 3 === 1 ? 0 : 1));
        const ref = batchNormRef(x, dy, gamma, beta, keep, [N, C, HW], 1e-3, relu);
        const mean = poison(C),
          invstd = poison(C),
          y = poison(n);
        ops.batchNormForward(x, gamma, beta, keep, N, C, HW, 1e-3, relu, 2, true, mean, invstd, y);
        const what = `N ${N} C ${C} HW ${HW} relu ${relu}`;
        expect(relL2(y, ref.y), `${what}: y`).toBeLessThan(1e-5);
        expect(
          y.every((v, i) => keep[Math.floor(i / HW) % C] || Object.is(v, 0)),
          `${what}: pruned +0`,
        ).toBe(true);
        const dx = poison(n),
          dgamma = poison(C),
          dbeta = poison(C);
        ops.batchNormBackward(x, gamma, beta, keep, N, C, HW, 1e-3, relu, 2, mean, invstd, y, dy, dx, dgamma, dbeta);
        expect(relL2(dx, ref.dx), `${what}: dx`).toBeLessThan(1e-4);
        expect(relL2(dgamma, ref.dgamma), `${what}: dgamma`).toBeLessThan(1e-5);
        expect(relL2(dbeta, ref.dbeta), `${what}: dbeta`).toBeLessThan(1e-5);
      }
  }, 300_000);

  it('ReLU forward and backward', async () => {
    await load();
    const r = rng(5);
    const n = 70_001;
    const x = r.uniformArray(n, -1, 1),
      dy = r.uniformArray(n),
      y = poison(n),
      dx = poison(n);
    ops.reluForward(2, x, y);
    ops.reluBackward(2, y, dy, dx);
    expect(
      relL2(
        y,
        x.map((v) => Math.max(v, 0)),
      ),
    ).toBe(0);
    expect(
      relL2(
        dx,
        dy.map((v, i) => (x[i] > 0 ? v : 0)),
      ),
    ).toBe(0);
  }, 300_000);

  it('prunedPlanesZero: true only when every pruned channel plane is all zeros', async () => {
    await load();
    const [N, C, HW] = [3, 5, 700];
    const keep = Uint8Array.from([1, 0, 1, 0, 1]);
    const x = rng(3).uniformArray(N * C * HW, 0.5, 1);
    for (let n = 0; n < N; n++) for (const c of [1, 3]) x.fill(0, (n * C + c) * HW, (n * C + c + 1) * HW);
    expect(ops.prunedPlanesZero(N, C, HW, keep, x, 2)).toBe(true);
    x[(2 * C + 3) * HW + HW - 1] = 1e-30; // the last element of the last pruned plane
    expect(ops.prunedPlanesZero(N, C, HW, keep, x, 2)).toBe(false);
    expect(ops.prunedPlanesZero(N, C, HW, Uint8Array.from([1, 1, 1, 1, 1]), x, 2)).toBe(true);
  }, 300_000);

  it("max pooling, both layouts, 'valid' and 'same' windows", async () => {
    await load();
    const r = rng(9);
    // N, C, H, W, kh, kw, sh, sw, padTop, padLeft, P, Q
    for (const a of [
      [2, 19, 9, 8, 2, 2, 2, 2, 0, 0, 4, 4],
      [2, 3, 7, 6, 2, 2, 2, 2, 0, 0, 4, 3], // 'same': the last window hangs over the edge
      [1, 5, 7, 7, 3, 3, 2, 2, 1, 1, 4, 4],
      [3, 17, 5, 6, 3, 2, 1, 2, 1, 0, 5, 3],
      [2, 64, 6, 6, 2, 2, 2, 2, 0, 0, 3, 3], // whole byte vectors of taps
      [1, 70, 4, 5, 2, 2, 2, 2, 0, 0, 2, 2], // taps in float chunks of 64, then 6
    ])
      for (const last of [true, false]) {
        const [N, C, H, W, , , , , , , P, Q] = a;
        const x = r.uniformArray(N * C * H * W),
          dy = r.uniformArray(N * C * P * Q);
        const ref = maxPoolRef(x, dy, a, last);
        const args = [...a, last, 2] as Pool2dShape;
        const y = poison(ref.y.length),
          dx = poison(x.length);
        ops.maxPool2dForward(...args, x, y);
        ops.maxPool2dBackward(...args, x, dy, dx);
        expect(relL2(y, ref.y), `${a} last ${last}: y`).toBe(0);
        expect(relL2(dx, ref.dx), `${a} last ${last}: dx`).toBeLessThan(1e-6);
        if (!last) continue;
        // Channels-last with the winning taps kept: the same y, the same scatter.
        const [y2, dx2, taps] = [poison(y.length), poison(x.length), new Uint8Array(y.length)];
        ops.maxPool2dForward(...args, x, y2, taps);
        ops.maxPool2dBackwardArgmax(...args, taps, dy, dx2);
        expect(relL2(y2, ref.y), `${a}: y (argmax)`).toBe(0);
        expect(relL2(dx2, ref.dx), `${a}: dx (argmax)`).toBeLessThan(1e-6);
      }
    expect(() =>
      ops.maxPool2dForward(1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 2, 2, false, 1, poison(16), poison(4), new Uint8Array(4)),
    ).toThrow(/argmax: only channels-last/);
    expect(() => ops.maxPool2dForward(1, 1, 4, 4, 2, 2, 2, 2, 2, 0, 2, 2, true, 1, poison(16), poison(4))).toThrow(
      /window holds no input/,
    );
  }, 300_000);
});
