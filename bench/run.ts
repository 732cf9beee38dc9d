// The benchmark driver: times maskacc's masked conv passes against oneDNN dense, oneDNN compact,
// im2col+OpenBLAS (interleaved rounds) and PyTorch (separate phase); writes bench/results/*.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  compileMaskedConvs,
  conv2d,
  passFlops,
  poolStats,
  type ConvLayer,
  type ConvSpec,
  type MaskedConv,
} from '../src/index.js';
import { cpuModel, supportedIsas } from '../src/schedule/isa.js';
import { keptAtRandom, rng, type Rng } from '../test/util.js';
import { CoreDistance } from './core-distance.js';
import { loadBaselines, type Baselines, type DenseBaseline } from './baselines.js';
import { convCount, MODELS, withBatch, type Model, type ModelKey, type ModelLayer } from './models.js';
import {
  MASKED_CONTENDERS,
  PASSES,
  layerPasses,
  peakTargets,
  PEAK_TARGETS,
  relL2,
  renderMarkdown,
  renderSpeedupSvg,
  summarizeModel,
  type BenchRun,
  type CheckResult,
  type DensityRun,
  type LayerRun,
  type LayerShape,
  type AllocationRow,
  type CallCostRow,
  type MaskedContender,
  type ModelRun,
  type Pass,
  type RuntimeRun,
  type TorchStatus,
} from './report.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
/** Relative L2 error a contender may show against oneDNN dense on masked inputs. */
const CHECK_TOLERANCE = 1e-4;

// ---------------------------------------------------------------- options

interface Options {
  models: ModelKey[];
  densities: number[];
  reps: number;
  warmup: number;
  threads: number;
  batch?: number;
  layers?: number;
  passes: Pass[];
  torch: boolean;
  /** Measure the runtime's fixed costs (issue 14). */
  runtime: boolean;
  out: string;
  seed: number;
  /** Re-render latest.md and speedup.svg from this results JSON instead of measuring. */
  render?: string;
}

const USAGE = `usage: npm run bench -- [options]
  --model vgg16,resnet56,resnet50|all|none   models to run, comma-separated (default all)
  --no-runtime    skip the runtime fixed costs (obvious loop vs reused outputs, small-call µs)
  --densities 1,0.9,0.7,0.5,0.3  kept fraction of filters and of input channels
  --reps N        timed reps (default 7)        --warmup N   warm-up reps (default 2)
  --threads N     threads per kernel (default 2) --batch N    override the batch (default 64)
  --layers N      only the first N unique layers of each model (quick runs)
  --passes fwd,bwd_data,bwd_weights            --no-torch   skip the PyTorch phase
  --out DIR       results directory (default bench/results)  --seed N  mask/data seed (default 1)
  --render FILE   no measuring: rewrite DIR/latest.md and speedup.svg from a saved latest.json`;

function positiveInt(v: string | undefined, name: string, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && name !== 'warmup'))
    throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
}

function parseDensities(v: string): number[] {
  const ds = v.split(',').map((s) => Number(s.trim()));
  for (const d of ds) if (!(d > 0 && d <= 1)) throw new Error(`--densities: ${d} is not in (0, 1]`);
  // Highest first: the report reads from dense towards heavily pruned.
  return [...new Set(ds)].sort((a, b) => b - a);
}

function parsePasses(v: string): Pass[] {
  const ps = v.split(',').map((s) => s.trim());
  for (const p of ps)
    if (!(PASSES as readonly string[]).includes(p))
      throw new Error(`--passes: unknown pass ${p} (${PASSES.join(', ')})`);
  return PASSES.filter((p) => ps.includes(p)); // canonical order
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string', default: 'all' },
      densities: { type: 'string', default: '1,0.9,0.7,0.5,0.3' },
      reps: { type: 'string' },
      warmup: { type: 'string' },
      threads: { type: 'string' },
      batch: { type: 'string' },
      layers: { type: 'string' },
      passes: { type: 'string', default: PASSES.join(',') },
      'no-torch': { type: 'boolean', default: false },
      'no-runtime': { type: 'boolean', default: false },
      out: { type: 'string', default: path.join(here, 'results') },
      seed: { type: 'string' },
      render: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const keys = Object.keys(MODELS) as ModelKey[];
  const model = values.model!;
  const picked = model === 'all' ? keys : model === 'none' ? [] : model.split(',').map((m) => m.trim());
  for (const m of picked)
    if (!keys.includes(m as ModelKey))
      throw new Error(`--model must be a comma-separated list of ${keys.join(', ')}, or all or none`);
  return {
    models: picked as ModelKey[],
    runtime: !values['no-runtime'],
    densities: parseDensities(values.densities!),
    reps: positiveInt(values.reps, 'reps', 7),
    warmup: positiveInt(values.warmup, 'warmup', 2),
    threads: positiveInt(values.threads, 'threads', 2),
    batch: values.batch === undefined ? undefined : positiveInt(values.batch, 'batch'),
    layers: values.layers === undefined ? undefined : positiveInt(values.layers, 'layers'),
    passes: parsePasses(values.passes!),
    torch: !values['no-torch'],
    out: path.resolve(values.out!),
    seed: values.seed === undefined ? 1 : positiveInt(values.seed, 'seed'),
    render: values.render === undefined ? undefined : path.resolve(values.render),
  };
}

