// Async passes run off the JS thread: same results as the sync calls, the event loop keeps
// turning while a long kernel runs, and overlapping calls on one kernel fail loudly.
import { beforeAll, describe, expect, it } from 'vitest';
import { compileMaskedConvs, DisposedError, type MaskedConv } from '../../src/index.js';
import { randomMask, rng } from '../util.js';

describe('async passes', () => {
  let small: MaskedConv;
  let big: MaskedConv;
  beforeAll(async () => {
    [small, big] = await compileMaskedConvs(
      [
        { batch: 2, inChannels: 13, outChannels: 40, inHeight: 9, inWidth: 7, kernel: 3, padding: 1, bias: true },
        { batch: 32, inChannels: 64, outChannels: 64, inHeight: 32, inWidth: 32, kernel: 3, padding: 1 },
      ],
      { respecialize: false },
    );
  });

  it('give the same results as the sync calls', async () => {
    const r = rng(3),
      l = small.spec;
    small.setMasks({ out: randomMask(r, l.outChannels, 'random'), in: randomMask(r, l.inChannels, 'random') });
    const x = r.uniformArray(2 * 13 * 63),
      w = r.uniformArray(40 * 13 * 9),
      b = r.uniformArray(40);
    const dy = r.uniformArray(2 * 40 * 63);
    expect(await small.forwardAsync(x, w, b)).toEqual(small.forward(x, w, b));
    expect(await small.backwardDataAsync(dy, w)).toEqual(small.backwardData(dy, w));
    expect(await small.backwardWeightsAsync(dy, x)).toEqual(small.backwardWeights(dy, x));
  });

  it('keep the event loop responsive while a long kernel runs', async () => {
    const l = big.spec;
    const x = new Float32Array(l.batch * 64 * 1024).fill(0.5),
      dy = new Float32Array(x.length).fill(0.25);
    // Macrotasks that run while the calls are pending. A call that blocked the loop (or resolved
    // synchronously) would let none run: its promise settles in a microtask, before any setImmediate.
    let ticks = 0,
      running = true;
    const tick = () => {
      ticks++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    for (let i = 0; i < 10; i++) await big.backwardWeightsAsync(dy, x);
    running = false;
    expect(ticks).toBeGreaterThan(10);
  });

  it('while a call runs: a sync call fails with a clear error, a second async call waits its turn', async () => {
    const l = big.spec;
    const x = new Float32Array(l.batch * 64 * 1024),
      w = new Float32Array(64 * 64 * 9);
    const first = big.forwardAsync(x, w);
    for (let i = 0; i < 3; i++) await null; // let the queued call reach the native kernel
    expect(() => big.forward(x, w)).toThrowError(/kernel is busy/);
    expect(() => big.dispose()).toThrowError(/kernel is busy/);
    const second = big.forwardAsync(x, w);
    await expect(first).resolves.toBeInstanceOf(Float32Array);
    await expect(second).resolves.toBeInstanceOf(Float32Array);
  });

  it('dispose frees the kernel; later calls throw DisposedError', async () => {
    const [c] = await compileMaskedConvs([small.spec], { respecialize: false });
    c.dispose();
    await expect(
      c.forwardAsync(new Float32Array(2 * 13 * 63), new Float32Array(40 * 13 * 9), new Float32Array(40)),
    ).rejects.toThrowError(DisposedError);
  });
});

describe('async calls across kernels', () => {
  it('run one after another, never overlapping', async () => {
    const { runExclusive } = await import('../../src/runtime/exec-queue.js');
    const log: string[] = [];
    const job = (name: string, ms: number) => () =>
      new Promise<string>((resolve) => {
        log.push(`start ${name}`);
        setTimeout(() => {
          log.push(`end ${name}`);
          resolve(name);
        }, ms);
      });
    const failing = () => Promise.reject(new Error('boom'));
    const results = await Promise.allSettled([
      runExclusive(job('a', 30)),
      runExclusive(failing),
      runExclusive(job('b', 5)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b']);
  });
});
