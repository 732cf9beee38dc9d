// The scheduler's regime choices (thresholds measured on the benchmark, see plan.ts) and register
// tiles. Plans only, nothing is compiled (unit project).
import { describe, expect, it } from 'vitest';
import { conv2d, type ConvSpec } from '../../src/index.js';
import { choosePlan, regimeOf } from '../../src/schedule/plan.js';
import { ISAS, halfRateAvx512, type Isa } from '../../src/schedule/isa.js';

const vgg = (c: number, k: number, h: number, d = 1): ConvSpec => ({
  batch: 64,
  inChannels: c,
  outChannels: k,
  inHeight: h,
  inWidth: h,
  kernel: 3,
  padding: 1,
  density: { out: d, in: d },
});

describe('density regimes', () => {
  const plan = (s: ConvSpec) => choosePlan(conv2d(s), ISAS.avx512, 2);
  it('many kept channels: the channel-vectorized direct engine on every pass', () => {
    expect(regimeOf(plan(vgg(128, 128, 16)))).toBe('direct/direct/direct');
    expect(regimeOf(plan(vgg(512, 512, 2, 0.5)))).toBe('direct/direct/direct');
  });
  it('few kept filters or channels: spatially vectorized planes (stride 1)', () => {
    expect(regimeOf(plan(vgg(16, 16, 32, 0.5)))).toBe('planes/planes/planes');
    expect(plan(vgg(3, 64, 32)).backwardData!.source).toBe('planes'); // 3 input channels: few rows for dx
  });
  it('backward-weights goes direct from three quarters of a filter vector up', () => {
    expect(plan(vgg(16, 16, 32, 0.75)).backwardWeights.engine).toBe('direct'); // 12 of 16 lanes
    expect(plan(vgg(16, 16, 32, 0.625)).backwardWeights.engine).toBe('dot'); // 10 of 16
  });
  it('first layers (C = 1 or 3) with full filter vectors: backward-weights on column-tap tiles', () => {
    expect(plan(vgg(3, 64, 32)).backwardWeights).toMatchObject({ engine: 'direct', tile: 'taps' });
    expect(plan({ ...vgg(1, 32, 28), kernel: 5, padding: 2 }).backwardWeights).toMatchObject({ tile: 'taps' });
    expect(plan(vgg(3, 16, 32, 0.5)).backwardWeights.engine).toBe('dot'); // 8 kept filters: half a vector
  });
  it('on AVX2, first layers with 3-tap kernel rows take planes lanes for backward-weights', () => {
    const avx2 = (s: ConvSpec) => choosePlan(conv2d(s), ISAS.avx2, 2).backwardWeights;
    // 3-tap kernel rows, up to 16 vectors of kept filters
    expect(avx2(vgg(3, 64, 32))).toMatchObject({ engine: 'dot', source: 'planes' });
    expect(avx2(vgg(3, 48, 32))).toMatchObject({ engine: 'dot', source: 'planes' });
    expect(avx2({ ...vgg(3, 128, 32), batch: 32 })).toMatchObject({ engine: 'dot', source: 'planes' });
    expect(avx2({ ...vgg(8, 64, 56, 0.5), batch: 8 })).toMatchObject({ engine: 'dot', source: 'planes' });
    // more filters, 5-tap rows (5 x 2 tiles) and strided layers (no planes) keep the tap tiles
    expect(avx2({ ...vgg(3, 256, 16), batch: 32 })).toMatchObject({ engine: 'direct', tile: 'taps' });
    expect(avx2({ ...vgg(1, 64, 28), kernel: 5, padding: 2 })).toMatchObject({ engine: 'direct', tile: 'taps' });
    expect(avx2({ ...vgg(3, 64, 224), batch: 8, kernel: 7, padding: 3, stride: 2 })).toMatchObject({ tile: 'taps' });
  });
  it('few kept filters on few positions: backward-weights stays direct (dot lanes would run empty)', () => {
    const tiny = (h: number, batch: number) => plan({ ...vgg(16, 16, h, 0.5), batch }).backwardWeights.engine;
    expect(tiny(1, 1)).toBe('direct'); // 1 position
    expect(tiny(4, 4)).toBe('direct'); // 64 = 4 vectors
    expect(tiny(8, 2)).toBe('dot'); // 128
  });
  it('the same layer changes regime with its density', () => {
    expect(regimeOf(plan(vgg(32, 32, 16, 1)))).not.toBe(regimeOf(plan(vgg(32, 32, 16, 0.25))));
  });
  it("1x1 kernels get the pointwise GEMM (a strided one's backward-data over the dy grid)", () => {
    const pw = (stride: number) => plan({ ...vgg(256, 128, 56, 0.5), kernel: 1, padding: 0, stride });
    expect(regimeOf(pw(1))).toBe('pointwise/pointwise/pointwise');
    expect(regimeOf(pw(2))).toBe('pointwise/pointwise/direct'); // pointwise backward-weights: stride 1 only
    expect(pw(1).backwardData).toMatchObject({ source: 'pointwise', subsampled: false });
    expect(pw(2).forward).toMatchObject({ source: 'pointwise', subsampled: false });
    expect(pw(2).backwardData).toMatchObject({ source: 'pointwise', subsampled: true });
    // A 3x3 never subsamples, even forced to pointwise-like GEMMs.
    expect(plan({ ...vgg(256, 128, 56, 0.5), stride: 2 }).backwardData).not.toMatchObject({ subsampled: true });
  });
  it('stride-1 1x1 passes go direct on few columns, and backward-data on AVX-512 planes whose vectors cross images when it reduces 4x its rows', () => {
    const pw = (isa: Isa, h: number, batch: number, c: number, k: number, stride = 1) =>
      choosePlan(
        conv2d({
          batch,
          inChannels: c,
          outChannels: k,
          inHeight: h,
          inWidth: h,
          kernel: 1,
          stride,
          density: { out: 0.5, in: 0.5 },
        }),
        isa,
        2,
      );
    const direct = { source: 'direct' },
      pointwise = { source: 'pointwise' };
    // 256 -> 1024 at d=0.5: backward-data reduces 512 kept filters into 128 rows, the forward 128 into 512
    expect(pw(ISAS.avx512, 14, 1, 1024, 256).forward).toMatchObject(direct); // 196 columns
    expect(pw(ISAS.avx512, 14, 1, 512, 256).forward).toMatchObject(direct); // there a reduction of half the rows will do
    expect(pw(ISAS.avx512, 14, 8, 256, 1024).backwardData).toMatchObject(direct); // 12.25 vectors a plane
    expect(pw(ISAS.avx512, 7, 16, 512, 2048).backwardData).toMatchObject(direct); // 3.06
    expect(pw(ISAS.avx512, 14, 8, 1024, 256).forward).toMatchObject(pointwise); // forwards flip with the VM's phase
    expect(pw(ISAS.avx512, 14, 8, 1024, 256).backwardData).toMatchObject(pointwise); // short reduction
    expect(pw(ISAS.avx512, 11, 8, 256, 512).backwardData).toMatchObject(pointwise); // twice the rows
    expect(pw(ISAS.avx512, 16, 8, 256, 1024).backwardData).toMatchObject(pointwise); // whole vectors
    expect(pw(ISAS.avx512, 8, 64, 128, 512).backwardData).toMatchObject(pointwise);
    expect(pw(ISAS.avx512, 17, 8, 256, 1024).backwardData).toMatchObject(pointwise); // 18 vectors
    expect(pw(ISAS.avx2, 7, 8, 512, 2048).backwardData).toMatchObject(pointwise); // AVX2: direct ran 0.94-0.95x
  });
  it('large planes reduce backward-weights in row blocks per thread; tiny planes in image blocks', () => {
    const wp = (s: ConvSpec) => plan(s).backwardWeights;
    expect(wp(vgg(64, 64, 56, 0.5))).toMatchObject({ engine: 'direct', blocking: 'rows' });
    expect(wp(vgg(512, 512, 2))).toMatchObject({ engine: 'direct', blocking: 'images' });
  });
  it('a batch below the thread count shares image blocks when private partial sums would be large', () => {
    const blocking = (s: ConvSpec) => (plan(s).backwardWeights as { blocking: string }).blocking;
    expect(blocking({ ...vgg(256, 256, 14, 0.5), batch: 1 })).toBe('images'); // 128 x 128 x 9 sums: 590 KiB
    expect(blocking({ ...vgg(256, 256, 14, 0.5), batch: 2 })).toBe('rows'); // an image per thread
    expect(blocking({ ...vgg(64, 64, 56, 0.5), batch: 1 })).toBe('rows'); // 32 x 32 x 9 sums: 36 KiB
    expect(blocking({ ...vgg(128, 128, 224, 0.5), batch: 1 })).toBe('rows'); // an image's packs exceed L2
  });
  it('small batches split direct row blocks, but not below the kernel height', () => {
    const rows = (s: ConvSpec) => (plan(s).forward as { rowsPerBlock: number }).rowsPerBlock;
    expect(rows({ ...vgg(512, 512, 7, 0.5), batch: 1 })).toBe(4); // 7 -> 4 rows; 2 would repack each row 3x
    expect(rows({ ...vgg(256, 256, 14, 0.5), batch: 1 })).toBe(4); // 14 -> 7 -> 4
    expect(rows({ ...vgg(512, 512, 7, 0.5), batch: 1, kernel: 5, padding: 2 })).toBe(7); // 5 rows at least
    expect(rows({ ...vgg(1024, 1024, 7, 0.5), batch: 1, kernel: 1, padding: 0 })).toBe(1); // no halo: down to a row
  });
  it('inputGrad: false plans no backward-data pass', () => {
    const p = plan({ ...vgg(3, 64, 32), inputGrad: false });
    expect(p.backwardData).toBeNull();
    expect(regimeOf(p)).toMatch(/\/none\//);
  });
  it('planes tiles start at row starts where the rows are whole tiles, else run along the plane', () => {
    const fwd = (h: number) => plan({ ...vgg(16, 16, h, 0.5), batch: 8 }).forward;
    expect(fwd(32)).toMatchObject({ source: 'planes', rowTiles: true, NR: 32 }); // 2 vectors a row, none crossing
    expect(fwd(48)).toMatchObject({ source: 'planes', rowTiles: true, NR: 48 });
    expect(fwd(56)).toMatchObject({ source: 'planes', rowTiles: false }); // 64-lane tiles would compute 8 lanes of 56 for nothing
    expect(fwd(100)).toMatchObject({ source: 'planes', rowTiles: false });
  });
  it('partly empty channel vectors go to planes where planes fill their tiles better', () => {
    const fwd = (kept: number, h: number) =>
      plan({ ...vgg(128, 128, h), density: { out: kept / 128, in: kept / 128 } }).forward;
    expect(fwd(24, 32).source).toBe('planes'); // 24 of 32 lanes against whole rows of 32
    expect(fwd(100, 16).source).toBe('planes'); // 100 of 112
    expect(fwd(128, 16).engine).toBe('direct'); // full vectors
    expect(fwd(115, 28).engine).toBe('direct'); // 115 of 128 lanes against 28 of 32 columns
    expect(fwd(24, 8).engine).toBe('direct'); // 8-wide rows fill half a vector
  });
  it('1x1 backward-weights: pointwise from planes of 6 vectors, vectors along the cheaper side', () => {
    const pw = (c: number, k: number, h: number, batch = 8) =>
      plan({ ...vgg(c, k, h, 0.5), kernel: 1, padding: 0, batch }).backwardWeights;
    expect(pw(64, 256, 56)).toMatchObject({ engine: 'pointwise', vectors: 'channels' }); // 32 channels, 128 filters
    expect(pw(256, 64, 56)).toMatchObject({ engine: 'pointwise', vectors: 'filters' });
    expect(pw(16, 96, 112)).toMatchObject({ engine: 'pointwise', vectors: 'filters' }); // 8 channels would fill half a vector
    expect(pw(2048, 512, 7).engine).toBe('direct'); // 49 positions: 3 AVX-512 vectors, runs too short to stream
    const onAvx2 = choosePlan(conv2d({ ...vgg(2048, 512, 7, 0.5), kernel: 1, padding: 0, batch: 8 }), ISAS.avx2, 2);
    expect(onAvx2.backwardWeights.engine).toBe('pointwise'); // 6 AVX2 vectors
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
  it('AVX2 direct tiles keep broadcasts below FMAs: one vector sharing them across column taps, where AVX-512 scores take one or 8', () => {
    // 64 kept filters on 56-, 28- and 32-wide rows: a one-vector tile whose kernel rows broadcast
    // each position once for their 3 column taps (14 x 1 without sharing: a broadcast per FMA).
    for (const [c, h] of [
      [128, 56],
      [128, 28],
      [64, 32],
    ]) {
      const layer = conv2d({ ...vgg(c, c, h, 64 / c), batch: 8 });
      const avx2 = choosePlan(layer, ISAS.avx2, 2).forward;
      const asAvx512 = choosePlan(layer, { ...ISAS.avx2, directStepCost: 2, loadsPerFma: 1 }, 2).forward;
      expect(avx2).toMatchObject({ engine: 'direct', NV: 1 });
      expect(avx2.engine === 'direct' && avx2.MQ >= 8 && avx2.MQ + 3 + 1 <= ISAS.avx2.registers).toBe(true);
      expect(asAvx512.engine === 'direct' && (asAvx512.NV === 1 || asAvx512.MQ * asAvx512.NV === 8)).toBe(true);
    }
    // Backward-data at stride 2 runs column phases: no kernel row to share, two-vector tiles.
    const strided = choosePlan(conv2d({ ...vgg(256, 256, 28, 0.5), stride: 2, batch: 8 }), ISAS.avx2, 2);
    expect(strided.backwardData).toMatchObject({ engine: 'direct', NV: 2 });
  });
  it('AVX-512 at half FMA rate (Zen 4): direct tiles of one vector, where full rate takes two; 1x1 backward-weights keep theirs', () => {
    const zen4 = { ...ISAS.avx512, halfRateFma: true };
    const direct = (spec: ConvSpec, isa = zen4) => {
      const p = choosePlan(conv2d(spec), isa, 2);
      return [p.forward, p.backwardData!, p.backwardWeights].map((g) =>
        g.engine === 'direct' ? `${'MQ' in g ? g.MQ : g.MT}x${g.NV}` : g.engine,
      );
    };
    // VGG-16's 64 @32 and 64 -> 128 @16 at d=0.5 (measured 1.03-1.09x faster on one vector).
    expect(direct(vgg(64, 64, 32, 0.5))).toEqual(['16x1', '16x1', '16x1']);
    expect(direct(vgg(64, 64, 32, 0.5), ISAS.avx512)).toEqual(['8x2', '8x2', '8x2']);
    expect(direct(vgg(64, 128, 16, 0.5))).toEqual(['16x1', '16x1', '16x1']);
    // 1x1 backward-weights (pointwise, and direct at stride 2): 16 x 1 ran 0.84-0.86x of 8 x 2 there.
    for (const stride of [1, 2]) {
      const pw = { batch: 8, inChannels: 64, outChannels: 128, inHeight: 56, inWidth: 56, kernel: 1, stride };
      const dw = (isa = zen4) => choosePlan(conv2d({ ...pw, density: { out: 0.5, in: 0.5 } }), isa, 2).backwardWeights;
      expect(dw()).toEqual(dw(ISAS.avx512));
    }
  });
  it('AVX-512 at half FMA rate: a direct tile whose weights fit L1 beats a wider one whose weights do not', () => {
    const zen4 = { ...ISAS.avx512, halfRateFma: true };
    const tiles = (spec: ConvSpec, isa: Isa = zen4) => {
      const p = choosePlan(conv2d({ ...spec, density: { out: 0.5, in: 0.5 } }), isa, 2);
      return [p.forward, p.backwardData!].map((g) => (g.engine === 'direct' ? `${g.MQ}x${g.NV}` : g.source));
    };
    const conv3x3 = (c: number, h: number, stride = 1): ConvSpec => {
      return { batch: 8, inChannels: c, outChannels: c, inHeight: h, inWidth: h, kernel: 3, padding: 1, stride };
    };
    // 32 kept channels x 9 taps x 16 filters (18 KiB) fit, x 32 (37 KiB) do not.
    expect(tiles(conv3x3(64, 56))).toEqual(['14x1', '14x1']);
    // Stride 2: each backward-data phase runs at most 4 taps over 64 kept filters: 16 KiB and a
    // 5 KiB row stage for 16 channels; the forward's 9 taps overflow L1 either way.
    expect(tiles(conv3x3(128, 56, 2))).toEqual(['14x2', '14x1']);
    // Neither fits (64 kept x 9 taps): the wider tile's fewer steps decide.
    expect(tiles(conv3x3(128, 28))).toEqual(['14x2', '14x2']);
    // Full-rate machines (one-vector tiles load-bound there, 48 KiB L1s) keep their scores.
    expect(tiles(conv3x3(128, 56, 2), ISAS.avx512)).toEqual(['14x2', '14x2']);
  });
  it('half-rate AVX-512 is read from cpuinfo: AMD family 25 with avx512f (Zen 4), not Zen 3 or 5 or Intel', () => {
    const cpu = (vendor: string, family: number, flags: string) =>
      `processor\t: 0\nvendor_id\t: ${vendor}\ncpu family\t: ${family}\nmodel\t\t: 17\nflags\t\t: fpu sse2 ${flags}\n`;
    expect(halfRateAvx512(cpu('AuthenticAMD', 25, 'avx2 fma avx512f avx512dq'))).toBe(true); // Zen 4
    expect(halfRateAvx512(cpu('AuthenticAMD', 25, 'avx2 fma'))).toBe(false); // Zen 3
    expect(halfRateAvx512(cpu('AuthenticAMD', 26, 'avx2 fma avx512f'))).toBe(false); // Zen 5
    expect(halfRateAvx512(cpu('GenuineIntel', 6, 'avx2 fma avx512f'))).toBe(false);
    expect(halfRateAvx512('')).toBe(false);
  });
  it('direct column tiles on one-phase rows avoid taking every register (GCC spills them); image tiles may', () => {
    const tiles = (spec: ConvSpec, isa = ISAS.avx2) => {
      const p = choosePlan(conv2d(spec), isa, 2);
      return [p.forward, p.backwardData!].map((g) => (g.engine === 'direct' ? `${g.MQ}x${g.NV}` : g.source));
    };
    // 128 kept on 8-wide rows: 4 x 3 pads 128 rows to 144 but scored best before; 4 x 2 ran 1.45x
    // faster, and one-vector tiles sharing broadcasts (8 + 3 weight vectors + 1) 1.10-1.28x more.
    expect(tiles(vgg(256, 256, 8, 0.5))).toEqual(['8x1', '8x1']);
    expect(tiles({ ...vgg(512, 512, 7, 0.5), batch: 8 })).toEqual(['8x1', '8x1']);
    // Image tiles (4x4 planes across 64 images) and a strided backward-data keep 4 x 3.
    expect(tiles(vgg(512, 512, 4, 0.7))).toEqual(['4x3', '4x3']);
    expect(tiles({ ...vgg(512, 512, 14, 0.5), stride: 2, batch: 8 })[1]).toBe('4x3');
    // AVX-512 tiles never take all 32 registers: nothing to avoid there.
    for (const d of [1, 0.7, 0.5])
      for (const h of [7, 8, 14, 16, 28, 56]) {
        const p = choosePlan(conv2d({ ...vgg(256, 256, h, d), batch: 8 }), ISAS.avx512, 2);
        for (const g of [p.forward, p.backwardData!])
          if (g.engine === 'direct') expect(g.MQ * g.NV + g.NV + 1).toBeLessThan(ISAS.avx512.registers);
      }
  });
  it('AVX2 planes score their loads: two-vector tiles, and rows of one vector go direct', () => {
    const avx2 = (s: ConvSpec) => choosePlan(conv2d(s), ISAS.avx2, 2).forward;
    // 90 kept of 128 on 16-wide rows: planes, with a two-vector tile (a broadcast per FMA otherwise).
    expect(avx2(vgg(128, 128, 16, 0.7))).toMatchObject({ source: 'planes', NV: 2 });
    // 8-wide rows leave planes one-vector tiles only: 179 kept of 256 run direct on AVX2, and on
    // planes with the fill alone (loads as cheap as on AVX-512, which folds broadcasts into FMAs).
    expect(avx2(vgg(256, 256, 8, 0.7)).engine).toBe('direct');
    const fillOnly = choosePlan(conv2d(vgg(256, 256, 8, 0.7)), { ...ISAS.avx2, loadsPerFma: 1 }, 2);
    expect(fillOnly.forward.source).toBe('planes');
  });
  it('AVX2, few reduction channels: direct where planes row tiles run partly empty, planes where they fill', () => {
    const first = (c: number, k: number, h: number, kernel = 3) =>
      choosePlan(conv2d({ ...vgg(c, k, h), kernel, padding: kernel >> 1, inputGrad: false }), ISAS.avx2, 2).forward
        .engine;
    expect(first(1, 32, 28)).toBe('direct'); // 28-wide rows in 32 lanes
    expect(first(3, 32, 28, 5)).toBe('direct');
    expect(first(1, 64, 32)).toBe('gemm'); // 32-wide rows: full planes tiles
    expect(first(3, 64, 32)).toBe('gemm');
  });
  it('AVX-512, few reduction channels: direct where its channel vectors fill at least as well as planes tiles', () => {
    const pass = (s: ConvSpec) => choosePlan(conv2d(s), ISAS.avx512, 2);
    expect(pass({ ...vgg(1, 32, 28), inputGrad: false }).forward.engine).toBe('direct'); // 32 rows, 28-wide planes
    expect(pass({ ...vgg(8, 64, 56, 0.5), batch: 8 }).forward.engine).toBe('direct'); // 4 kept channels
    expect(pass({ ...vgg(64, 8, 56, 0.5), batch: 8 }).backwardData!.engine).toBe('direct'); // 4 kept filters
    expect(pass({ ...vgg(12, 40, 28, 0.5), batch: 8 }).forward.engine).toBe('gemm'); // 20 of 32 lanes
    expect(pass({ ...vgg(3, 16, 32, 0.5), inputGrad: false }).forward.engine).toBe('gemm'); // 8 rows: half a vector
  });
  it('pointwise tiles on few positions keep loads below FMAs (two vectors on AVX2, not 13-14 x 1)', () => {
    for (const [c, k, h] of [
      [512, 2048, 7],
      [2048, 512, 7],
      [512, 512, 14],
    ]) {
      const spec: ConvSpec = { batch: 8, inChannels: c, outChannels: k, inHeight: h, inWidth: h, kernel: 1 };
      const p = choosePlan(conv2d({ ...spec, density: { out: 0.5, in: 0.5 } }), ISAS.avx2, 2);
      for (const g of [p.forward, p.backwardData!]) {
        expect(g).toMatchObject({ engine: 'gemm', source: 'pointwise' });
        if (g.engine === 'gemm') expect(g.MR + g.NV).toBeLessThan(g.MR * g.NV);
      }
    }
  });
  it('pointwise tiles whose B overflows L1 while A streams from L3 take more rows (B reuse)', () => {
    const pw = (c: number, k: number, batch: number, h: number) => {
      const spec: ConvSpec = { batch, inChannels: c, outChannels: k, inHeight: h, inWidth: h, kernel: 1 };
      const p = choosePlan(conv2d({ ...spec, density: { out: 0.5, in: 0.5 } }), ISAS.avx2, 2);
      return [p.forward, p.backwardData!].map((g) => (g.engine === 'gemm' ? `${g.MR}x${g.NV}` : g.engine));
    };
    // 196 columns fit 2 x 40 tiles best, but 512 kept rows over a 512-long reduction re-read 80 KiB
    // of B from L2 per panel: 6 x 16 (measured 1.15-1.32x faster).
    expect(pw(1024, 1024, 4, 7)).toEqual(['6x2', '6x2']);
    // All of A in L2 (32 kept rows), or a short reduction (32 kept): 2 x 40 stays.
    expect(pw(64, 1024, 4, 7)[1]).toBe('2x5');
    expect(pw(64, 256, 4, 7)).toEqual(['2x5', '2x5']);
  });
});
