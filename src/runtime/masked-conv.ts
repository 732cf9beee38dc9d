// MaskedConv: the user-facing kernel object of one layer. It validates every argument before any
// native code runs, keeps the mask index lists, takes omitted outputs from the output pool
// (runtime/pool.ts) and forwards to C++.

import { layerText, passFlops, type ConvLayer } from '../ir/conv.js';
import type { PassMethods } from '../ir/passes.js';
import { diagnosticLine, type DiagnosticsSink } from './diagnostics.js';
import { describePlan, regimeOf, type Plan } from '../schedule/plan.js';
import type { BackwardDataArgs, BackwardWeightsArgs, ForwardArgs, NativeKernel } from '../codegen/compile.js';
import { ArgumentError, DisposedError, SpecError } from '../errors.js';
import { keptIndices, type MaskLike } from './masks.js';
import { runExclusive } from './exec-queue.js';
import { poolText, releasePool, retainPool, takeArray } from './pool.js';

export interface Masks {
  out?: MaskLike;
  in?: MaskLike;
}

/**
 * Compiles this layer for other kept densities (in the background): supplied by the compiler so
 * the kernel object can re-specialize itself when masks leave its regime.
 */
export interface Respecializer {
  /** The plan the scheduler would pick for these kept fractions. */
  planFor(density: { out: number; in: number }): Plan;
  /** Build (or fetch) the kernel for that plan. */
  build(plan: Plan, density: { out: number; in: number }): Promise<{ native: NativeKernel; cacheKey: string }>;
}

export interface BackwardWeightsOptions {
  /** dy is zero on every pruned filter: compute the kept filters' rows only (see backwardWeights). */
  prunedDyIsZero?: boolean;
}

export class MaskedConv implements PassMethods {
  readonly spec: ConvLayer;
  readonly outHeight: number;
  readonly outWidth: number;
  /** The schedule of the kernel now running (changes when a re-specialized kernel takes over). */
  plan: Plan;
  /** OpenMP threads per call (a run-time setting: the plan's blocking only assumed a parallelism). */
  readonly threads: number;
  /** Where the running kernel came from: its addon's cache key. */
  cacheKey: string;
  /** Settles when a background re-specialization started by setMasks has switched (or failed). */
  pendingRespecialization: Promise<void> | undefined;
  private native: NativeKernel | null;
  private readonly gradOfPrunedFilters: boolean;
  private ko: Int32Array;
  private ci: Int32Array;
  private gradRows: Int32Array;
  /** Elements of one image of x and of y, of w, and of a bias. */
  private readonly sizes: { x: number; w: number; y: number; k: number };

  /** `native` runs with `threads` (`new Kernel(ns, threads)`); the plan is what it was compiled from. */
  constructor(
    layer: ConvLayer,
    plan: Plan,
    native: NativeKernel,
    threads: number,
    cacheKey: string,
    gradOfPrunedFilters: boolean,
    private readonly diagnostics?: DiagnosticsSink,
    private readonly respecializer?: Respecializer,
  ) {
    this.spec = layer;
    this.outHeight = layer.outHeight;
    this.outWidth = layer.outWidth;
    this.plan = plan;
    this.threads = threads;
    this.cacheKey = cacheKey;
    this.gradOfPrunedFilters = gradOfPrunedFilters;
    this.native = native;
    const { inChannels: C, outChannels: K, inHeight: H, inWidth: W } = layer;
    this.sizes = {
      x: C * H * W,
      w: K * C * layer.kernel[0] * layer.kernel[1],
      y: K * layer.outHeight * layer.outWidth,
      k: K,
    };
    this.ko = keptIndices(undefined, K, 'masks.out');
    this.ci = keptIndices(undefined, C, 'masks.in');
    this.gradRows = this.ko;
    retainPool();
  }