// ---------------------------------------------------------------- progress and machine info

const t0 = performance.now();
function progress(msg: string): void {
  process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
}

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** Versions of everything that shapes the numbers; torch is added after its phase. */
function versions(): Record<string, string> {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  // Kernels being tuned in the working tree make the numbers differ from the commit's.
  const status = tryRun('git', ['-C', root, 'status', '--porcelain', '--', 'src', 'templates']);
  const dirty = status !== '' && status !== 'unknown' ? '+dirty' : '';
  const dpkg = (name: string) => tryRun('dpkg-query', ['-W', '-f', '${Version}', name]);
  return {
    maskacc: `${pkg.version} (${tryRun('git', ['-C', root, 'rev-parse', '--short', 'HEAD'])}${dirty})`,
    node: process.version,
    'g++': tryRun('g++', ['-dumpfullversion']),
    oneDNN: dpkg('libdnnl-dev'),
    OpenBLAS: `${dpkg('libopenblas-dev')} (OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? 'auto'})`,
  };
}

// ---------------------------------------------------------------- masks and data

/** A mask keeping exactly round(d*n) entries (at least 1), chosen uniformly at random. */
function exactMask(r: Rng, n: number, density: number): Uint8Array {
  return keptAtRandom(r, n, Math.min(n, Math.max(1, Math.round(density * n))));
}

interface LayerMasks {
  out: Uint8Array;
  in: Uint8Array;
}

/**
 * Masks for every unique layer at one density. The first layer keeps its image channels; with
 * 'chain' linking a layer reads the channels its predecessor kept (same channel count required).
 */
function drawMasks(model: Model, layers: ConvLayer[], density: number, seed: number): LayerMasks[] {
  const r = rng(seed * 1009 + Math.round(density * 1000));
  const masks: LayerMasks[] = [];
  layers.forEach((l, i) => {
    const out = exactMask(r, l.outChannels, density);
    const prev = masks[i - 1];
    let inMask: Uint8Array;
    if (i === 0) inMask = new Uint8Array(l.inChannels).fill(1);
    else if (model.maskLinking === 'chain' && prev.out.length === l.inChannels) inMask = prev.out;
    else inMask = exactMask(r, l.inChannels, density);
    masks.push({ out, in: inMask });
  });
  return masks;
}

function kept(m: Uint8Array): Int32Array {
  const idx: number[] = [];
  m.forEach((v, i) => v && idx.push(i));
  return Int32Array.from(idx);
}

interface LayerData {
  x: Float32Array;
  w: Float32Array;
  dy: Float32Array;
  bias?: Float32Array;
}

function sizes(l: ConvLayer) {
  return {
    x: l.batch * l.inChannels * l.inHeight * l.inWidth,
    w: l.outChannels * l.inChannels * l.kernel[0] * l.kernel[1],
    y: l.batch * l.outChannels * l.outHeight * l.outWidth,
  };
}

function layerData(l: ConvLayer, r: Rng): LayerData {
  const n = sizes(l);
  return {
    x: r.uniformArray(n.x),
    w: r.uniformArray(n.w),
    dy: r.uniformArray(n.y),
    bias: l.bias ? r.uniformArray(l.outChannels) : undefined,
  };
}

/** Output buffers shared by all layers (subarrays of exact length), so outputs cost one layer's memory. */
class OutputPool {
  private readonly y: Float32Array;
  private readonly dx: Float32Array;
  private readonly dw: Float32Array;
  private readonly db: Float32Array;
  constructor(layers: ConvLayer[]) {
    const max = (f: (l: ConvLayer) => number) => Math.max(0, ...layers.map(f));
    this.y = new Float32Array(max((l) => sizes(l).y));
    this.dx = new Float32Array(max((l) => sizes(l).x));
    this.dw = new Float32Array(max((l) => sizes(l).w));
    this.db = new Float32Array(max((l) => l.outChannels));
  }
  for(l: ConvLayer) {
    const n = sizes(l);
    return {
      y: this.y.subarray(0, n.y),
      dx: this.dx.subarray(0, n.x),
      dw: this.dw.subarray(0, n.w),
      db: this.db.subarray(0, l.outChannels),
    };
  }
}

// ---------------------------------------------------------------- contenders

type Outputs = ReturnType<OutputPool['for']>;
/** Runs one pass of one contender on the layer's data into the given outputs. */
type PassRunner = (pass: Pass, out: Outputs) => void;

function maskaccRunner(conv: MaskedConv, d: LayerData): PassRunner {
  return (pass, o) => {
    if (pass === 'fwd') conv.forward(d.x, d.w, d.bias, o.y);
    else if (pass === 'bwd_data') conv.backwardData(d.dy, d.w, o.dx);
    else conv.backwardWeights(d.dy, d.x, o.dw, d.bias ? o.db : undefined);
  };
}

function baselineRunner(b: DenseBaseline, d: LayerData): PassRunner {
  return (pass, o) => {
    if (pass === 'fwd') b.forward(d.x, d.w, d.bias ?? null, o.y);
    else if (pass === 'bwd_data') b.backwardData(d.dy, d.w, o.dx);
    else b.backwardWeights(d.dy, d.x, o.dw, d.bias ? o.db : null);
  };
}

