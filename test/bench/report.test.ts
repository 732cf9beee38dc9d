// Unit tests of the benchmark's pure parts: statistics, model summaries, peak targets, Markdown
// and SVG rendering (bench/report.ts), and the model tables (bench/models.ts). No native code.
import { describe, expect, it } from 'vitest';
import { convCount, dedupe, MODELS, withBatch } from '../../bench/models.js';
import {
  gflops,
  log2Ticks,
  mdTable,
  median,
  peakTargets,
  TARGET_1X1,
  quantile,
  ratioLabel,
  relL2,
  renderMarkdown,
  renderSpeedupSvg,
  sampleStats,
  summarizeDensity,
  type BenchRun,
  type DensityRun,
  type LayerRun,
  type LayerShape,
  type ModelRun,
} from '../../bench/report.js';

function shape(over: Partial<LayerShape> = {}): LayerShape {
  return {
    batch: 1,
    inChannels: 128,
    outChannels: 128,
    inHeight: 8,
    inWidth: 8,
    kernel: [3, 3],
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
    bias: false,
    outHeight: 8,
    outWidth: 8,
    ...over,
  };
}

const ok = () => ({ ok: true, relErr: {} });
const passes = (ms: number) => ({ fwd: [ms], bwd_data: [ms], bwd_weights: [ms] });

/** A density run whose three passes take `ms` for maskacc and twice that for the baselines. */
function dens(
  density: number,
  keptOut: number,
  keptIn: number,
  ms: number,
  denseFlops: number,
  k: number,
  c: number,
): DensityRun {
  return {
    density,
    keptOut,
    keptIn,
    keptFlops: (denseFlops * keptOut * keptIn) / (k * c),
    checks: { maskacc: ok(), onednn_compact: ok(), onednn_nocopy: ok(), im2col_blas: ok() },
    samples: {
      maskacc: passes(ms),
      onednn_compact: passes(2 * ms),
      onednn_nocopy: passes(1.5 * ms),
      im2col_blas: passes(2 * ms),
    },
    torch: { fwdMs: [1], stepMs: [12 * ms] },
  };
}

function layer(name: string, count: number, s: LayerShape, denseMs: number, ds: DensityRun[]): LayerRun {
  const denseFlops = 2 * s.batch * s.outChannels * s.inChannels * 9 * s.outHeight * s.outWidth;
  return { name, count, spec: s, denseFlops, dense: { samples: passes(denseMs) }, densities: ds };
}

/** Two layers, the second standing for 3 convs; densities 1 and 0.5. */
function model(): ModelRun {
  const s = shape();
  const f = 2 * 128 * 128 * 9 * 64;
  return {
    key: 'toy',
    name: 'Toy & Net',
    batch: 1,
    convs: 4,
    passes: ['fwd', 'bwd_data', 'bwd_weights'],
    densities: [1, 0.5],
    layers: [
      layer('a', 1, s, 4, [dens(1, 128, 128, 4, f, 128, 128), dens(0.5, 64, 64, 1, f, 128, 128)]),
      layer('b', 3, s, 4, [dens(1, 128, 128, 4, f, 128, 128), dens(0.5, 64, 64, 2, f, 128, 128)]),
    ],
    torch: { status: 'ok', version: '1.0' },
  };
}

function run(models: ModelRun[]): BenchRun {
  return {
    startedAt: 't0',
    finishedAt: 't1',
    command: 'npm run bench',
    options: {},
    machine: {
      cpu: 'Test CPU',
      logicalCpus: 2,
      threads: 2,
      peakGflops: { start: 90, end: 100, used: 100 },
      versions: { node: 'v20' },
    },
    models,
  };
}

describe('statistics', () => {
  it('quantiles interpolate linearly between order statistics', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(quantile([1, 2, 3, 4, 5], 0.25)).toBe(2);
    expect(quantile([10, 20], 0.75)).toBe(17.5);
    expect(median([])).toBeNaN();
  });

  it('sampleStats reports median, IQR and range', () => {
    expect(sampleStats([5, 1, 4, 2, 3])).toEqual({ n: 5, median: 3, q1: 2, q3: 4, min: 1, max: 5 });
  });

  it('relL2 is relative, exact for equal arrays, and rejects non-finite results', () => {
    expect(relL2([1, 2], [1, 2])).toBe(0);
    expect(relL2([3, 4.5], [3, 4])).toBeCloseTo(0.1, 12);
    expect(relL2([NaN, 0], [0, 0])).toBe(Infinity);
    expect(relL2([0, 0], [0, 0])).toBe(0);
    expect(relL2([1e-3, 0], [0, 0])).toBeGreaterThan(1e-4); // all pruned: only an exact zero passes
    expect(() => relL2([1], [1, 2])).toThrow(/lengths/);
  });

  it('gflops converts flops and milliseconds', () => {
    expect(gflops(2e9, 10)).toBe(200);
  });
});