  /** Set the filter (`out`, length K) and input-channel (`in`, length C) masks; omitted = all kept. */
  setMasks(m: Masks): void {
    this.live('setMasks');
    if (m === null || typeof m !== 'object') throw new ArgumentError('masks', m, 'an object { out?, in? }');
    const ko = keptIndices(m.out, this.spec.outChannels, 'masks.out');
    const ci = keptIndices(m.in, this.spec.inChannels, 'masks.in');
    this.ko = ko;
    this.ci = ci;
    this.gradRows = this.gradOfPrunedFilters ? keptIndices(undefined, this.spec.outChannels, 'masks.out') : ko;
    this.checkRegime();
  }

  /**
   * Masks outside the compiled regime still compute right at once (every kernel handles any
   * mask); a kernel specialized for the new densities is built in the background and takes over
   * when ready. Masks that keep the regime compile nothing.
   */
  private checkRegime(): void {
    if (!this.respecializer || this.pendingRespecialization) return;
    const density = {
      out: Math.max(this.ko.length, 1) / this.spec.outChannels,
      in: Math.max(this.ci.length, 1) / this.spec.inChannels,
    };
    const next = this.respecializer.planFor(density);
    if (regimeOf(next) === regimeOf(this.plan)) return;
    const from = regimeOf(this.plan),
      to = regimeOf(next),
      t0 = performance.now();
    this.diagnostics?.(diagnosticLine('regime', 'leave', from, to, `kept=${this.ko.length}/${this.ci.length}`));
    this.pendingRespecialization = this.respecializer.build(next, density).then(
      ({ native, cacheKey }) => {
        this.pendingRespecialization = undefined;
        if (!this.native) return native.dispose();
        this.native = native; // a pending async call keeps the old kernel alive until it settles
        this.plan = next;
        this.cacheKey = cacheKey;
        this.diagnostics?.(diagnosticLine('regime', 'switched', to, `ms=${(performance.now() - t0).toFixed(0)}`));
        this.checkRegime(); // masks may have moved on while it compiled
      },
      (e: unknown) => {
        this.pendingRespecialization = undefined;
        this.diagnostics?.(diagnosticLine('regime', 'failed', to, String(e).split('\n')[0]));
      },
    );
  }

  /** Kept filters and input channels (sorted indices) under the current masks. */
  get kept(): { out: Int32Array; in: Int32Array } {
    return { out: this.ko.slice(), in: this.ci.slice() };
  }

  /**
   * y = conv(x * m_in, w * m_out) + bias * m_out. x holds n images, 1 <= n <= spec.batch (the batch
   * is a run-time size up to the compiled one); y has n images too.
   */
  forward(x: Float32Array, w: Float32Array, bias?: Float32Array, y?: Float32Array): Float32Array {
    const a = this.forwardArgs(x, w, bias, y);
    const t0 = this.diagnostics && performance.now();
    this.native!.forward(a[0], a[1], a[2], a[3], a[4], a[5]); // (forwardArgs checked it is live; no spread: µs calls)
    if (t0) this.report('forward', t0, a[3].length / this.sizes.y);
    return a[3];
  }

  /** dx = dL/dx given dy = dL/dy; pruned input channels get exactly 0. */
  backwardData(dy: Float32Array, w: Float32Array, dx?: Float32Array): Float32Array {
    const a = this.backwardDataArgs(dy, w, dx);
    const t0 = this.diagnostics && performance.now();
    this.native!.backwardData(a[0], a[1], a[2], a[3], a[4]);
    if (t0) this.report('backwardData', t0, dy.length / this.sizes.y);
    return a[2];
  }

  /**
   * dw = dL/dw (and dbias when the spec has bias); zero for pruned channels and, unless soft, pruned
   * filters. `prunedDyIsZero`: the caller knows dy is zero on every pruned filter (a masked batch
   * norm or ReLU after the conv makes it so), so a soft gradient's pruned rows are zero: only the
   * kept rows are computed, the others written as zeros.
   */
  backwardWeights(
    dy: Float32Array,
    x: Float32Array,
    dw?: Float32Array,
    dbias?: Float32Array,
    opts?: BackwardWeightsOptions,
  ): { dw: Float32Array; dbias?: Float32Array } {
    const a = this.backwardWeightsArgs(dy, x, dw, dbias, opts);
    const t0 = this.diagnostics && performance.now();
    this.native!.backwardWeights(a[0], a[1], a[2], a[3], a[4], a[5]);
    if (t0) this.report('backwardWeights', t0, dy.length / this.sizes.y, a[4].length);
    return a[3] ? { dw: a[2], dbias: a[3] } : { dw: a[2] };
  }