/** One density of one layer: its masks, its maskacc kernel and the masked baselines. */
interface DensityCase {
  run: DensityRun;
  runners: Partial<Record<MaskedContender, PassRunner>>;
  masks: LayerMasks;
}

interface LayerCase {
  layer: ConvLayer;
  data: LayerData;
  result: LayerRun;
  dense: PassRunner | null;
  densities: DensityCase[];
}

function shapeOf(l: ConvLayer): LayerShape {
  return {
    batch: l.batch,
    inChannels: l.inChannels,
    outChannels: l.outChannels,
    inHeight: l.inHeight,
    inWidth: l.inWidth,
    kernel: [...l.kernel],
    stride: [...l.stride],
    padding: [...l.padding],
    dilation: [...l.dilation],
    bias: l.bias,
    outHeight: l.outHeight,
    outWidth: l.outWidth,
    inputGrad: l.inputGrad,
  };
}

function failed(reason: string): CheckResult {
  return { ok: false, relErr: {}, reason };
}

/** Builds a baseline, turning a constructor error into a FAILED check instead of aborting the run. */
function tryBuild(make: () => DenseBaseline, d: LayerData): { runner?: PassRunner; error?: string } {
  try {
    return { runner: baselineRunner(make(), d) };
  } catch (e) {
    return { error: `constructor threw: ${(e as Error).message}` };
  }
}

function makeDensityCase(
  b: Baselines,
  l: ConvLayer,
  density: number,
  conv: MaskedConv,
  masks: LayerMasks,
  data: LayerData,
  threads: number,
): DensityCase {
  conv.setMasks(masks);
  const ko = kept(masks.out);
  const ci = kept(masks.in);
  const run: DensityRun = {
    density,
    keptOut: ko.length,
    keptIn: ci.length,
    keptFlops: passFlops(l, ko.length, ci.length),
    plan: conv.explain(),
    checks: Object.fromEntries(MASKED_CONTENDERS.map((c) => [c, { ok: true, relErr: {} }])) as DensityRun['checks'],
    samples: Object.fromEntries(MASKED_CONTENDERS.map((c) => [c, {}])) as DensityRun['samples'],
  };
  const runners: DensityCase['runners'] = { maskacc: maskaccRunner(conv, data) };
  const built: Record<Exclude<MaskedContender, 'maskacc'>, ReturnType<typeof tryBuild>> = {
    onednn_compact: tryBuild(() => new b.CompactOneDnnConv(l, ko, ci, threads), data),
    // Its first call per pass (the checked one) copies; the timed calls run oneDNN alone.
    onednn_nocopy: tryBuild(() => new b.CompactOneDnnConv(l, ko, ci, threads, true), data),
    im2col_blas: tryBuild(() => new b.Im2colBlasConv(l, ko, ci, threads), data),
  };
  for (const [c, r] of Object.entries(built) as [Exclude<MaskedContender, 'maskacc'>, ReturnType<typeof tryBuild>][]) {
    if (r.runner) runners[c] = r.runner;
    else run.checks[c] = failed(r.error!);
  }
  return { run, runners, masks };
}

// ---------------------------------------------------------------- correctness

/** Copy of a [A][B][inner] array with the B-slices whose mask is 0 set to zero. */
function zeroAxis1(a: Float32Array, b: number, inner: number, keep: Uint8Array): Float32Array {
  const out = Float32Array.from(a);
  for (let i = 0; i < out.length; i += inner) if (!keep[Math.floor(i / inner) % b]) out.fill(0, i, i + inner);
  return out;
}

interface Reference {
  y: Float32Array;
  dx: Float32Array;
  dw: Float32Array;
  db?: Float32Array;
}

/**
 * The expected outputs at these masks: oneDNN dense on x*m_in and w*m_out (bias*m_out), then
 * dx zeroed on pruned input channels and dw zeroed on pruned filters and channels (hard masks).
 */
function reference(
  dense: DenseBaseline,
  l: ConvLayer,
  d: LayerData,
  m: LayerMasks,
  passes: readonly Pass[],
): Reference {
  const n = sizes(l);
  const taps = l.kernel[0] * l.kernel[1];
  const xm = zeroAxis1(d.x, l.inChannels, l.inHeight * l.inWidth, m.in);
  const wm = zeroAxis1(d.w, l.outChannels, l.inChannels * taps, m.out); // rows of w are filters
  const bm = d.bias?.map((v, k) => (m.out[k] ? v : 0));
  const ref: Reference = { y: new Float32Array(0), dx: new Float32Array(0), dw: new Float32Array(0) };
  if (passes.includes('fwd')) {
    ref.y = new Float32Array(n.y);
    dense.forward(xm, wm, bm ?? null, ref.y);
  }
  if (passes.includes('bwd_data')) {
    const dx = new Float32Array(n.x);
    dense.backwardData(d.dy, wm, dx);
    ref.dx = zeroAxis1(dx, l.inChannels, l.inHeight * l.inWidth, m.in);
  }
  if (passes.includes('bwd_weights')) {
    const dw = new Float32Array(n.w);
    const db = d.bias ? new Float32Array(l.outChannels) : undefined;
    dense.backwardWeights(d.dy, xm, dw, db ?? null);
    ref.dw = zeroAxis1(zeroAxis1(dw, l.outChannels, l.inChannels * taps, m.out), l.inChannels, taps, m.in);
    ref.db = db?.map((v, k) => (m.out[k] ? v : 0));
  }
  return ref;
}

