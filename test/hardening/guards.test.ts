// Out-of-bounds writes: outputs are views into larger buffers whose guard regions hold a
// sentinel; every engine family must leave the guards untouched. Also: compile (cache hit) /
// run / dispose cycles keep the process's memory bounded.
import { describe, expect, it } from 'vitest';
import { compileMaskedConv, compileMaskedConvs, type ConvSpec } from '../../src/index.js';
import type { Strategy } from '../../src/schedule/plan.js';
import { rng } from '../util.js';

const GUARD = 64;
const SENTINEL = 12345.5;

function guarded(n: number): { view: Float32Array; intact: () => boolean } {
  const buf = new Float32Array(n + 2 * GUARD).fill(SENTINEL);
  const view = buf.subarray(GUARD, GUARD + n);
  return {
    view,
    intact: () =>
      buf.subarray(0, GUARD).every((v) => v === SENTINEL) && buf.subarray(GUARD + n).every((v) => v === SENTINEL),
  };
}

const SPECS: ConvSpec[] = [
  { batch: 3, inChannels: 17, outChannels: 33, inHeight: 5, inWidth: 7, kernel: 3, padding: 2, bias: true },
  {
    batch: 2,
    inChannels: 20,
    outChannels: 18,
    inHeight: 9,
    inWidth: 8,
    kernel: [3, 2],
    stride: 2,
    dilation: [1, 2],
    padding: 1,
  },
  { batch: 5, inChannels: 40, outChannels: 48, inHeight: 2, inWidth: 2, kernel: 3, padding: 1, bias: true },
];
const FAMILIES: Strategy[] = [
  { forward: 'direct', backwardData: 'direct', backwardWeights: 'direct' },
  { forward: 'im2col', backwardData: 'im2col', backwardWeights: 'im2row' },
  { forward: 'planes', backwardData: 'planes', backwardWeights: 'planes' },
];

describe('guard regions around outputs', () => {
  it.each(FAMILIES.map((f) => [JSON.stringify(f), f] as const))(
    '%s writes only inside its outputs',
    async (_name, strategy) => {
      const specs = SPECS.filter((s) => strategy.forward !== 'planes' || s.stride === undefined);
      const convs = await compileMaskedConvs(specs, { strategy, respecialize: false });
      const r = rng(11);
      for (const conv of convs) {
        const l = conv.spec;
        const [R, S] = l.kernel;
        const nx = l.batch * l.inChannels * l.inHeight * l.inWidth,
          nw = l.outChannels * l.inChannels * R * S;
        const ny = l.batch * l.outChannels * l.outHeight * l.outWidth;
        const x = r.uniformArray(nx),
          w = r.uniformArray(nw),
          dy = r.uniformArray(ny),
          b = l.bias ? r.uniformArray(l.outChannels) : undefined;
        for (const masks of [
          {},
          {
            out: Array.from({ length: l.outChannels }, (_, i) => i % 2),
            in: Array.from({ length: l.inChannels }, (_, i) => i % 3),
          },
        ]) {
          conv.setMasks(masks);
          const y = guarded(ny),
            dx = guarded(nx),
            dw = guarded(nw),
            db = guarded(l.outChannels);
          conv.forward(x, w, b, y.view);
          conv.backwardData(dy, w, dx.view);
          conv.backwardWeights(dy, x, dw.view, l.bias ? db.view : undefined);
          expect([y.intact(), dx.intact(), dw.intact(), db.intact()]).toEqual([true, true, true, true]);
        }
      }
    },
  );
});

describe('memory', () => {
  it('compile (cache hit) / run / dispose cycles keep RSS bounded', async () => {
    const spec: ConvSpec = {
      batch: 8,
      inChannels: 32,
      outChannels: 32,
      inHeight: 16,
      inWidth: 16,
      kernel: 3,
      padding: 1,
    };
    const x = new Float32Array(8 * 32 * 256),
      w = new Float32Array(32 * 32 * 9);
    const cycle = async () => {
      const conv = await compileMaskedConv(spec, { respecialize: false });
      conv.forward(x, w);
      conv.backwardWeights(x, x);
      conv.dispose();
    };
    for (let i = 0; i < 20; i++) await cycle(); // warm up allocators and caches
    globalThis.gc?.();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 200; i++) await cycle();
    globalThis.gc?.();
    const grownMb = (process.memoryUsage().rss - before) / 2 ** 20;
    // Each cycle allocates ~4 MB of outputs and packing buffers: a leak would grow by ~800 MB.
    expect(grownMb).toBeLessThan(100);
  });
});
