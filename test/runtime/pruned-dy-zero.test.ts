// backwardWeights' prunedDyIsZero option on a soft (gradOfPrunedFilters) kernel: with dy zero on
// the pruned filters, the kept-rows computation equals the reference soft gradient (whose pruned
// rows are then zero), sync and async; a bad options argument is refused.
import { describe, expect, it } from 'vitest';
import { ArgumentError, compileMaskedConv, conv2d, type ConvSpec } from '../../src/index.js';
import { refBackwardWeights } from '../reference.js';
import { expectClose, poison, randomMask, rng } from '../util.js';

const SPEC: ConvSpec = {
  batch: 3,
  inChannels: 6,
  outChannels: 10,
  inHeight: 9,
  inWidth: 7,
  kernel: 3,
  padding: 1,
  bias: true,
};

describe('backwardWeights with prunedDyIsZero', () => {
  it('computes the soft gradient from the kept rows when dy is zero on pruned filters', async () => {
    const conv = await compileMaskedConv(SPEC, { gradOfPrunedFilters: true, respecialize: false });
    const l = conv2d(SPEC),
      r = rng(12);
    const out = randomMask(r, 10, 'random', 0.5),
      inp = randomMask(r, 6, 'random', 0.5);
    conv.setMasks({ out, in: inp });
    const PQ = l.outHeight * l.outWidth;
    const dy = r.uniformArray(3 * 10 * PQ);
    for (let n = 0; n < 3; n++) out.forEach((keep, k) => keep || dy.fill(0, (n * 10 + k) * PQ, (n * 10 + k + 1) * PQ));
    const x = r.uniformArray(3 * 6 * 9 * 7);
    const ref = refBackwardWeights(l, dy, x, out, inp, true);
    const fast = conv.backwardWeights(dy, x, poison(ref.dw.length), poison(10), { prunedDyIsZero: true });
    expectClose(fast.dw, ref.dw, 1e-5, 'dw');
    expectClose(fast.dbias!, ref.dbias, 1e-5, 'dbias');
    const async = await conv.backwardWeightsAsync(dy, x, poison(ref.dw.length), poison(10), { prunedDyIsZero: true });
    expectClose(async.dw, ref.dw, 1e-5, 'dw (async)');
    expect(() => conv.backwardWeights(dy, x, undefined, undefined, 7 as never)).toThrowError(ArgumentError);
  });
});