/** Runs each pass once into NaN-filled outputs (so unwritten entries fail) and compares. */
function check(runner: PassRunner, out: Outputs, ref: Reference, passes: readonly Pass[]): CheckResult {
  const relErr: CheckResult['relErr'] = {};
  try {
    for (const pass of passes) {
      for (const a of Object.values(out)) a.fill(NaN);
      runner(pass, out);
      if (pass === 'fwd') relErr.fwd = relL2(out.y, ref.y);
      else if (pass === 'bwd_data') relErr.bwd_data = relL2(out.dx, ref.dx);
      else relErr.bwd_weights = Math.max(relL2(out.dw, ref.dw), ref.db ? relL2(out.db, ref.db) : 0);
    }
  } catch (e) {
    return { ok: false, relErr, reason: `threw: ${(e as Error).message}` };
  }
  const bad = Object.entries(relErr).filter(([, err]) => !(err <= CHECK_TOLERANCE));
  if (bad.length === 0) return { ok: true, relErr };
  return {
    ok: false,
    relErr,
    reason: `mismatch vs oneDNN dense: ${bad.map(([p, e]) => `${p} relL2=${e.toExponential(2)}`).join(', ')}`,
  };
}

function checkLayer(lc: LayerCase, pool: OutputPool, denseBase: DenseBaseline, allPasses: readonly Pass[]): void {
  const out = pool.for(lc.layer);
  const passes = layerPasses(lc.layer, allPasses);
  for (const dc of lc.densities) {
    const ref = reference(denseBase, lc.layer, lc.data, dc.masks, passes);
    for (const c of MASKED_CONTENDERS) {
      const runner = dc.runners[c];
      if (!runner) continue;
      dc.run.checks[c] = check(runner, out, ref, passes);
      if (!dc.run.checks[c].ok) {
        delete dc.runners[c]; // a wrong kernel must not report a time
        progress(`  FAILED ${c} on ${lc.result.name} @ d=${dc.run.density}: ${dc.run.checks[c].reason}`);
      }
    }
  }
}

// ---------------------------------------------------------------- timing

interface Slot {
  record: (pass: Pass, ms: number) => void;
  runner: PassRunner;
  fail: (reason: string) => void;
}

/** Every contender of one layer: dense once, then the masked ones at each density. */
function slots(lc: LayerCase): Slot[] {
  const out: Slot[] = [];
  if (lc.dense) {
    out.push({
      runner: lc.dense,
      record: (p, ms) => (lc.result.dense.samples[p] ??= []).push(ms),
      fail: (reason) => {
        lc.result.dense.error = reason;
        lc.dense = null;
      },
    });
  }
  for (const dc of lc.densities) {
    for (const c of MASKED_CONTENDERS) {
      const runner = dc.runners[c];
      if (!runner) continue;
      out.push({
        runner,
        record: (p, ms) => (dc.run.samples[c][p] ??= []).push(ms),
        fail: (reason) => {
          dc.run.checks[c] = failed(reason);
          dc.run.samples[c] = {};
          delete dc.runners[c];
        },
      });
    }
  }
  return out;
}

// How far apart the two cores were before each timed rep of the models (bench/core-distance.ts):
// a VM's vCPUs sit on one CCD or on two by turns, and kernels run slower on two.
let coreDistance: CoreDistance;
const coreDistanceNs: number[] = [];

/**
 * Interleaved rounds: per rep, per layer, per pass, each contender once, starting at a rotating
 * offset so no contender always runs first (cold caches) or right after the same neighbour.
 */
function timeRounds(cases: LayerCase[], pool: OutputPool, o: Options, label: string): void {
  const total = o.warmup + o.reps;
  for (let rep = 0; rep < total; rep++) {
    const warm = rep < o.warmup;
    if (!warm) coreDistanceNs.push(coreDistance.roundTripNs(2000, 150));
    progress(`${label}: rep ${rep + 1}/${total}${warm ? ' (warm-up)' : ''}`);
    cases.forEach((lc, li) => {
      const out = pool.for(lc.layer);
      layerPasses(lc.layer, o.passes).forEach((pass, pi) => {
        const ss = slots(lc);
        const offset = (rep + li + pi) % Math.max(1, ss.length);
        for (let k = 0; k < ss.length; k++) {
          const s = ss[(offset + k) % ss.length];
          try {
            const start = performance.now();
            s.runner(pass, out);
            const ms = performance.now() - start;
            if (!warm) s.record(pass, ms);
          } catch (e) {
            s.fail(`threw while timing ${pass}: ${(e as Error).message}`);
          }
        }
      });
    });
  }
}

// ---------------------------------------------------------------- PyTorch phase

interface TorchReply {
  available: boolean;
  reason?: string;
  torch_version?: string;
  layers?: { fwd_ms: number[]; step_ms: number[]; kept_out: number; kept_in: number }[];
}

