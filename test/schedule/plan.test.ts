// The thread settings of compiled plans, and the contract that no pass writes to its inputs.
// The regime choices (plans only, no compiler): regimes.test.ts.
import { describe, expect, it } from 'vitest';
import { compileMaskedConv, type ConvSpec } from '../../src/index.js';
import { rng } from '../util.js';

describe('threads', () => {
  it('MASKACC_NUM_THREADS sets the default, options.threads overrides it', async () => {
    const saved = process.env.MASKACC_NUM_THREADS;
    try {
      process.env.MASKACC_NUM_THREADS = '1';
      const spec = { batch: 1, inChannels: 2, outChannels: 3, inHeight: 4, inWidth: 4, kernel: 3, padding: 1 };
      expect((await compileMaskedConv(spec, { isa: 'scalar' })).threads).toBe(1);
      expect((await compileMaskedConv(spec, { isa: 'scalar', threads: 2 })).threads).toBe(2);
      process.env.MASKACC_NUM_THREADS = 'many';
      await expect(compileMaskedConv(spec, { isa: 'scalar' })).rejects.toThrowError(/MASKACC_NUM_THREADS: got "many"/);
    } finally {
      if (saved === undefined) delete process.env.MASKACC_NUM_THREADS;
      else process.env.MASKACC_NUM_THREADS = saved;
    }
  });
});

describe('inputs are never written', () => {
  it('by any pass, on any engine family', async () => {
    const spec: ConvSpec = {
      batch: 2,
      inChannels: 20,
      outChannels: 24,
      inHeight: 7,
      inWidth: 7,
      kernel: 3,
      padding: 1,
      bias: true,
    };
    const r = rng(9);
    const x = r.uniformArray(2 * 20 * 49),
      w = r.uniformArray(24 * 20 * 9),
      b = r.uniformArray(24),
      dy = r.uniformArray(2 * 24 * 49);
    const copies = [x, w, b, dy].map((a) => a.slice());
    for (const strategy of [{}, { forward: 'planes', backwardData: 'planes', backwardWeights: 'planes' }] as const) {
      const conv = await compileMaskedConv(spec, { strategy, respecialize: false });
      conv.setMasks({
        out: Array.from({ length: 24 }, (_, i) => i % 3),
        in: Array.from({ length: 20 }, (_, i) => i % 2),
      });
      conv.forward(x, w, b);
      conv.backwardData(dy, w);
      conv.backwardWeights(dy, x);
      [x, w, b, dy].forEach((a, i) => expect(a).toEqual(copies[i]));
    }
  });
});