describe('summaries', () => {
  it('weights totals by layer counts and derives speedups and the FLOP-weighted ideal', () => {
    const s = summarizeDensity(model(), 0.5);
    // maskacc: a 3 passes x 1 ms x 1 + b 3 x 2 ms x 3 = 21; baselines twice that; dense 3 x 4 x 4 = 48.
    expect(s.totalMs.maskacc).toBe(21);
    expect(s.totalMs.onednn_compact).toBe(42);
    expect(s.totalMs.onednn_dense).toBe(48);
    expect(s.totalMs.torch).toBe(12 + 3 * 24);
    expect(s.maskaccSpeedup.onednn_dense).toBeCloseTo(48 / 21, 12);
    expect(s.speedupOverDense.im2col_blas).toBeCloseTo(48 / 42, 12);
    expect(s.ideal).toBeCloseTo(4, 12); // half the filters x half the channels
  });

  it('leaves a total empty and names the layer when a contender FAILED there', () => {
    const m = model();
    const d = m.layers[1].densities[1];
    d.checks.maskacc = { ok: false, relErr: { fwd: 1 }, reason: 'mismatch' };
    d.samples.maskacc = {};
    const s = summarizeDensity(m, 0.5);
    expect(s.totalMs.maskacc).toBeNull();
    expect(s.missing.maskacc).toEqual(['b']);
    expect(s.maskaccSpeedup.onednn_dense).toBeNull();
    const md = renderMarkdown(run([m]));
    expect(md).toContain('| FAILED |');
    expect(md).toContain('**FAILED** maskacc on b: mismatch');
  });

  it('does not compare the torch step with a subset of the passes', () => {
    const m = { ...model(), passes: ['fwd' as const] };
    expect(summarizeDensity(m, 1).totalMs.torch).toBeNull();
    expect(summarizeDensity(m, 1).totalMs.maskacc).toBe(4 + 3 * 4);
  });

  it('checks the 85%-of-peak target on eligible layers only', () => {
    const m = model();
    // 128x128 at 8x8 is eligible at d=1 only (64 kept at 0.5 is also >= 64). Peak chosen so d=1 is at 100%.
    const f = m.layers[0].densities[0].keptFlops;
    const peak = gflops(f, 4);
    const t = peakTargets(m, peak);
    expect(t.map((x) => x.pass)).toEqual(['fwd', 'bwd_data', 'bwd_weights']);
    expect(t[0].cases).toHaveLength(4);
    // d=0.5: layer a runs 1/4 of the FLOPs in 1 ms (100%), layer b in 2 ms (50%): the target fails there.
    expect(t[0].met).toBe(3);
    expect(t[0].holds).toBe(false);
    expect(t[0].worst).toMatchObject({ layer: 'b', density: 0.5 });
    expect(t[0].worst?.fraction).toBeCloseTo(0.5, 12);
    m.layers.forEach((l) => (l.spec = shape({ outHeight: 4, outWidth: 4 })));
    expect(peakTargets(m, peak)[0].cases).toHaveLength(0);
  });

  it('checks the 80%-of-peak target on 1x1 layers with >= 64 kept, any plane size', () => {
    const m = model();
    const f = m.layers[0].densities[0].keptFlops;
    const peak = gflops(f, 4);
    // 3x3 layers are not its cases.
    expect(peakTargets(m, peak, TARGET_1X1)[0].cases).toHaveLength(0);
    m.layers.forEach((l) => (l.spec = shape({ kernel: [1, 1], padding: [0, 0], outHeight: 4, outWidth: 4 })));
    const t = peakTargets(m, peak, TARGET_1X1);
    expect(t[0].cases).toHaveLength(4);
    // Layer b at d=0.5 runs at 50% (as above); at 79.9% of this peak d=1 would fail too.
    expect(t[0].met).toBe(3);
    expect(peakTargets(m, peak / 0.799, TARGET_1X1)[0].met).toBe(0);
    expect(peakTargets(m, peak / 0.801, TARGET_1X1)[0].met).toBe(3);
    // 64 kept of 128 at d=0.5 counts, 63 does not.
    m.layers[0].densities[1].keptIn = 63;
    expect(peakTargets(m, peak, TARGET_1X1)[0].cases).toHaveLength(3);
  });
});