function runPython(job: unknown): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Debian's python3-torch is installed for the system python, which a pyenv shim may hide.
    const python = process.env.PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
    const child = spawn(python, [path.join(here, 'torch_step.py')], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    // A python that dies early (or never starts) closes the pipe: report that via 'close'/'error'.
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify(job));
  });
}

/** Times PyTorch's masked-dense step on every (layer, density) with the benchmark's own masks. */
async function torchPhase(cases: LayerCase[], o: Options): Promise<TorchStatus> {
  const entries = cases.flatMap((lc) => lc.densities.map((dc) => ({ lc, dc })));
  const job = {
    threads: o.threads,
    warmup: o.warmup,
    reps: o.reps,
    layers: entries.map(({ lc, dc }) => ({
      spec: { ...shapeOf(lc.layer) },
      density_out: dc.run.density,
      density_in: dc.run.density,
      seed: o.seed,
      ko: [...kept(dc.masks.out)],
      ci: [...kept(dc.masks.in)],
    })),
  };
  let reply: TorchReply;
  try {
    const r = await runPython(job);
    if (r.code !== 0)
      return {
        status: 'error',
        note: `torch_step.py exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`,
      };
    reply = JSON.parse(r.stdout) as TorchReply;
  } catch (e) {
    return { status: 'unavailable', note: `cannot run python3: ${(e as Error).message}` };
  }
  if (!reply.available) return { status: 'unavailable', note: reply.reason };
  const layers = reply.layers ?? [];
  const mismatch = entries.findIndex(
    ({ dc }, i) => layers[i]?.kept_out !== dc.run.keptOut || layers[i]?.kept_in !== dc.run.keptIn,
  );
  if (mismatch >= 0)
    return {
      status: 'error',
      note: `torch_step.py reply does not match job entry ${mismatch} (kept counts or length)`,
    };
  layers.forEach((t, i) => (entries[i].dc.run.torch = { fwdMs: t.fwd_ms, stepMs: t.step_ms }));
  return { status: 'ok', version: reply.torch_version };
}

// ---------------------------------------------------------------- one model

function selectModel(key: ModelKey, o: Options): Model {
  const base = o.batch === undefined ? MODELS[key] : withBatch(MODELS[key], o.batch);
  return o.layers === undefined ? base : { ...base, layers: base.layers.slice(0, o.layers) };
}

/** One compileMaskedConvs call per density, with every unique layer at that density's kept fractions. */
async function compileAll(
  layers: ConvLayer[],
  masksByDensity: LayerMasks[][],
  o: Options,
  key: string,
): Promise<MaskedConv[][]> {
  const convs: MaskedConv[][] = [];
  for (const [i, masks] of masksByDensity.entries()) {
    progress(`${key}: compiling ${layers.length} layers for density ${o.densities[i]}`);
    const specs = layers.map((l, j) => ({
      ...l,
      density: { out: kept(masks[j].out).length / l.outChannels, in: kept(masks[j].in).length / l.inChannels },
    }));
    convs.push(await compileMaskedConvs(specs, { threads: o.threads, verbose: true, respecialize: false }));
  }
  return convs;
}

/** Data, the dense baseline and every density's contenders for one unique layer. */
function buildLayerCase(
  b: Baselines,
  ml: ModelLayer,
  layer: ConvLayer,
  li: number,
  convs: MaskedConv[][],
  masksByDensity: LayerMasks[][],
  r: Rng,
  o: Options,
): LayerCase & { denseBase: DenseBaseline | null } {
  const data = layerData(layer, r);
  let denseBase: DenseBaseline | null = null;
  let error: string | undefined;
  try {
    denseBase = new b.OneDnnConv(layer, o.threads);
  } catch (e) {
    error = `constructor threw: ${(e as Error).message}`;
  }
  const densities = o.densities.map((d, di) =>
    makeDensityCase(b, layer, d, convs[di][li], masksByDensity[di][li], data, o.threads),
  );
  return {
    layer,
    data,
    denseBase,
    dense: denseBase ? baselineRunner(denseBase, data) : null,
    densities,
    result: {
      name: ml.name,
      count: ml.count,
      spec: shapeOf(layer),
      denseFlops: passFlops(layer),
      dense: { samples: {}, error },
      densities: densities.map((dc) => dc.run),
    },
  };
}

function checkAll(
  cases: (LayerCase & { denseBase: DenseBaseline | null })[],
  pool: OutputPool,
  o: Options,
  key: string,
): void {
  for (const lc of cases) {
    progress(`${key}: checking ${lc.result.name} at ${o.densities.length} densities`);
    if (lc.denseBase) {
      checkLayer(lc, pool, lc.denseBase, o.passes);
      continue;
    }
    // Without a reference nothing can be trusted: fail every masked contender of this layer.
    for (const dc of lc.densities) {
      for (const c of MASKED_CONTENDERS) {
        dc.run.checks[c] = failed('no oneDNN dense reference');
        delete dc.runners[c];
      }
    }
  }
}

