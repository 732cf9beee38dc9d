// MaskedConv: the user-facing kernel object of one layer. It validates every argument before any
// native code runs, keeps the mask index lists, allocates omitted outputs and forwards to C++.

import type { ConvLayer } from '../ir/conv.js';
import { describePlan, type Plan } from '../schedule/plan.js';
import type { NativeKernel } from '../codegen/compile.js';
import { layerText } from '../codegen/render.js';
import { ArgumentError, DisposedError } from '../errors.js';
import { keptIndices, type MaskLike } from './masks.js';

export interface Masks {
  out?: MaskLike;
  in?: MaskLike;
}

export class MaskedConv {
  readonly spec: ConvLayer;
  readonly outHeight: number;
  readonly outWidth: number;
  readonly plan: Plan;
  /** Where the kernel came from: the addon's cache key. */
  readonly cacheKey: string;
  private native: NativeKernel | null;
  private readonly gradOfPrunedFilters: boolean;
  private ko: Int32Array;
  private ci: Int32Array;
  private gradRows: Int32Array;
  private readonly sizes: { x: number; w: number; y: number; k: number };

  constructor(layer: ConvLayer, plan: Plan, native: NativeKernel, cacheKey: string, gradOfPrunedFilters: boolean) {
    this.spec = layer;
    this.outHeight = layer.outHeight;
    this.outWidth = layer.outWidth;
    this.plan = plan;
    this.cacheKey = cacheKey;
    this.gradOfPrunedFilters = gradOfPrunedFilters;
    this.native = native;
    const { batch: N, inChannels: C, outChannels: K, inHeight: H, inWidth: W } = layer;
    this.sizes = {
      x: N * C * H * W,
      w: K * C * layer.kernel[0] * layer.kernel[1],
      y: N * K * layer.outHeight * layer.outWidth,
      k: K,
    };
    this.ko = keptIndices(undefined, K, 'masks.out');
    this.ci = keptIndices(undefined, C, 'masks.in');
    this.gradRows = this.ko;
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
  }

  /** Kept filters and input channels (sorted indices) under the current masks. */
  get kept(): { out: Int32Array; in: Int32Array } {
    return { out: this.ko.slice(), in: this.ci.slice() };
  }

  /** y = conv(x * m_in, w * m_out) + bias * m_out. */
  forward(x: Float32Array, w: Float32Array, bias?: Float32Array, y?: Float32Array): Float32Array {
    const native = this.live('forward');
    floats(x, this.sizes.x, 'x', '[N][C][H][W]');
    floats(w, this.sizes.w, 'w', '[K][C][R][S]');
    if (this.spec.bias) floats(bias, this.sizes.k, 'bias', '[K] (the spec has bias: true)');
    else if (bias !== undefined) throw new ArgumentError('bias', bias, 'undefined: the spec has bias: false');
    const out = output(y, this.sizes.y, 'y', '[N][K][P][Q]', [x, w, bias]);
    native.forward(x, w, bias ?? null, out, this.ko, this.ci);
    return out;
  }

  /** dx = dL/dx given dy = dL/dy; pruned input channels get exactly 0. */
  backwardData(dy: Float32Array, w: Float32Array, dx?: Float32Array): Float32Array {
    const native = this.live('backwardData');
    floats(dy, this.sizes.y, 'dy', '[N][K][P][Q]');
    floats(w, this.sizes.w, 'w', '[K][C][R][S]');
    const out = output(dx, this.sizes.x, 'dx', '[N][C][H][W]', [dy, w]);
    native.backwardData(dy, w, out, this.ko, this.ci);
    return out;
  }

  /** dw = dL/dw (and dbias when the spec has bias); zero for pruned channels and, unless soft, pruned filters. */
  backwardWeights(dy: Float32Array, x: Float32Array, dw?: Float32Array, dbias?: Float32Array): { dw: Float32Array; dbias?: Float32Array } {
    const native = this.live('backwardWeights');
    floats(dy, this.sizes.y, 'dy', '[N][K][P][Q]');
    floats(x, this.sizes.x, 'x', '[N][C][H][W]');
    const dwOut = output(dw, this.sizes.w, 'dw', '[K][C][R][S]', [dy, x]);
    let dbOut: Float32Array | undefined;
    if (this.spec.bias) dbOut = output(dbias, this.sizes.k, 'dbias', '[K]', [dy, x, dwOut]);
    else if (dbias !== undefined) throw new ArgumentError('dbias', dbias, 'undefined: the spec has bias: false');
    native.backwardWeights(dy, x, dwOut, dbOut ?? null, this.gradRows, this.ci);
    return dbOut ? { dw: dwOut, dbias: dbOut } : { dw: dwOut };
  }

  /** The plan as text: ISA, tiles and gather strategy per pass. */
  explain(): string {
    return [`layer: ${layerText(this.spec)}`, ...describePlan(this.plan)].join('\n');
  }

  dispose(): void {
    this.native = null;
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

/** Validate or allocate an output; an output must not overlap any input (it is written in full). */
function output(a: Float32Array | undefined, n: number, name: string, layout: string, inputs: (Float32Array | undefined)[]): Float32Array {
  if (a === undefined) return new Float32Array(n);
  floats(a, n, name, layout);
  for (const i of inputs) {
    if (i && i.buffer === a.buffer && i.byteOffset < a.byteOffset + a.byteLength && a.byteOffset < i.byteOffset + i.byteLength) {
      throw new ArgumentError(name, a, 'an array that does not overlap the inputs');
    }
  }
  return a;
}
