// Loads the C++ baseline convolutions (bench/native: oneDNN dense, oneDNN on compacted channels,
// im2col + OpenBLAS) for the benchmark, building the addon with cmake-js on first use.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import lockfile from 'proper-lockfile';

const here = path.dirname(fileURLToPath(import.meta.url));
const nativeDir = path.join(here, 'native');
const buildDir = path.join(nativeDir, 'build');
const addonPath = path.join(buildDir, 'Release', 'baselines.node');

/** Layer shape, NCHW input / OIHW weights. Dilation is 1-based (1 = dense kernel). */
export interface BaselineConvSpec {
  batch: number;
  inChannels: number;
  outChannels: number;
  inHeight: number;
  inWidth: number;
  kernel: readonly [number, number];
  stride: readonly [number, number];
  padding: readonly [number, number];
  dilation: readonly [number, number];
  bias: boolean;
}

/**
 * One convolution layer. All arrays are full-size plain layouts: x [N,C,H,W], w [K,C,R,S],
 * y [N,K,P,Q], bias [K]. Each call runs its pass once and overwrites the output array(s).
 * `bias` is required iff spec.bias (else null); `dbias` may be null even when spec.bias.
 */
export interface DenseBaseline {
  forward(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array): void;
  backwardData(dy: Float32Array, w: Float32Array, dx: Float32Array): void;
  backwardWeights(dy: Float32Array, x: Float32Array, dw: Float32Array, dbias: Float32Array | null): void;
}

export interface Baselines {
  /** Dense oneDNN from plain NCHW/OIHW, reorders to oneDNN's blocked layouts included in each call. */
  OneDnnConv: new (spec: BaselineConvSpec, threads: number) => DenseBaseline;
  /**
   * Gather kept outputs `ko` / inputs `ci` into compact tensors, dense oneDNN, scatter back. With
   * `noCopies` only the first call of each pass copies (the checked one); later calls run oneDNN
   * alone on the operands gathered then: the efficiency yardstick, as if the gather were free.
   */
  CompactOneDnnConv: new (
    spec: BaselineConvSpec,
    ko: Int32Array,
    ci: Int32Array,
    threads: number,
    noCopies?: boolean,
  ) => DenseBaseline;
  /** The MaskACC paper's baseline: im2col of kept channels + cblas_sgemm per image, scatter back. */
  Im2colBlasConv: new (spec: BaselineConvSpec, ko: Int32Array, ci: Int32Array, threads: number) => DenseBaseline;
  /** FP32 FMA peak (AVX-512, else AVX2) of `threads` threads, GFLOP/s (best of a few trials over ~`seconds`, default 1). */
  measurePeakGflops(threads: number, seconds?: number): number;
  /** Default OpenMP and OpenBLAS thread count (each baseline object also sets its own per call). */
  setThreads(n: number): void;
}

/** Output spatial size: floor((in + 2*pad - dil*(k-1) - 1) / stride) + 1. */
export function outputSize(input: number, kernel: number, stride: number, pad: number, dil: number): number {
  return Math.floor((input + 2 * pad - dil * (kernel - 1) - 1) / stride) + 1;
}

/** The addon's own spec object (single-letter dims). */
interface NativeSpec {
  N: number;
  C: number;
  K: number;
  H: number;
  W: number;
  R: number;
  S: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilH: number;
  dilW: number;
  bias: boolean;
}

interface NativeAddon {
  OneDnnConv: new (spec: NativeSpec, threads: number) => DenseBaseline;
  CompactOneDnnConv: new (
    spec: NativeSpec,
    ko: Int32Array,
    ci: Int32Array,
    threads: number,
    noCopies?: boolean,
  ) => DenseBaseline;
  Im2colBlasConv: new (spec: NativeSpec, ko: Int32Array, ci: Int32Array, threads: number) => DenseBaseline;
  measurePeakGflops(threads: number, seconds?: number): number;
  setThreads(n: number): void;
}

function pair(v: unknown, name: string): readonly [number, number] {
  if (!Array.isArray(v) || v.length !== 2) throw new TypeError(`spec.${name} must be a [number, number] pair`);
  return v as [number, number];
}

function toNative(spec: BaselineConvSpec): NativeSpec {
  if (spec === null || typeof spec !== 'object') throw new TypeError('spec must be an object');
  const [R, S] = pair(spec.kernel, 'kernel');
  const [strideH, strideW] = pair(spec.stride, 'stride');
  const [padH, padW] = pair(spec.padding, 'padding');
  const [dilH, dilW] = pair(spec.dilation, 'dilation');
  // Ranges and integrality are checked by the addon, which names the native field.
  return {
    N: spec.batch,
    C: spec.inChannels,
    K: spec.outChannels,
    H: spec.inHeight,
    W: spec.inWidth,
    R,
    S,
    strideH,
    strideW,
    padH,
    padW,
    dilH,
    dilW,
    bias: spec.bias,
  };
}