async function runModel(key: ModelKey, b: Baselines, o: Options): Promise<ModelRun> {
  const model = selectModel(key, o);
  const layers = model.layers.map((l) => conv2d(l.spec));
  const masksByDensity = o.densities.map((d) => drawMasks(model, layers, d, o.seed));
  const convs = await compileAll(layers, masksByDensity, o, key);
  const r = rng(o.seed);
  const pool = new OutputPool(layers);
  const cases = layers.map((layer, li) => buildLayerCase(b, model.layers[li], layer, li, convs, masksByDensity, r, o));
  checkAll(cases, pool, o, key);
  timeRounds(cases, pool, o, key);
  let torch: TorchStatus = { status: 'skipped', note: '--no-torch' };
  if (o.torch) {
    progress(`${key}: PyTorch phase (${cases.length * o.densities.length} layer-densities, not interleaved)`);
    torch = await torchPhase(cases, o);
    if (torch.status !== 'ok') progress(`${key}: PyTorch ${torch.status}: ${torch.note}`);
  }
  for (const row of convs) for (const c of row) c.dispose();
  return {
    key,
    name: model.name,
    batch: layers[0]?.batch ?? 0,
    convs: convCount(model),
    passes: o.passes,
    densities: o.densities,
    layers: cases.map((lc) => lc.result),
    torch,
  };
}

// ---------------------------------------------------------------- runtime fixed costs (issue 14)

/** Median-friendly samples of `f`: each sample is the mean of `calls` calls, in µs. */
function perCallUs(f: () => void, calls: number): number {
  const t = performance.now();
  for (let i = 0; i < calls; i++) f();
  return ((performance.now() - t) / calls) * 1000;
}

/** Pool blocks handed out so far: from the free list of their size (hits), recycled from another size, or fresh. */
function poolCounts(): { hits: number; recycled: number; misses: number } {
  const s = poolStats();
  return s.native ? { hits: s.hits, recycled: s.recycled, misses: s.misses } : { hits: 0, recycled: 0, misses: 0 };
}

/** Consecutive calls per timed sample of a loop: long enough to include the GCs that return outputs. */
const LOOP_CALLS = 6;
/** The obvious loop's warm-up: until this many calls in a row reuse pooled memory, or COLD_MAX_CALLS. */
const COLD_HITS = 12;
/** ... with the pool's interval unchanged over this many of its collections (it follows the median of the last 5 pauses). */
const COLD_COLLECTIONS = 8;
const COLD_MAX_CALLS = 128;
/** Timed samples per loop and per call-cost row at least: a sample may hold a full collection or a VM stall, and 5 left the median at its mercy. */
const LOOP_MIN_SAMPLES = 15;

/**
 * The obvious loop (outputs allocated by each call, as a new user writes it) against outputs passed
 * in and reused, on ResNet-50's batch-64 layers at 56x56 (1x1 and 3x3, d=0.5), all three passes.
 * Outputs return to the pool only when their arrays are collected, so the loop first runs until
 * the pool serves COLD_HITS calls in a row from its free list (the cold start, reported on its
 * own); each sample is then a loop of LOOP_CALLS consecutive calls, collections included, as a
 * training loop runs them.
 */
