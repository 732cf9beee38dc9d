// Turns raw benchmark samples into statistics, model summaries, the Markdown report and the
// speedup SVG. Pure functions over plain data (no I/O, no native code), so they are unit-tested.
import { FAR_NS } from './core-distance.js';

export type Pass = 'fwd' | 'bwd_data' | 'bwd_weights';
export const PASSES: readonly Pass[] = ['fwd', 'bwd_data', 'bwd_weights'];

/** Contenders that run at the benchmark's masks; oneDNN dense ignores them. */
export type MaskedContender = 'maskacc' | 'onednn_compact' | 'onednn_nocopy' | 'im2col_blas';
/** onednn_nocopy: oneDNN on the kept shapes, operands pre-gathered, no copies (the efficiency yardstick). */
export const MASKED_CONTENDERS: readonly MaskedContender[] = [
  'maskacc',
  'onednn_compact',
  'onednn_nocopy',
  'im2col_blas',
];
export type Contender = MaskedContender | 'onednn_dense';

export const CONTENDER_LABEL: Record<Contender | 'torch', string> = {
  maskacc: 'maskacc',
  onednn_dense: 'oneDNN dense',
  onednn_compact: 'oneDNN compact+copies',
  onednn_nocopy: 'oneDNN compact, no copies',
  im2col_blas: 'im2col+OpenBLAS',
  torch: 'PyTorch masked-dense',
};

/** The normalized layer as stored in the results (a plain copy of the ConvLayer fields). */
export interface LayerShape {
  batch: number;
  inChannels: number;
  outChannels: number;
  inHeight: number;
  inWidth: number;
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  bias: boolean;
  outHeight: number;
  outWidth: number;
  /** false: the network's first layer, whose input needs no gradient (no backward-data pass). */
  inputGrad?: boolean;
}

/** Outcome of the pre-timing correctness check of one contender at one density. */
export interface CheckResult {
  ok: boolean;
  /** Relative L2 error per pass against oneDNN dense on masked inputs. */
  relErr: Partial<Record<Pass, number>>;
  /** Why it failed (mismatch, or the error a constructor or call threw). */
  reason?: string;
}

export interface DensityRun {
  density: number;
  keptOut: number;
  keptIn: number;
  /** FLOPs of one pass on kept filters and channels: 2*N*K'*C'*R*S*P*Q. */
  keptFlops: number;
  /** maskacc's chosen plan (explain()), for reading the numbers. */
  plan?: string;
  checks: Record<MaskedContender, CheckResult>;
  /** Milliseconds per timed rep; absent when the contender FAILED its check. */
  samples: Record<MaskedContender, Partial<Record<Pass, number[]>>>;
  torch?: { fwdMs: number[]; stepMs: number[] };
}

export interface LayerRun {
  name: string;
  count: number;
  spec: LayerShape;
  denseFlops: number;
  dense: { samples: Partial<Record<Pass, number[]>>; error?: string };
  densities: DensityRun[];
}

export interface TorchStatus {
  status: 'ok' | 'skipped' | 'unavailable' | 'error';
  note?: string;
  version?: string;
}

export interface ModelRun {
  key: string;
  name: string;
  batch: number;
  /** Convs of the (possibly --layers-truncated) model, counts included. */
  convs: number;
  passes: Pass[];
  densities: number[];
  layers: LayerRun[];
  torch: TorchStatus;
}

export interface BenchRun {
  startedAt: string;
  finishedAt: string;
  command: string;
  options: Record<string, unknown>;
  machine: {
    cpu: string;
    /** The vector ISA the kernels and the FMA-peak loop ran (older results lack it). */
    isa?: string;
    logicalCpus: number;
    threads: number;
    /** Max of the sustained and burst readings at start and end; `used` is the larger of the two. */
    peakGflops: {
      start: number;
      end: number;
      used: number;
      readings?: Record<'start' | 'end', { sustained: number; burst: number }>;
    };
    /** 1-minute load average at start and end: how contended the (shared) machine was. */
    loadAverage?: { start: number; end: number };
    /** Round trip of a cache line between the two threads' cores before each timed rep, ns (older results lack it). */
    coreDistanceNs?: number[];
    versions: Record<string, string>;
  };
  models: ModelRun[];
  /** The runtime's fixed costs (issue 14), unless --no-runtime. */
  runtime?: RuntimeRun;
}