  /**
   * The same passes off the JS thread (libuv pool): the event loop stays responsive. Arrays must
   * not be modified or transferred until the promise settles. Async calls of all kernels in the
   * process run one after another (each uses every thread it was given: no oversubscription).
   */
  async forwardAsync(x: Float32Array, w: Float32Array, bias?: Float32Array, y?: Float32Array): Promise<Float32Array> {
    const args = this.forwardArgs(x, w, bias, y);
    const t0 = this.diagnostics && performance.now();
    await runExclusive(() => this.live('forwardAsync').forwardAsync(...args));
    if (t0) this.report('forwardAsync', t0, args[3].length / this.sizes.y);
    return args[3];
  }

  async backwardDataAsync(dy: Float32Array, w: Float32Array, dx?: Float32Array): Promise<Float32Array> {
    const args = this.backwardDataArgs(dy, w, dx);
    const t0 = this.diagnostics && performance.now();
    await runExclusive(() => this.live('backwardDataAsync').backwardDataAsync(...args));
    if (t0) this.report('backwardDataAsync', t0, dy.length / this.sizes.y);
    return args[2];
  }

  async backwardWeightsAsync(
    dy: Float32Array,
    x: Float32Array,
    dw?: Float32Array,
    dbias?: Float32Array,
    opts?: BackwardWeightsOptions,
  ): Promise<{ dw: Float32Array; dbias?: Float32Array }> {
    const args = this.backwardWeightsArgs(dy, x, dw, dbias, opts);
    const t0 = this.diagnostics && performance.now();
    await runExclusive(() => this.live('backwardWeightsAsync').backwardWeightsAsync(...args));
    if (t0) this.report('backwardWeightsAsync', t0, dy.length / this.sizes.y, args[4].length);
    return args[3] ? { dw: args[2], dbias: args[3] } : { dw: args[2] };
  }

  private forwardArgs(x: Float32Array, w: Float32Array, bias?: Float32Array, y?: Float32Array): ForwardArgs {
    this.live('forward');
    const n = this.images(x, this.sizes.x, 'x', '[n][C][H][W]');
    floats(w, this.sizes.w, 'w', '[K][C][R][S]');
    if (this.spec.bias) floats(bias, this.sizes.k, 'bias', '[K] (the spec has bias: true)');
    else if (bias !== undefined) throw new ArgumentError('bias', bias, 'undefined: the spec has bias: false');
    const out = output(y, n * this.sizes.y, 'y', `[${n}][K][P][Q] (as many images as x)`, [x, w, bias]);
    return [x, w, bias ?? null, out, this.ko, this.ci];
  }

  private backwardDataArgs(dy: Float32Array, w: Float32Array, dx?: Float32Array): BackwardDataArgs {
    this.live('backwardData');
    if (!this.spec.inputGrad) {
      throw new SpecError(
        'inputGrad',
        false,
        'true to call backwardData: this layer was compiled without an input-gradient pass',
      );
    }
    const n = this.images(dy, this.sizes.y, 'dy', '[n][K][P][Q]');
    floats(w, this.sizes.w, 'w', '[K][C][R][S]');
    const dxOut = output(dx, n * this.sizes.x, 'dx', `[${n}][C][H][W] (as many images as dy)`, [dy, w]);
    return [dy, w, dxOut, this.ko, this.ci];
  }