async function allocationPhase(o: Options): Promise<AllocationRow[]> {
  const layers: [string, ConvSpec][] = [
    ['1x1 64-64 @56 b64', { batch: 64, inChannels: 64, outChannels: 64, inHeight: 56, inWidth: 56, kernel: 1 }],
    [
      '3x3 64-64 @56 b64',
      { batch: 64, inChannels: 64, outChannels: 64, inHeight: 56, inWidth: 56, kernel: 3, padding: 1 },
    ],
  ];
  const r = rng(o.seed + 14);
  const rows: AllocationRow[] = [];
  for (const [name, spec] of layers) {
    progress(`runtime: obvious loop vs reused outputs on ${name}`);
    const [conv] = await compileMaskedConvs([{ ...spec, density: { out: 0.5, in: 0.5 } }], {
      threads: o.threads,
      respecialize: false,
    });
    const l = conv.spec;
    conv.setMasks({ out: exactMask(r, l.outChannels, 0.5), in: exactMask(r, l.inChannels, 0.5) });
    const d = layerData(l, r),
      n = sizes(l);
    const out = { y: new Float32Array(n.y), dx: new Float32Array(n.x), dw: new Float32Array(n.w) };
    let held: unknown; // the obvious loop keeps only the latest result alive
    const allocated: Record<Pass, () => void> = {
      fwd: () => {
        held = conv.forward(d.x, d.w);
      },
      bwd_data: () => {
        held = conv.backwardData(d.dy, d.w);
      },
      bwd_weights: () => {
        held = conv.backwardWeights(d.dy, d.x);
      },
    };
    const reused: Record<Pass, () => void> = {
      fwd: () => conv.forward(d.x, d.w, undefined, out.y),
      bwd_data: () => conv.backwardData(d.dy, d.w, out.dx),
      bwd_weights: () => conv.backwardWeights(d.dy, d.x, out.dw),
    };
    for (const pass of o.passes) {
      const row: Required<AllocationRow> = {
        layer: name,
        pass,
        allocatedMs: [],
        reusedMs: [],
        coldMs: [],
        poolHits: 0,
        poolCalls: 0,
      };
      // Warm-up until the pool serves COLD_HITS calls in a row from memory the loop left, and its
      // collection interval stayed the same over its last COLD_COLLECTIONS collections (each time
      // the interval grows, the loop needs more blocks, fresh ones the first time; with no pool
      // collecting for itself there is no interval); timed loops then measure the steady state.
      const pool = () => {
        const s = poolStats();
        return s.native && s.selfCollect ? { collections: s.minorCollections, interval: s.collectAfterBytes } : null;
      };
      let since = pool(); // the collection count and interval when the interval last changed
      const settled = () => {
        const now = pool();
        if (!now || !since) return true;
        if (now.interval !== since.interval) since = now;
        return now.collections - since.collections >= COLD_COLLECTIONS;
      };
      for (let call = 0, inARow = 0; call < COLD_MAX_CALLS && (!settled() || inARow < COLD_HITS); call++) {
        const before = poolCounts().hits;
        row.coldMs.push(perCallUs(allocated[pass], 1) / 1000);
        inARow = poolCounts().hits > before ? inARow + 1 : 0;
      }
      for (let rep = 0; rep < o.warmup + Math.max(o.reps, LOOP_MIN_SAMPLES); rep++) {
        const order = rep % 2 ? [reused, allocated] : [allocated, reused]; // alternate who goes first
        for (const f of order) {
          const before = poolCounts();
          const ms = perCallUs(f[pass], LOOP_CALLS) / 1000;
          if (rep < o.warmup) continue;
          if (f === allocated) {
            const after = poolCounts();
            row.poolHits += after.hits - before.hits;
            row.poolCalls += after.hits - before.hits + after.recycled - before.recycled + after.misses - before.misses;
          }
          (f === allocated ? row.allocatedMs : row.reusedMs).push(ms);
        }
      }
      rows.push(row);
      const s = poolStats();
      if (s.native)
        progress(
          `runtime: ${name} ${pass}: ${row.poolHits}/${row.poolCalls} pool hits, young collections every ${(s.collectAfterBytes / 2 ** 20).toFixed(0)} MiB`,
        );
    }
    void held;
    conv.dispose();
  }
  return rows;
}

/**
 * The fixed cost of a call on small layers, µs per call (outputs reused, and allocated by the
 * call), next to dense oneDNN on the full layer. The first is the issue's tiny layer.
 */
async function callCostPhase(b: Baselines, o: Options): Promise<CallCostRow[]> {
  const layers: [string, ConvSpec, number[]][] = [
    [
      '16-16 3x3 @1x1 b1',
      { batch: 1, inChannels: 16, outChannels: 16, inHeight: 1, inWidth: 1, kernel: 3, padding: 1 },
      [1, 0.5],
    ],
    [
      '64-64 3x3 @4x4 b1',
      { batch: 1, inChannels: 64, outChannels: 64, inHeight: 4, inWidth: 4, kernel: 3, padding: 1 },
      [0.5],
    ],
    [
      '32-32 3x3 d2 @7x7 b2',
      { batch: 2, inChannels: 32, outChannels: 32, inHeight: 7, inWidth: 7, kernel: 3, padding: 2, dilation: 2 },
      [0.5],
    ],
    ['256-256 1x1 @2x2 b1', { batch: 1, inChannels: 256, outChannels: 256, inHeight: 2, inWidth: 2, kernel: 1 }, [0.5]],
  ];
  const r = rng(o.seed + 15);
  const rows: CallCostRow[] = [];
  for (const [name, spec, densities] of layers) {
    const l = conv2d(spec),
      d = layerData(l, r),
      n = sizes(l);
    const dense = new b.OneDnnConv(l, o.threads),
      denseRun = baselineRunner(dense, d);
    const out = {
      y: new Float32Array(n.y),
      dx: new Float32Array(n.x),
      dw: new Float32Array(n.w),
      db: new Float32Array(l.outChannels),
    };
    for (const density of densities) {
      progress(`runtime: per-call cost on ${name} at d=${density}`);
      const [conv] = await compileMaskedConvs([{ ...spec, density: { out: density, in: density } }], {
        threads: o.threads,
        respecialize: false,
      });
      const masks = { out: exactMask(r, l.outChannels, density), in: exactMask(r, l.inChannels, density) };
      conv.setMasks(masks);
      const run = maskaccRunner(conv, d);
      const allocated: Record<Pass, () => void> = {
        fwd: () => conv.forward(d.x, d.w, d.bias),
        bwd_data: () => conv.backwardData(d.dy, d.w),
        bwd_weights: () => conv.backwardWeights(d.dy, d.x),
      };
      const checked = check(run, out, reference(dense, l, d, masks, o.passes), o.passes);
      for (const pass of o.passes) {
        const row: CallCostRow = {
          layer: name,
          density,
          pass,
          reusedUs: [],
          allocatedUs: [],
          denseUs: [],
          check: checked,
        };
        if (checked.ok) {
          const calls = Math.max(
            50,
            Math.min(
              20_000,
              Math.round(
                20_000 /
                  Math.max(
                    1,
                    perCallUs(() => run(pass, out), 20),
                  ),
              ),
            ),
          );
          for (let rep = 0; rep < o.warmup + Math.max(o.reps, LOOP_MIN_SAMPLES); rep++) {
            const samples: [number[], () => void][] = [
              [row.reusedUs, () => run(pass, out)],
              [row.allocatedUs, allocated[pass]],
              [row.denseUs, () => denseRun(pass, out)],
            ];
            for (let k = 0; k < samples.length; k++) {
              const [into, f] = samples[(rep + k) % samples.length];
              const us = perCallUs(f, calls);
              if (rep >= o.warmup) into.push(us);
            }
          }
        }
        rows.push(row);
      }
      conv.dispose();
    }
  }
  return rows;
}