/** Outputs allocated by the call (the obvious loop) against outputs passed in and reused. */
export interface AllocationRow {
  layer: string;
  pass: Pass;
  /** ms per call, each sample a loop of consecutive calls once the pool is warm. */
  allocatedMs: number[];
  reusedMs: number[];
  /** The cold start: each allocated call until the pool served one from its free list (absent in older runs). */
  coldMs?: number[];
  /** Pool blocks of the timed allocated loops served from the free list, of all pool blocks they took. */
  poolHits?: number;
  poolCalls?: number;
}
/** Per-call cost of a small layer, µs: maskacc with reused and with allocated outputs, oneDNN dense. */
export interface CallCostRow {
  layer: string;
  density: number;
  pass: Pass;
  reusedUs: number[];
  allocatedUs: number[];
  denseUs: number[];
  check: CheckResult;
}
export interface RuntimeRun {
  allocation: AllocationRow[];
  calls: CallCostRow[];
}

// ---------------------------------------------------------------- statistics

export interface SampleStats {
  n: number;
  median: number;
  q1: number;
  q3: number;
  min: number;
  max: number;
}

/** Quantile with linear interpolation between order statistics (NumPy's default); NaN if empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export function sampleStats(values: readonly number[]): SampleStats {
  return {
    n: values.length,
    median: median(values),
    q1: quantile(values, 0.25),
    q3: quantile(values, 0.75),
    min: values.length ? Math.min(...values) : NaN,
    max: values.length ? Math.max(...values) : NaN,
  };
}

/** ||a - e||_2 / ||e||_2 in float64; any non-finite value in `a` gives Infinity. */
export function relL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`relL2: lengths ${actual.length} vs ${expected.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < actual.length; i++) {
    if (!Number.isFinite(actual[i])) return Infinity;
    const d = actual[i] - expected[i];
    num += d * d;
    den += expected[i] * expected[i];
  }
  // An all-zero expectation (everything pruned) then needs an essentially exact zero result.
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** GFLOP/s of `flops` done in `ms` milliseconds. */
export function gflops(flops: number, ms: number): number {
  return flops / (ms * 1e6);
}

// ---------------------------------------------------------------- summaries

/** Median ms of one contender, layer, density and pass; null when it failed or was not run. */
export function medianMs(layer: LayerRun, contender: Contender, d: DensityRun | undefined, pass: Pass): number | null {
  const samples = contender === 'onednn_dense' ? layer.dense.samples[pass] : d?.samples[contender]?.[pass];
  return samples && samples.length > 0 ? median(samples) : null;
}

/** The passes a layer runs: a first layer (inputGrad: false) has no backward-data pass, for anyone. */
export function layerPasses(spec: Pick<LayerShape, 'inputGrad'>, passes: readonly Pass[]): Pass[] {
  return passes.filter((p) => p !== 'bwd_data' || spec.inputGrad !== false);
}

/** Sum of per-pass medians (one training step of the layer) or null if any pass is missing. */
export function stepMs(
  layer: LayerRun,
  contender: Contender,
  d: DensityRun | undefined,
  passes: readonly Pass[],
): number | null {
  let total = 0;
  for (const p of layerPasses(layer.spec, passes)) {
    const m = medianMs(layer, contender, d, p);
    if (m === null) return null;
    total += m;
  }
  return total;
}

export type SummaryContender = Contender | 'torch';
export const SUMMARY_CONTENDERS: readonly SummaryContender[] = [
  'maskacc',
  'onednn_dense',
  'onednn_compact',
  'onednn_nocopy',
  'im2col_blas',
  'torch',
];

export interface DensitySummary {
  density: number;
  /** Dense FLOPs / kept FLOPs over the model, weighted by counts (the passes weigh the same). */
  ideal: number;
  /** Count-weighted total ms of the selected passes; null if any layer is missing (FAILED). */
  totalMs: Record<SummaryContender, number | null>;
  /** contender total / maskacc total: > 1 means maskacc is faster. */
  maskaccSpeedup: Record<SummaryContender, number | null>;
  /** dense oneDNN total / contender total: the SVG's y values. */
  speedupOverDense: Record<SummaryContender, number | null>;
  /** Layers whose numbers are missing per contender (FAILED checks). */
  missing: Record<SummaryContender, string[]>;
}

function densityRun(layer: LayerRun, density: number): DensityRun | undefined {
  return layer.densities.find((d) => d.density === density);
}

/** Per-layer step time of a contender at a density (torch: its measured fwd+bwd step). */
function layerStep(model: ModelRun, layer: LayerRun, c: SummaryContender, density: number): number | null {
  const d = densityRun(layer, density);
  if (c !== 'torch') return stepMs(layer, c, d, model.passes);
  // The torch step always runs all three passes, so it only compares with the full set.
  if (model.passes.length !== PASSES.length || !d?.torch || d.torch.stepMs.length === 0) return null;
  return median(d.torch.stepMs);
}

export function summarizeDensity(model: ModelRun, density: number): DensitySummary {
  let denseFlops = 0;
  let keptFlops = 0;
  for (const l of model.layers) {
    const d = densityRun(l, density);
    denseFlops += l.count * l.denseFlops;
    keptFlops += l.count * (d?.keptFlops ?? l.denseFlops);
  }
  const totalMs = {} as Record<SummaryContender, number | null>;
  const missing = {} as Record<SummaryContender, string[]>;
  for (const c of SUMMARY_CONTENDERS) {
    let total = 0;
    missing[c] = [];
    for (const l of model.layers) {
      const ms = layerStep(model, l, c, density);
      if (ms === null) missing[c].push(l.name);
      else total += l.count * ms;
    }
    totalMs[c] = missing[c].length === 0 && model.layers.length > 0 ? total : null;
  }
  const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : null);
  const maskaccSpeedup = {} as Record<SummaryContender, number | null>;
  const speedupOverDense = {} as Record<SummaryContender, number | null>;
  for (const c of SUMMARY_CONTENDERS) {
    maskaccSpeedup[c] = ratio(totalMs[c], totalMs.maskacc);
    speedupOverDense[c] = ratio(totalMs.onednn_dense, totalMs[c]);
  }
  return {
    density,
    ideal: keptFlops > 0 ? denseFlops / keptFlops : Infinity,
    totalMs,
    maskaccSpeedup,
    speedupOverDense,
    missing,
  };
}

export function summarizeModel(model: ModelRun): DensitySummary[] {
  return model.densities.map((d) => summarizeDensity(model, d));
}

/** A %-of-peak target of issue 11: the layers it applies to, and the fraction of peak each pass must reach. */
export interface PeakTarget {
  /** Which layers, as the report prints it. */
  readonly layers: string;
  readonly fraction: number;
  eligible(l: LayerRun, d: DensityRun): boolean;
}

const keptAtLeast64 = (d: DensityRun) => d.keptOut >= 64 && d.keptIn >= 64;

/** 3x3 layers with >= 64 kept filters and channels and >= 8x8 outputs: 85%. */
export const TARGET_3X3: PeakTarget = {
  layers: '3x3, >= 64 kept filters and channels, >= 8x8 outputs',
  fraction: 0.85,
  eligible: (l, d) =>
    l.spec.kernel[0] === 3 &&
    l.spec.kernel[1] === 3 &&
    keptAtLeast64(d) &&
    l.spec.outHeight >= 8 &&
    l.spec.outWidth >= 8,
};

/** 1x1 layers (any stride) with >= 64 kept filters and channels: 80%. */
export const TARGET_1X1: PeakTarget = {
  layers: '1x1, >= 64 kept filters and channels',
  fraction: 0.8,
  eligible: (l, d) => l.spec.kernel[0] === 1 && l.spec.kernel[1] === 1 && keptAtLeast64(d),
};

export const PEAK_TARGETS: readonly PeakTarget[] = [TARGET_3X3, TARGET_1X1];

export interface TargetCase {
  layer: string;
  density: number;
  /** Fraction of peak, or null when maskacc FAILED (which counts as a miss). */
  fraction: number | null;
}

export interface PassTarget {
  pass: Pass;
  cases: TargetCase[];
  met: number;
  holds: boolean;
  worst?: TargetCase;
}

/** Per pass: which of the target's eligible (layer, density) cases reach its fraction of `peakGflops`. */
export function peakTargets(model: ModelRun, peakGflops: number, target: PeakTarget = TARGET_3X3): PassTarget[] {
  return model.passes.map((pass) => {
    const cases: TargetCase[] = [];
    for (const l of model.layers) {
      for (const d of l.densities) {
        if (!target.eligible(l, d) || !layerPasses(l.spec, [pass]).length) continue;
        const ms = medianMs(l, 'maskacc', d, pass);
        cases.push({
          layer: l.name,
          density: d.density,
          fraction: ms === null ? null : gflops(d.keptFlops, ms) / peakGflops,
        });
      }
    }
    const met = cases.filter((c) => c.fraction !== null && c.fraction >= target.fraction).length;
    const worst = [...cases].sort((a, b) => (a.fraction ?? -1) - (b.fraction ?? -1))[0];
    return { pass, cases, met, holds: cases.length > 0 && met === cases.length, worst };
  });
}

// ---------------------------------------------------------------- Markdown

export function fmtMs(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '—';
  if (ms < 1) return ms.toFixed(3);
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return ms.toFixed(0);
}

export function fmtRatio(r: number | null): string {
  return r === null || !Number.isFinite(r) ? '—' : `${r.toFixed(2)}x`;
}

function fmtPct(f: number | null): string {
  return f === null || !Number.isFinite(f) ? '—' : `${(f * 100).toFixed(0)}%`;
}

/** The obvious loop's warm-up calls: how many, the first ones' ms and the slowest. */
function coldText(ms: number[]): string {
  const shown = ms.slice(0, 4).map((v) => v.toFixed(0));
  const more = ms.length > 4 ? `, …; slowest ${Math.max(...ms).toFixed(0)}` : '';
  return `${ms.length} (${shown.join(', ')}${more})`;
}

/** A GitHub-flavoured Markdown table; `right` marks numeric columns. */
export function mdTable(headers: string[], rows: string[][], right: boolean[] = []): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const line = (cells: string[]) => `| ${cells.map(esc).join(' | ')} |`;
  const rule = `|${headers.map((_, i) => (right[i] ? '---:' : ':---')).join('|')}|`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}

export function layerLabel(l: LayerRun): string {
  const s = l.spec;
  const stride = s.stride[0] > 1 || s.stride[1] > 1 ? ` s${s.stride[0]}` : '';
  const count = l.count > 1 ? ` x${l.count}` : '';
  return `${l.name}${count} ${s.inChannels}→${s.outChannels} ${s.kernel[0]}x${s.kernel[1]}${stride} @${s.inHeight}x${s.inWidth}`;
}

function msWithSpread(samples: number[] | undefined): string {
  if (!samples || samples.length === 0) return '—';
  const st = sampleStats(samples);
  return `${fmtMs(st.median)} [${fmtMs(st.q1)}–${fmtMs(st.q3)}]`;
}

/** maskacc cell: the median with its IQR, or FAILED when its check failed. */
function maskaccCell(d: DensityRun, pass: Pass): string {
  if (!d.checks.maskacc.ok) return 'FAILED';
  return msWithSpread(d.samples.maskacc[pass]);
}

function otherCell(l: LayerRun, c: Contender, d: DensityRun, pass: Pass): string {
  if (c !== 'onednn_dense' && d.checks[c]?.ok === false) return 'FAILED';
  if (c === 'onednn_dense' && l.dense.error) return 'FAILED';
  return fmtMs(medianMs(l, c, d, pass));
}

const LAYER_HEADERS = [
  'layer',
  'pass',
  'maskacc ms [IQR]',
  'GFLOP/s',
  '% peak',
  'dense ms',
  'vs dense',
  'compact ms',
  'vs compact',
  'no-copy ms',
  'vs no-copy',
  'im2col ms',
  'vs im2col',
  'torch ms',
  'vs torch',
];

function passRow(l: LayerRun, d: DensityRun, pass: Pass, peak: number, first: boolean): string[] {
  const m = d.checks.maskacc.ok ? medianMs(l, 'maskacc', d, pass) : null;
  const perf = m === null ? null : gflops(d.keptFlops, m);
  const vs = (c: Contender) => {
    const o = c === 'onednn_dense' || d.checks[c]?.ok !== false ? medianMs(l, c, d, pass) : null;
    return fmtRatio(o !== null && m !== null ? o / m : null);
  };
  return [
    first ? layerLabel(l) : '',
    pass,
    maskaccCell(d, pass),
    perf === null ? '—' : perf.toFixed(0),
    fmtPct(perf === null ? null : perf / peak),
    otherCell(l, 'onednn_dense', d, pass),
    vs('onednn_dense'),
    otherCell(l, 'onednn_compact', d, pass),
    vs('onednn_compact'),
    otherCell(l, 'onednn_nocopy', d, pass),
    vs('onednn_nocopy'),
    otherCell(l, 'im2col_blas', d, pass),
    vs('im2col_blas'),
    '',
    '',
  ];
}

/** The per-layer training step: sums of the pass medians, and PyTorch's measured step. */
function stepRow(model: ModelRun, l: LayerRun, d: DensityRun, peak: number): string[] {
  const ok = (c: Contender) => (c === 'onednn_dense' ? !l.dense.error : d.checks[c]?.ok !== false); // (absent in older results: no samples)
  const step = (c: Contender) => (ok(c) ? stepMs(l, c, d, model.passes) : null);
  const m = step('maskacc');
  const flops = d.keptFlops * model.passes.length;
  const perf = m === null ? null : gflops(flops, m);
  const torch = layerStep(model, l, 'torch', d.density);
  const vs = (o: number | null) => fmtRatio(o !== null && m !== null ? o / m : null);
  return [
    '',
    'step',
    ok('maskacc') ? fmtMs(m) : 'FAILED',
    perf === null ? '—' : perf.toFixed(0),
    fmtPct(perf === null ? null : perf / peak),
    fmtMs(step('onednn_dense')),
    vs(step('onednn_dense')),
    fmtMs(step('onednn_compact')),
    vs(step('onednn_compact')),
    fmtMs(step('onednn_nocopy')),
    vs(step('onednn_nocopy')),
    fmtMs(step('im2col_blas')),
    vs(step('im2col_blas')),
    fmtMs(torch),
    vs(torch),
  ];
}

function layerTable(model: ModelRun, density: number, peak: number): string {
  const rows: string[][] = [];
  for (const l of model.layers) {
    const d = densityRun(l, density);
    if (!d) continue;
    layerPasses(l.spec, model.passes).forEach((p, i) => rows.push(passRow(l, d, p, peak, i === 0)));
    if (model.passes.length > 1) rows.push(stepRow(model, l, d, peak));
  }
  return mdTable(
    LAYER_HEADERS,
    rows,
    LAYER_HEADERS.map((_, i) => i >= 2),
  );
}

function failureNotes(model: ModelRun, density: number): string[] {
  const notes: string[] = [];
  for (const l of model.layers) {
    const d = densityRun(l, density);
    if (!d) continue;
    for (const c of MASKED_CONTENDERS) {
      if (d.checks[c]?.ok === false)
        notes.push(`- **FAILED** ${CONTENDER_LABEL[c]} on ${l.name}: ${d.checks[c].reason ?? 'check failed'}`);
    }
  }
  return notes;
}

function summaryTable(model: ModelRun, sums: DensitySummary[]): string {
  const headers = [
    'density',
    'ideal',
    'maskacc ms',
    'dense ms',
    'vs dense',
    'vs maskacc d=1',
    'compact ms',
    'vs compact',
    'no-copy ms',
    'vs no-copy',
    'im2col ms',
    'vs im2col',
    'torch ms',
    'vs torch',
    'maskacc/ideal',
  ];
  // maskacc's own full-mask kernels as the baseline: what `npm run demo` compares against.
  const full = sums.find((s) => s.density === 1)?.totalMs.maskacc ?? null;
  const rows = sums.map((s) => {
    const cell = (c: SummaryContender) =>
      s.totalMs[c] === null && s.missing[c].length > 0 && c !== 'torch' ? 'FAILED' : fmtMs(s.totalMs[c]);
    const vsDense = s.maskaccSpeedup.onednn_dense;
    return [
      s.density.toFixed(2),
      fmtRatio(s.ideal),
      cell('maskacc'),
      cell('onednn_dense'),
      fmtRatio(vsDense),
      fmtRatio(full !== null && s.totalMs.maskacc ? full / s.totalMs.maskacc : null),
      cell('onednn_compact'),
      fmtRatio(s.maskaccSpeedup.onednn_compact),
      cell('onednn_nocopy'),
      fmtRatio(s.maskaccSpeedup.onednn_nocopy),
      cell('im2col_blas'),
      fmtRatio(s.maskaccSpeedup.im2col_blas),
      cell('torch'),
      fmtRatio(s.maskaccSpeedup.torch),
      fmtPct(vsDense === null ? null : vsDense / s.ideal),
    ];
  });
  return mdTable(
    headers,
    rows,
    headers.map((_, i) => i >= 1),
  );
}

function targetLines(model: ModelRun, peak: number, target: PeakTarget): string[] {
  const pct = `${Math.round(target.fraction * 100)}%`;
  return peakTargets(model, peak, target).map((t) => {
    if (t.cases.length === 0) return `- ${t.pass}: no eligible cases`;
    const verdict = t.holds ? '**holds**' : '**does not hold**';
    const worst = t.worst ? `; worst ${fmtPct(t.worst.fraction)} on ${t.worst.layer} @ d=${t.worst.density}` : '';
    return `- ${t.pass}: ${verdict}: ${t.met}/${t.cases.length} eligible (layer, density) cases at >= ${pct} of peak${worst}`;
  });
}

function torchNote(model: ModelRun): string {
  const t = model.torch;
  if (t.status === 'ok')
    return `PyTorch ${t.version ?? ''}: masked-dense fwd+bwd step timed in a separate phase (not interleaved).`;
  return `PyTorch: ${t.status}${t.note ? ` (${t.note})` : ''}.`;
}

export function renderModel(model: ModelRun, peak: number): string {
  const sums = summarizeModel(model);
  const out: string[] = [`## ${model.name}, batch ${model.batch}`, ''];
  out.push(
    `${model.layers.length} unique layers standing for ${model.convs} convs; passes: ${model.passes.join(', ')}. ${torchNote(model)}`,
    '',
  );
  for (const density of model.densities) {
    out.push(`### ${model.name} at density ${density}`, '', layerTable(model, density, peak), '');
    const notes = failureNotes(model, density);
    if (notes.length) out.push(...notes, '');
  }
  out.push(`### ${model.name}: summary over densities`, '');
  out.push(
    `Count-weighted total ms of ${model.passes.join('+')} per contender; "vs X" = X total / maskacc total ` +
      '(> 1: maskacc faster); "vs maskacc d=1" = maskacc total with full masks / this density\'s (the baseline of `npm run demo`); ' +
      'ideal = dense FLOPs / kept FLOPs from the actual masks; maskacc/ideal = speedup over dense as a fraction of ideal.',
    '',
  );
  out.push(summaryTable(model, sums), '');
  for (const target of PEAK_TARGETS)
    out.push(
      `Target >= ${Math.round(target.fraction * 100)}% of peak (${peak.toFixed(0)} GFLOP/s) on ${target.layers}:`,
      '',
      ...targetLines(model, peak, target),
      '',
    );
  return out.join('\n');
}