describe('markdown', () => {
  it('renders aligned tables and escapes pipes', () => {
    expect(mdTable(['a', 'b'], [['x|y', '1']], [false, true])).toBe('| a | b |\n|:---|---:|\n| x\\|y | 1 |');
  });

  it('renders a model section with per-layer rows, a summary and the target lines', () => {
    const md = renderMarkdown(run([model()]));
    expect(md).toContain('## Toy & Net, batch 1');
    expect(md).toContain('### Toy & Net at density 0.5');
    expect(md).toMatch(/\| b x3 128→128 3x3 @8x8 \| fwd \| 2\.00 \[2\.00–2\.00\] \|/);
    expect(md).toMatch(/\| 0\.50 \| 4\.00x \| 21\.0 \| 48\.0 \| 2\.29x \|/);
    expect(md).toContain('- fwd: **does not hold**');
    expect(md).toContain('on 3x3, >= 64 kept filters and channels, >= 8x8 outputs:');
    expect(md).toContain('Target >= 80% of peak');
    expect(md).toContain('- fwd: no eligible cases');
  });
});

describe('svg', () => {
  it('log2 ticks cover the range with 1x as a tick', () => {
    expect(log2Ticks(0.6, 3)).toEqual([0.5, 1, 2, 4]);
    expect(log2Ticks(1 / 300, 20)).toEqual([2 ** -10, 2 ** -8, 2 ** -6, 2 ** -4, 2 ** -2, 1, 4, 16, 64]);
    expect(ratioLabel(0.25)).toBe('1/4x');
    expect(ratioLabel(16)).toBe('16x');
  });

  it('draws one panel per model with a legend, escaped text and gaps for FAILED points', () => {
    const m = model();
    const svg = renderSpeedupSvg(run([m, { ...model(), name: 'Other' }]));
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('Toy &amp; Net, batch 1');
    expect(svg).not.toContain('Toy & Net');
    expect(svg).not.toMatch(/NaN|Infinity|undefined/);
    for (const label of [
      'maskacc',
      'oneDNN compact+copies',
      'im2col+OpenBLAS',
      'PyTorch masked-dense',
      'ideal 1/(d_out·d_in)',
    ]) {
      expect(svg).toContain(`>${label}</text>`);
    }
    // 2 panels x 6 series (maskacc, compact+copies, compact no copies, im2col, torch, ideal), one polyline each.
    expect(svg.match(/<polyline /g)).toHaveLength(12);

    const failedAt05 = model();
    failedAt05.layers[0].densities[1].samples.maskacc = {};
    const gap = renderSpeedupSvg(run([failedAt05]));
    // maskacc keeps its d=1 point but has no line segment left (a single point is not drawn as a line). (5 other series keep theirs)
    expect(gap.match(/<polyline /g)).toHaveLength(5);
    expect(gap.match(/<circle [^>]*fill="#d62728"/g)).toHaveLength(1);
  });
});

describe('models', () => {
  it('stand for 13 and 55 convs with identical specs merged', () => {
    expect(convCount(MODELS.vgg16)).toBe(13);
    expect(convCount(MODELS.resnet56)).toBe(55);
    expect(MODELS.vgg16.layers).toHaveLength(9);
    expect(MODELS.resnet56.layers).toHaveLength(6);
    const keys = MODELS.vgg16.layers.map((l) => JSON.stringify(l.spec));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('dedupe sums counts and withBatch changes only the batch', () => {
    const spec = { batch: 1, inChannels: 2, outChannels: 2, inHeight: 4, inWidth: 4, kernel: 3 };
    expect(
      dedupe([
        { name: 'x', spec, count: 1 },
        { name: 'y', spec: { ...spec }, count: 2 },
      ]),
    ).toEqual([{ name: 'x+y', spec, count: 3 }]);
    const small = withBatch(MODELS.resnet56, 8);
    expect(small.layers.every((l) => l.spec.batch === 8)).toBe(true);
    expect(MODELS.resnet56.layers[0].spec.batch).toBe(64);
    expect(convCount(small)).toBe(55);
  });
});