// ---------------------------------------------------------------- output

/** Write-then-rename so a crash never leaves a half-written result file. */
function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function writeResults(run: BenchRun, markdown: string, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const json = {
    ...run,
    summaries: Object.fromEntries(
      run.models.map((m) => [
        m.key,
        {
          densities: summarizeModel(m),
          peakTargets: PEAK_TARGETS.map((t) => ({
            layers: t.layers,
            fraction: t.fraction,
            passes: peakTargets(m, run.machine.peakGflops.used, t),
          })),
        },
      ]),
    ),
  };
  // Infinity (e.g. an ideal with nothing kept) is not JSON: store it as null.
  writeAtomic(
    path.join(dir, 'latest.json'),
    `${JSON.stringify(json, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1)}\n`,
  );
  writeAtomic(path.join(dir, 'latest.md'), markdown);
  writeAtomic(path.join(dir, 'speedup.svg'), renderSpeedupSvg(run));
}

/**
 * FMA peak as the max of a sustained reading (1 s) and short bursts with pauses between them.
 * On a shared machine the scheduler favours bursty work: the 2-20 ms kernel calls get whole
 * cores while a 1 s loop gets its fair share only (measured: 176 sustained vs 340 in 2.5 ms
 * bursts under load), which would put kernels above 100% of "peak". Bursts measure what the
 * kernels can get; on a quiet machine both readings agree.
 */
async function measurePeak(b: Baselines, threads: number): Promise<{ used: number; sustained: number; burst: number }> {
  const sustained = b.measurePeakGflops(threads);
  let burst = 0;
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 20));
    burst = Math.max(burst, b.measurePeakGflops(threads, 0.01));
  }
  return { used: Math.max(sustained, burst), sustained, burst };
}

/** Report changes need no new measurements: rebuild the Markdown and SVG from saved results. */
function rerender(file: string, dir: string): void {
  const run = JSON.parse(readFileSync(file, 'utf8')) as BenchRun & { summaries?: unknown };
  delete run.summaries; // recomputed from the raw samples
  const markdown = renderMarkdown(run);
  writeResults(run, markdown, dir);
  process.stdout.write(markdown);
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.render) {
    rerender(o.render, o.out);
    return;
  }
  const startedAt = new Date().toISOString();
  progress(`options: ${JSON.stringify(o)}`);
  const b = await loadBaselines();
  b.setThreads(o.threads);
  coreDistance = new CoreDistance();
  const loadStart = loadavg()[0];
  const peakStart = await measurePeak(b, o.threads);
  progress(
    `CPU: ${cpuModel()}, ${supportedIsas()[0]}; FMA peak at start: ${peakStart.used.toFixed(0)} GFLOP/s on ${o.threads} threads (sustained ${peakStart.sustained.toFixed(0)}, bursts ${peakStart.burst.toFixed(0)})`,
  );
  const models: ModelRun[] = [];
  for (const key of o.models) models.push(await runModel(key, b, o));
  const runtime: RuntimeRun | undefined = o.runtime
    ? { allocation: await allocationPhase(o), calls: await callCostPhase(b, o) }
    : undefined;
  const loadEnd = loadavg()[0];
  const peakEnd = await measurePeak(b, o.threads);
  progress(
    `FMA peak at end: ${peakEnd.used.toFixed(0)} GFLOP/s (sustained ${peakEnd.sustained.toFixed(0)}, bursts ${peakEnd.burst.toFixed(0)})`,
  );
  const torchVersion = models.find((m) => m.torch.version)?.torch.version;
  const run: BenchRun = {
    startedAt,
    finishedAt: new Date().toISOString(),
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    options: { ...o },
    machine: {
      cpu: cpuModel(),
      isa: supportedIsas()[0],
      logicalCpus: availableParallelism(),
      threads: o.threads,
      // The machine is shared and noisy: the higher reading is the closer one to the true peak.
      peakGflops: {
        start: peakStart.used,
        end: peakEnd.used,
        used: Math.max(peakStart.used, peakEnd.used),
        readings: { start: peakStart, end: peakEnd },
      },
      loadAverage: { start: loadStart, end: loadEnd },
      coreDistanceNs,
      versions: { ...versions(), ...(torchVersion ? { torch: torchVersion } : {}) },
    },
    models,
    ...(runtime ? { runtime } : {}),
  };
  await coreDistance.close();
  await coreDistance.close();
  const markdown = renderMarkdown(run);
  writeResults(run, markdown, o.out);
  process.stdout.write(markdown);
  progress(`wrote ${path.join(o.out, 'latest.json')}, latest.md, speedup.svg`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