export function renderMarkdown(run: BenchRun): string {
  const m = run.machine;
  const versions = Object.entries(m.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const head = [
    '# maskacc benchmark',
    '',
    `${run.startedAt} → ${run.finishedAt}. \`${run.command}\``,
    '',
    `CPU: ${m.cpu} (${m.logicalCpus} logical CPUs), threads: ${m.threads}` +
      (m.isa ? `, kernels and peak on ${m.isa}. ` : '. ') +
      `FMA peak: ${m.peakGflops.start.toFixed(0)} GFLOP/s at start, ${m.peakGflops.end.toFixed(0)} at end; ` +
      `% of peak uses the max, ${m.peakGflops.used.toFixed(0)} (each reading is the best of a 1 s run and short bursts).` +
      (m.loadAverage
        ? ` Load average (1 min): ${m.loadAverage.start.toFixed(2)} at start, ${m.loadAverage.end.toFixed(2)} at end.`
        : '') +
      coreDistanceText(m.coreDistanceNs),
    '',
    `Versions: ${versions}.`,
    '',
    'Times are medians of interleaved reps (contenders in rotating order, IQR in brackets). ' +
      'GFLOP/s count kept FLOPs only (2·N·K′·C′·R·S·P·Q per pass). "vs X" = X ms / maskacc ms. ' +
      'oneDNN dense runs the full layer regardless of the masks. Every contender was checked against ' +
      'oneDNN dense on masked inputs before timing (relative L2 <= 1e-4); FAILED marks a mismatch.',
    '',
  ];
  return [
    ...head,
    ...run.models.map((model) => renderModel(model, m.peakGflops.used)),
    ...(run.runtime ? [renderRuntime(run.runtime)] : []),
  ].join('\n');
}

/** Issue 14's done-criteria: the obvious loop within 15% of reused outputs; small calls in µs. */
export function renderRuntime(rt: RuntimeRun): string {
  const med = (a: number[]) => (a.length ? median(a) : null);
  const alloc = rt.allocation.map((r) => {
    const a = med(r.allocatedMs),
      u = med(r.reusedMs);
    const cold = r.coldMs?.length ? coldText(r.coldMs) : '—';
    const hits = r.poolCalls ? `${r.poolHits}/${r.poolCalls}` : '—';
    const mean = (v: number[]) => v.reduce((x, y) => x + y, 0) / v.length;
    const meanRatio = r.allocatedMs.length && r.reusedMs.length ? mean(r.allocatedMs) / mean(r.reusedMs) : null;
    return [
      r.layer,
      r.pass,
      cold,
      hits,
      fmtMs(a),
      fmtMs(u),
      fmtRatio(a !== null && u !== null ? a / u : null),
      fmtRatio(meanRatio),
    ];
  });
  const us = (v: number | null) => (v === null ? '—' : v.toFixed(1));
  const calls = rt.calls.map((r) => {
    const m = med(r.reusedUs),
      d = med(r.denseUs);
    return [
      r.layer,
      r.density.toFixed(2),
      r.pass,
      r.check.ok ? us(m) : 'FAILED',
      us(med(r.allocatedUs)),
      us(d),
      fmtRatio(r.check.ok && m !== null && d !== null ? d / m : null),
    ];
  });
  return [
    '## Runtime fixed costs',
    '',
    'The obvious loop `y = conv.forward(x, w)` (output allocated by the call, from the output pool) against ' +
      'the same call with an output passed in and reused; ResNet-50 batch-64 layers at 56x56, d=0.5 on both masks. ' +
      'Target (issue 14): allocated within 15% of reused. Outputs return to the pool when their arrays are ' +
      'collected (the pool runs a young-generation collection after every 64 MiB-1 GiB handed out, adapted to keep ' +
      'collecting near 4% of the time), ' +
      'so a loop starts cold: "warm-up calls" are the allocated calls until the pool served 12 in a row from ' +
      'its free list and kept its collection interval over its last 8 collections (at most 128 calls; count, ms of ' +
      'the first ones, and the slowest). ' +
      'Then each sample is a loop of consecutive calls (collections included), medians ' +
      '(and the ratio of the means, which keeps the rare slow sample: a full collection, a VM stall); ' +
      '"pool hits" counts the timed loops\' outputs served from the free list. A new output per call also ' +
      'loses the cache lines a reused output keeps warm: writing into a ring of arrays passed in costs ~5% ' +
      'on the 1x1 layer.',
    '',
    mdTable(
      [
        'layer',
        'pass',
        'warm-up calls (ms)',
        'pool hits',
        'allocated ms',
        'reused ms',
        'allocated / reused',
        'of the means',
      ],
      alloc,
      [false, false, false, true, true, true, true, true],
    ),
    '',
    'Per-call cost of small layers, µs (medians; maskacc checked against oneDNN dense on masked inputs first). ' +
      'Targets: the 16-channel 1x1-plane layer at most 5 µs forward and 10 µs backward-weights; no layer slower than dense oneDNN.',
    '',
    mdTable(
      ['layer', 'density', 'pass', 'maskacc µs (reused)', 'maskacc µs (allocated)', 'oneDNN dense µs', 'vs dense'],
      calls,
      [false, true, false, true, true, true, true],
    ),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- SVG

/**
 * Powers of two covering [lo, hi] for a log2 axis (speedups are ratios: 0.5x and 2x sit the same
 * distance from parity). Every other power once there would be more than 9 ticks.
 */
export function log2Ticks(lo: number, hi: number): number[] {
  const ok = (v: number) => v > 0 && Number.isFinite(v);
  let a = Math.floor(Math.log2(ok(lo) ? lo : 1));
  let b = Math.max(a + 1, Math.ceil(Math.log2(ok(hi) ? hi : 2)));
  const step = b - a > 8 ? 2 : 1;
  // Exponents on multiples of the step, so 1x (2^0) is always a tick.
  a = Math.floor(a / step) * step;
  b = Math.ceil(b / step) * step;
  const ticks: number[] = [];
  for (let e = a; e <= b; e += step) ticks.push(2 ** e);
  return ticks;
}

/** Tick label of a ratio: 1/4x, 1/2x, 1x, 16x (fractions stay short where decimals would not). */
export function ratioLabel(v: number): string {
  return v >= 1 ? `${Number(v.toPrecision(6))}x` : `1/${Number((1 / v).toPrecision(6))}x`;
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

type SvgSeries = { label: string; color: string; dashed?: boolean; points: { x: number; y: number | null }[] };

const SERIES_STYLE: Record<SummaryContender | 'ideal', { color: string; dashed?: boolean }> = {
  maskacc: { color: '#d62728' },
  onednn_compact: { color: '#1f77b4' },
  onednn_nocopy: { color: '#17becf', dashed: true },
  im2col_blas: { color: '#2ca02c' },
  torch: { color: '#9467bd' },
  onednn_dense: { color: '#7f7f7f' },
  ideal: { color: '#333333', dashed: true },
};

/** The curves of one model: each contender's speedup over dense oneDNN, plus the ideal. */
export function speedupSeries(model: ModelRun): SvgSeries[] {
  const sums = summarizeModel(model);
  const contenders: SummaryContender[] = ['maskacc', 'onednn_compact', 'onednn_nocopy', 'im2col_blas', 'torch'];
  const series: SvgSeries[] = contenders.map((c) => ({
    label: CONTENDER_LABEL[c],
    ...SERIES_STYLE[c],
    points: sums.map((s) => ({ x: s.density, y: s.speedupOverDense[c] })),
  }));
  series.push({
    label: 'ideal 1/(d_out·d_in)',
    ...SERIES_STYLE.ideal,
    points: sums.map((s) => ({ x: s.density, y: s.ideal })),
  });
  return series;
}

const PANEL = { w: 440, h: 360, left: 68, right: 16, top: 34, bottom: 52 };

/** Line segments split where a value is missing, so a FAILED point leaves a gap rather than a lie. */
function polylines(
  points: { x: number; y: number | null }[],
  sx: (x: number) => number,
  sy: (y: number) => number,
): string[] {
  const runs: string[][] = [[]];
  for (const p of [...points].sort((a, b) => a.x - b.x)) {
    if (p.y === null || !(p.y > 0) || !Number.isFinite(p.y)) runs.push([]);
    else runs[runs.length - 1].push(`${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`);
  }
  // A lone point is drawn by its marker only.
  return runs.filter((r) => r.length > 1).map((r) => r.join(' '));
}

function panel(model: ModelRun, series: SvgSeries[], ox: number): string {
  const { w, h, left, right, top, bottom } = PANEL;
  const pw = w - left - right;
  const ph = h - top - bottom;
  const xs = model.densities.length ? model.densities : [1];
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  const pad = Math.max(0.05, (hi - lo) * 0.05);
  const x0 = lo - pad;
  const x1 = hi + pad;
  const ys = series
    .flatMap((s) => s.points.map((p) => p.y))
    .filter((y): y is number => y !== null && y > 0 && Number.isFinite(y));
  // Parity (1x) is always in range, with at least one power of two on either side.
  const yTicks = log2Ticks(Math.min(0.5, ...ys), Math.max(2, ...ys));
  const l0 = Math.log2(yTicks[0]);
  const l1 = Math.log2(yTicks[yTicks.length - 1]);
  const sx = (x: number) => ox + left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => top + ph - ((Math.log2(y) - l0) / (l1 - l0)) * ph;
  const o: string[] = [];
  o.push(
    `<text x="${ox + left + pw / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(`${model.name}, batch ${model.batch}`)}</text>`,
  );
  for (const t of yTicks) {
    o.push(
      `<line x1="${ox + left}" x2="${ox + left + pw}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`,
    );
    o.push(
      `<text x="${ox + left - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" font-size="11">${ratioLabel(t)}</text>`,
    );
  }
  for (const d of xs) {
    o.push(
      `<line x1="${sx(d).toFixed(1)}" x2="${sx(d).toFixed(1)}" y1="${top + ph}" y2="${top + ph + 5}" stroke="#333"/>`,
    );
    o.push(`<text x="${sx(d).toFixed(1)}" y="${top + ph + 18}" text-anchor="middle" font-size="11">${d}</text>`);
  }
  // Parity with dense oneDNN: below this line a contender is slower than doing nothing clever.
  o.push(
    `<line x1="${ox + left}" x2="${ox + left + pw}" y1="${sy(1).toFixed(1)}" y2="${sy(1).toFixed(1)}" stroke="#7f7f7f" stroke-dasharray="2,3"/>`,
  );
  o.push(`<rect x="${ox + left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  o.push(
    `<text x="${ox + left + pw / 2}" y="${h - 12}" text-anchor="middle" font-size="12">density d (kept fraction of filters and of channels)</text>`,
  );
  const cy = top + ph / 2;
  o.push(
    `<text x="${ox + 14}" y="${cy}" text-anchor="middle" font-size="12" transform="rotate(-90 ${ox + 14} ${cy})">speedup over oneDNN dense (step, log scale)</text>`,
  );
  for (const s of series) {
    const dash = s.dashed ? ' stroke-dasharray="6,4"' : '';
    for (const pts of polylines(s.points, sx, sy)) {
      o.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="${s.dashed ? 1.5 : 2}"${dash}/>`);
    }
    for (const p of s.points) {
      if (p.y === null || !(p.y > 0) || !Number.isFinite(p.y) || s.dashed) continue;
      o.push(`<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
  }
  return o.join('\n');
}

function legend(series: SvgSeries[], y: number): string {
  const o: string[] = [];
  let x = 20;
  for (const s of series) {
    const dash = s.dashed ? ' stroke-dasharray="6,4"' : '';
    o.push(`<line x1="${x}" x2="${x + 24}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    o.push(`<text x="${x + 30}" y="${y + 4}" font-size="12">${escapeXml(s.label)}</text>`);
    x += 42 + s.label.length * 7;
  }
  return o.join('\n');
}

/** Hand-written SVG: one panel per model, speedup over oneDNN dense vs density, shared legend. */
export function renderSpeedupSvg(run: BenchRun): string {
  const models = run.models;
  // Wide enough for the one-line legend even with a single panel.
  const width = Math.max(820, models.length * PANEL.w);
  const height = PANEL.h + 40;
  const ox = (width - models.length * PANEL.w) / 2; // centred when the legend is the wider part
  const parts = models.map((m, i) => panel(m, speedupSeries(m), ox + i * PANEL.w));
  const legendSeries = models.length ? speedupSeries(models[0]) : [];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...parts,
    legend(legendSeries, PANEL.h + 20),
    '</svg>',
    '',
  ].join('\n');
}

/** The reps' core distances: how many ran with the threads' cores on different CCDs. */
function coreDistanceText(ns: number[] | undefined): string {
  if (!ns?.length) return '';
  const sorted = [...ns].sort((a, b) => a - b);
  const far = ns.filter((v) => v > FAR_NS).length;
  return (
    ` Core distance (a cache line's round trip between the two threads' cores, before each timed rep): ` +
    `median ${sorted[sorted.length >> 1].toFixed(0)} ns; ${far} of ${ns.length} reps over ${FAR_NS} ns, ` +
    `cores on different CCDs, where kernels whose threads share packed data run slower (bench/core-distance.ts).`
  );
}
