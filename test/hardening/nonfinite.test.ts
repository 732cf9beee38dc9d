// NaN and Infinity in the data propagate as the reference computes them: an output is NaN (or
// infinite) exactly where the float64 reference's is, for every engine family; values in pruned
// channels are never read, so they change nothing.
import { describe, expect, it } from 'vitest';
import { compileMaskedConvs, type ConvSpec } from '../../src/index.js';
import type { Strategy } from '../../src/schedule/plan.js';
import { refBackwardData, refBackwardWeights, refForward } from '../reference.js';
import { rng } from '../util.js';

const SPEC: ConvSpec = {
  batch: 2,
  inChannels: 20,
  outChannels: 18,
  inHeight: 9,
  inWidth: 8,
  kernel: 3,
  padding: 1,
  bias: true,
};
const FAMILIES: Strategy[] = [
  { forward: 'direct', backwardData: 'direct', backwardWeights: 'direct' },
  { forward: 'im2col', backwardData: 'im2col', backwardWeights: 'im2row' },
  { forward: 'planes', backwardData: 'planes', backwardWeights: 'planes' },
];

/** Same class (NaN, +Inf, -Inf, finite) everywhere; finite values close. */
function samePattern(actual: Float32Array, expected: ArrayLike<number>, what: string): void {
  const cls = (v: number) => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : 'finite');
  let nonFinite = 0;
  for (let i = 0; i < actual.length; i++) {
    expect(cls(actual[i]), `${what}[${i}]`).toBe(cls(expected[i]));
    if (cls(expected[i]) === 'finite')
      expect(Math.abs(actual[i] - expected[i]), `${what}[${i}]`).toBeLessThan(1e-3 * (1 + Math.abs(expected[i])));
    else nonFinite++;
  }
  expect(nonFinite, `${what}: the case must produce non-finite outputs`).toBeGreaterThan(0);
}

describe('non-finite data', () => {
  it('NaN and Inf in x, w and dy: every engine family matches the reference pattern; pruned channels ignore theirs', async () => {
    for (const strategy of FAMILIES) {
      const [conv] = await compileMaskedConvs([SPEC], { strategy, respecialize: false });
      const l = conv.spec,
        r = rng(3);
      const mOut = Uint8Array.from({ length: l.outChannels }, (_, k) => (k % 3 === 2 ? 0 : 1));
      const mIn = Uint8Array.from({ length: l.inChannels }, (_, c) => (c % 4 === 1 ? 0 : 1));
      conv.setMasks({ out: mOut, in: mIn });
      const x = r.uniformArray(l.batch * l.inChannels * l.inHeight * l.inWidth),
        w = r.uniformArray(l.outChannels * l.inChannels * 9);
      const bias = r.uniformArray(l.outChannels),
        dy = r.uniformArray(l.batch * l.outChannels * l.outHeight * l.outWidth);
      const plane = l.inHeight * l.inWidth;
      x[0 * plane + 4 * 8 + 3] = NaN; // kept channel 0
      x[2 * plane + 7 * 8 + 6] = Infinity; // kept channel 2
      x[1 * plane + 5] = NaN; // pruned channel 1: never read
      x[(l.inChannels + 5) * plane + 10] = -Infinity; // image 1, pruned channel 5
      w[(3 * l.inChannels + 4) * 9 + 4] = NaN; // kept filter 3, kept channel 4
      w[(2 * l.inChannels + 0) * 9] = Infinity; // pruned filter 2
      dy[(1 * l.outChannels + 1) * l.outHeight * l.outWidth + 9] = -Infinity; // kept filter 1
      dy[(0 * l.outChannels + 5) * l.outHeight * l.outWidth + 3] = NaN; // pruned filter 5
      const y = conv.forward(x, w, bias, new Float32Array(dy.length).fill(7));
      samePattern(y, refForward(l, x, w, bias, mOut, mIn), `${JSON.stringify(strategy)} forward`);
      const dx = conv.backwardData(dy, w, new Float32Array(x.length).fill(7));
      samePattern(dx, refBackwardData(l, dy, w, mOut, mIn), `${JSON.stringify(strategy)} backwardData`);
      const g = conv.backwardWeights(
        dy,
        x,
        new Float32Array(w.length).fill(7),
        new Float32Array(l.outChannels).fill(7),
      );
      const ref = refBackwardWeights(l, dy, x, mOut, mIn);
      samePattern(g.dw, ref.dw, `${JSON.stringify(strategy)} dw`);
      samePattern(g.dbias!, ref.dbias, `${JSON.stringify(strategy)} dbias`);
      conv.dispose();
    }
  });
});