  private backwardWeightsArgs(
    dy: Float32Array,
    x: Float32Array,
    dw?: Float32Array,
    dbias?: Float32Array,
    opts?: BackwardWeightsOptions,
  ): BackwardWeightsArgs {
    this.live('backwardWeights');
    const n = this.images(dy, this.sizes.y, 'dy', '[n][K][P][Q]');
    floats(x, n * this.sizes.x, 'x', `[${n}][C][H][W] (as many images as dy)`);
    const dwOut = output(dw, this.sizes.w, 'dw', '[K][C][R][S]', [dy, x]);
    let dbOut: Float32Array | null = null;
    if (this.spec.bias) dbOut = output(dbias, this.sizes.k, 'dbias', '[K]', [dy, x, dwOut]);
    else if (dbias !== undefined) throw new ArgumentError('dbias', dbias, 'undefined: the spec has bias: false');
    if (opts !== undefined && (opts === null || typeof opts !== 'object'))
      throw new ArgumentError('opts', opts, 'an object { prunedDyIsZero? } or undefined');
    return [dy, x, dwOut, dbOut, opts?.prunedDyIsZero ? this.ko : this.gradRows, this.ci];
  }

  /** The number of images in `a` (one image = `image` floats): 1 to spec.batch, checked. */
  private images(a: unknown, image: number, name: string, layout: string): number {
    const most = this.spec.batch;
    const expected = `a Float32Array of 1 to ${most} images of ${image} floats ${layout}`;
    if (!(a instanceof Float32Array)) throw new ArgumentError(name, a, expected);
    const n = a.length / image;
    if (!Number.isInteger(n) || n < 1 || n > most) throw new ArgumentError(name, a, `${expected}, got ${a.length}`);
    return n;
  }

  /** One diagnostics line per call: pass, shape, kept counts, time and GFLOP/s on kept FLOPs. */
  private report(pass: string, t0: number, n: number, rows = this.ko.length): void {
    const ms = performance.now() - t0;
    const l = { ...this.spec, batch: n };
    const flops = passFlops(l, rows, this.ci.length);
    const shape = `N${n}_C${l.inChannels}_K${l.outChannels}_${l.inHeight}x${l.inWidth}_k${l.kernel.join('x')}_s${l.stride.join('x')}`;
    this.diagnostics!(
      diagnosticLine(
        'exec',
        pass,
        shape,
        `kept=${this.ko.length}/${this.ci.length}`,
        `ms=${ms.toFixed(3)}`,
        `gflops=${(flops / ms / 1e6).toFixed(1)}`,
      ),
    );
  }

  /** The plan as text: ISA, tiles and gather strategy per pass, and the threads it runs with. */
  explain(): string {
    return [`layer: ${layerText(this.spec)}`, `threads: ${this.threads}`, ...describePlan(this.plan), poolText()].join(
      '\n',
    );
  }

  /** Free the kernel's buffers now; later calls throw DisposedError. Throws while an async call is pending. */
  dispose(): void {
    if (!this.native) return;
    this.native.dispose();
    this.native = null;
    releasePool(); // the last kernel disposed: the pool's free blocks go back to the system
  }

  private live(what: string): NativeKernel {
    if (!this.native) throw new DisposedError(what);
    return this.native;
  }
}

function floats(a: unknown, n: number, name: string, layout: string): asserts a is Float32Array {
  if (!(a instanceof Float32Array)) throw new ArgumentError(name, a, `a Float32Array of ${n} elements ${layout}`);
  if (a.length !== n) throw new ArgumentError(name, a, `${n} elements ${layout}, got ${a.length}`);
}

/**
 * Validate an output or take one from the pool; an output must not overlap any input (it is
 * written in full, so pooled memory that held older data is fine).
 */
function output(
  a: Float32Array | undefined,
  n: number,
  name: string,
  layout: string,
  inputs: (Float32Array | undefined)[],
): Float32Array {
  if (a === undefined) return takeArray(n);
  floats(a, n, name, layout);
  for (const i of inputs) {
    if (
      i &&
      i.buffer === a.buffer &&
      i.byteOffset < a.byteOffset + a.byteLength &&
      a.byteOffset < i.byteOffset + i.byteLength
    ) {
      throw new ArgumentError(name, a, 'an array that does not overlap the inputs');
    }
  }
  return a;
}
