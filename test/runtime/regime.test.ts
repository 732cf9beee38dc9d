// Density regimes: masks that keep the compiled regime compile nothing; masks that leave it
// compute right at once, and a kernel specialized for them is built in the background and
// takes over (correct before and after the switch).
import { describe, expect, it } from 'vitest';
import { compileMaskedConv, conv2d } from '../../src/index.js';
import type { CacheEvent } from '../../src/codegen/cache.js';
import { refForward, refBackwardWeights } from '../reference.js';
import { expectClose, rng } from '../util.js';

const spec = { batch: 2, inChannels: 24, outChannels: 40, inHeight: 10, inWidth: 10, kernel: 3, padding: 1 };

describe('density regimes', () => {
  it('re-specializes in the background when masks leave the regime', async () => {
    const lines: string[] = [];
    const events: CacheEvent[] = [];
    const conv = await compileMaskedConv(spec, {
      diagnostics: (l) => lines.push(l),
      onCacheEvent: (e) => events.push(e),
    });
    const before = conv.plan;
    expect(before.forward.source).toBe('direct'); // 40 kept filters fill the channel vectors
    const l = conv2d(spec),
      r = rng(5);
    const x = r.uniformArray(2 * 24 * 100),
      w = r.uniformArray(40 * 24 * 9),
      dy = r.uniformArray(2 * 40 * 100);

    // Same regime (36 of 40 filters): nothing compiles.
    events.length = 0;
    const most = Array.from({ length: 40 }, (_, i) => (i % 10 === 3 ? 0 : 1));
    conv.setMasks({ out: most });
    expect(conv.pendingRespecialization).toBeUndefined();
    expect(events).toEqual([]);

    // 4 of 40 filters: a different regime; right at once, then switched.
    const few = Array.from({ length: 40 }, (_, i) => (i % 10 === 0 ? 1 : 0));
    conv.setMasks({ out: few });
    expect(conv.pendingRespecialization).toBeDefined();
    expectClose(conv.forward(x, w), refForward(l, x, w, undefined, few), 1e-5, 'before the switch');
    await conv.pendingRespecialization;
    expect(conv.plan).not.toEqual(before);
    expect(conv.plan.forward.source).not.toBe('direct');
    expect(lines.some((s) => /^maskacc_verbose,regime,leave,/.test(s))).toBe(true);
    expect(lines.some((s) => /^maskacc_verbose,regime,switched,/.test(s))).toBe(true);
    expectClose(conv.forward(x, w), refForward(l, x, w, undefined, few), 1e-5, 'after the switch');
    expectClose(conv.backwardWeights(dy, x).dw, refBackwardWeights(l, dy, x, few).dw, 1e-5, 'dw after the switch');
  });

  it('respecialize: false keeps the compiled kernel', async () => {
    const conv = await compileMaskedConv(spec, { respecialize: false });
    conv.setMasks({ out: Array.from({ length: 40 }, (_, i) => (i === 0 ? 1 : 0)) });
    expect(conv.pendingRespecialization).toBeUndefined();
  });
});
