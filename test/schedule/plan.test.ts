// The scheduler's regime choices (thresholds measured on the benchmark, see plan.ts) and the
// thread settings; plus the contract that no pass writes to its inputs.
import { describe, expect, it } from 'vitest';
import { compileMaskedConv, conv2d, type ConvSpec } from '../../src/index.js';
import { choosePlan, regimeOf } from '../../src/schedule/plan.js';
import { ISAS } from '../../src/schedule/isa.js';
import { rng } from '../util.js';

const vgg = (c: number, k: number, h: number, d = 1): ConvSpec =>
  ({ batch: 64, inChannels: c, outChannels: k, inHeight: h, inWidth: h, kernel: 3, padding: 1, density: { out: d, in: d } });

describe('density regimes', () => {
  const plan = (s: ConvSpec) => choosePlan(conv2d(s), ISAS.avx512, 2);
  it('many kept channels: the channel-vectorized direct engine on every pass', () => {
    expect(regimeOf(plan(vgg(128, 128, 16)))).toBe('direct/direct/direct');
    expect(regimeOf(plan(vgg(512, 512, 2, 0.5)))).toBe('direct/direct/direct');
  });
  it('few kept filters or channels: spatially vectorized planes (stride 1)', () => {
    expect(regimeOf(plan(vgg(16, 16, 32, 0.5)))).toBe('planes/planes/planes');
    expect(plan(vgg(3, 64, 32)).backwardData!.source).toBe('planes');  // 3 input channels: few rows for dx
  });
  it('the same layer changes regime with its density', () => {
    expect(regimeOf(plan(vgg(32, 32, 16, 1)))).not.toBe(regimeOf(plan(vgg(32, 32, 16, 0.25))));
  });
  it('1x1 kernels get the pointwise GEMM (backward-data only where every dx position has a source)', () => {
    const pw = (stride: number) => plan({ ...vgg(256, 128, 56, 0.5), kernel: 1, padding: 0, stride });
    expect(regimeOf(pw(1))).toBe('pointwise/pointwise/direct');
    expect(pw(2).forward.source).toBe('pointwise');
    expect(pw(2).backwardData!.source).not.toBe('pointwise');
  });
  it('large planes reduce backward-weights in row blocks per thread; tiny planes in image blocks', () => {
    const wp = (s: ConvSpec) => plan(s).backwardWeights;
    expect(wp(vgg(64, 64, 56, 0.5))).toMatchObject({ engine: 'direct', blocking: 'rows' });
    expect(wp(vgg(512, 512, 2))).toMatchObject({ engine: 'direct', blocking: 'images' });
  });
  it('inputGrad: false plans no backward-data pass', () => {
    const p = plan({ ...vgg(3, 64, 32), inputGrad: false });
    expect(p.backwardData).toBeNull();
    expect(regimeOf(p)).toMatch(/\/none\//);
  });
  it('strided layers never get planes', () => {
    const p = plan({ ...vgg(16, 32, 32, 0.5), stride: 2 });
    expect([p.forward.source, p.backwardData!.source]).not.toContain('planes');
  });
  it('register tiles fit the register file', () => {
    for (const isa of [ISAS.avx512, ISAS.avx2, ISAS.scalar]) {
      const p = choosePlan(conv2d(vgg(64, 64, 8)), isa, 2);
      for (const g of [p.forward, p.backwardData!]) {
        const [m, nv] = g.engine === 'direct' ? [g.MQ, g.NV] : [g.MR, g.NV];
        expect(m * nv + nv + 1).toBeLessThanOrEqual(isa.registers);
      }
    }
  });
});

describe('threads', () => {
  it('MASKACC_NUM_THREADS sets the default, options.threads overrides it', async () => {
    const saved = process.env.MASKACC_NUM_THREADS;
    try {
      process.env.MASKACC_NUM_THREADS = '1';
      const spec = { batch: 1, inChannels: 2, outChannels: 3, inHeight: 4, inWidth: 4, kernel: 3, padding: 1 };
      expect((await compileMaskedConv(spec, { isa: 'scalar' })).plan.threads).toBe(1);
      expect((await compileMaskedConv(spec, { isa: 'scalar', threads: 2 })).plan.threads).toBe(2);
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
    const spec: ConvSpec = { batch: 2, inChannels: 20, outChannels: 24, inHeight: 7, inWidth: 7, kernel: 3, padding: 1, bias: true };
    const r = rng(9);
    const x = r.uniformArray(2 * 20 * 49), w = r.uniformArray(24 * 20 * 9), b = r.uniformArray(24), dy = r.uniformArray(2 * 24 * 49);
    const copies = [x, w, b, dy].map((a) => a.slice());
    for (const strategy of [{}, { forward: 'planes', backwardData: 'planes', backwardWeights: 'planes' }] as const) {
      const conv = await compileMaskedConv(spec, { strategy, respecialize: false });
      conv.setMasks({ out: Array.from({ length: 24 }, (_, i) => i % 3), in: Array.from({ length: 20 }, (_, i) => i % 2) });
      conv.forward(x, w, b);
      conv.backwardData(dy, w);
      conv.backwardWeights(dy, x);
      [x, w, b, dy].forEach((a, i) => expect(a).toEqual(copies[i]));
    }
  });
});