/** True when the addon is missing or older than any file of bench/native (outside build/). */
function needsBuild(): boolean {
  if (!existsSync(addonPath)) return true;
  const built = statSync(addonPath).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true })
        .filter((e) => !(dir === nativeDir && e.name === 'build'))
        .map((e) => (e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs)),
    );
  return newest(nativeDir) > built;
}

/** Runs cmake-js in a child process; its chatter is kept and shown only if the build fails. */
async function build(): Promise<void> {
  const require = createRequire(import.meta.url);
  const cmakeJsBin = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  process.stderr.write('maskacc bench: building C++ baselines (bench/native) with cmake-js...\n');
  const started = Date.now();
  const output: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, [cmakeJsBin, 'build', '--directory', nativeDir, '--out', buildDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => output.push(d.toString()));
    child.stderr.on('data', (d: Buffer) => output.push(d.toString()));
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0 || !existsSync(addonPath)) {
    const tail = output.join('').split('\n').slice(-40).join('\n');
    throw new Error(
      `building bench/native failed (exit ${code}). Needs g++, cmake, libdnnl-dev, libopenblas-dev: ` +
        `run scripts/setup-system.sh --bench.\n${tail}`,
    );
  }
  process.stderr.write(`maskacc bench: baselines built in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
}

/**
 * OpenBLAS 0.3.21 does not recognize recent Xeons (e.g. Emerald Rapids, model 207) and falls
 * back to its SSE3 "Prescott" kernels, ~4x slower. Pick the kernel set from the CPU flags
 * instead; OpenBLAS reads this variable when the addon (and so libopenblas) is loaded.
 */
function pinOpenBlasCore(): void {
  if (process.env.OPENBLAS_CORETYPE) return;
  let flags: Set<string>;
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    flags = new Set((line ?? '').split(':')[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return;
  }
  const has = (...f: string[]) => f.every((x) => flags.has(x));
  if (has('avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl')) process.env.OPENBLAS_CORETYPE = 'SkylakeX';
  else if (has('avx2', 'fma')) process.env.OPENBLAS_CORETYPE = 'Haswell';
}

/** Builds under a lock in build/ so parallel processes (e.g. test workers) don't race cmake. */
async function buildLocked(): Promise<void> {
  mkdirSync(buildDir, { recursive: true });
  const release = await lockfile.lock(buildDir, {
    lockfilePath: path.join(buildDir, 'build.lock'),
    stale: 60_000,
    retries: { retries: 300, minTimeout: 200, maxTimeout: 1000 },
  });
  try {
    if (needsBuild()) await build(); // another process may have finished it while we waited
  } finally {
    await release();
  }
}

let loaded: Promise<Baselines> | undefined;

/** Builds bench/native if needed (once per process) and returns the typed baselines. */
export function loadBaselines(): Promise<Baselines> {
  if (!loaded) {
    loaded = load();
    // A failed build should be retried on the next call, not cached.
    loaded.catch(() => {
      loaded = undefined;
    });
  }
  return loaded;
}

async function load(): Promise<Baselines> {
  if (needsBuild()) await buildLocked();
  pinOpenBlasCore();
  const addon = createRequire(import.meta.url)(addonPath) as NativeAddon;
  // Plain functions rather than classes: `new` on them returns the native object they build.
  const OneDnnConv = function (spec: BaselineConvSpec, threads: number) {
    return new addon.OneDnnConv(toNative(spec), threads);
  } as unknown as Baselines['OneDnnConv'];
  const CompactOneDnnConv = function (
    spec: BaselineConvSpec,
    ko: Int32Array,
    ci: Int32Array,
    threads: number,
    noCopies = false,
  ) {
    return new addon.CompactOneDnnConv(toNative(spec), ko, ci, threads, noCopies);
  } as unknown as Baselines['CompactOneDnnConv'];
  const Im2colBlasConv = function (spec: BaselineConvSpec, ko: Int32Array, ci: Int32Array, threads: number) {
    return new addon.Im2colBlasConv(toNative(spec), ko, ci, threads);
  } as unknown as Baselines['Im2colBlasConv'];
  return {
    OneDnnConv,
    CompactOneDnnConv,
    Im2colBlasConv,
    measurePeakGflops: (threads, seconds) => addon.measurePeakGflops(threads, seconds),
    setThreads: (n) => addon.setThreads(n),
  };
}
