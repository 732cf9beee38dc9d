// MaskaccMaxPooling2D: tf.layers.maxPooling2d ('valid' or 'same' windows, either data format) as
// one native op; the gradient recomputes each window's first maximum, as TF.js's does. TF.js's cpu
// maxPool gradient recomputes the positions through TensorBuffer.get per element: ~1.7 s of a
// 3.5 s step of the demo CNN. prune() swaps it in for MaxPooling2D and stripPruning swaps it back
// (same config).
import type { Shape } from '@tensorflow/tfjs';
import type { Pool2dShape } from '../codegen/compile-train-ops.js';
import { ArgumentError } from '../errors.js';
import { adopt, takeArray } from './buffers.js';
import { data } from './conv-op.js';
import { nativeOps } from './native-ops.js';
import { tf, type Tensor } from './tf.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Pair = [number, number];

export interface MaskaccMaxPooling2DArgs extends LayerArgs {
  poolSize?: number | Pair;
  /** Default: poolSize. */
  strides?: number | Pair;
  /** Default 'valid'; 'same' pads as TF.js does (more on the bottom and right). */
  padding?: 'valid' | 'same';
  dataFormat?: 'channelsLast' | 'channelsFirst';
}

const pair = (v: number | Pair): Pair => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export class MaskaccMaxPooling2D extends tf.layers.Layer {
  static readonly className = 'MaskaccMaxPooling2D';
  readonly poolSize: Pair;
  readonly strides: Pair;
  readonly padding: 'valid' | 'same';
  readonly dataFormat: 'channelsLast' | 'channelsFirst';

  constructor(args: MaskaccMaxPooling2DArgs = {}) {
    super(args);
    this.poolSize = pair(args.poolSize ?? 2);
    this.strides = pair(args.strides ?? this.poolSize);
    for (const [name, v] of [
      ['poolSize', this.poolSize],
      ['strides', this.strides],
    ] as const)
      if (!v.every((d) => Number.isInteger(d) && d >= 1)) throw new ArgumentError(name, v, 'positive integers');
    this.padding = args.padding ?? 'valid';
    if (this.padding !== 'valid' && this.padding !== 'same')
      throw new ArgumentError('padding', args.padding, "'valid' or 'same'");
    this.dataFormat = args.dataFormat ?? 'channelsLast';
    if (this.dataFormat !== 'channelsLast' && this.dataFormat !== 'channelsFirst')
      throw new ArgumentError('dataFormat', args.dataFormat, "'channelsLast' or 'channelsFirst'");
  }

  /** [N, C, H, W] of an input shape, whatever the data format. */
  private dims(shape: Shape): (number | null)[] {
    return this.dataFormat === 'channelsLast' ? [shape[0], shape[3], shape[1], shape[2]] : shape.slice(0, 4);
  }

  /** Output size and leading padding along one axis (TF.js's 'same': the extra pad goes last). */
  private axis(n: number, i: number): { out: number; pad: number } {
    const [k, st] = [this.poolSize[i], this.strides[i]];
    if (this.padding === 'valid') return { out: Math.floor((n - k) / st) + 1, pad: 0 };
    const out = Math.ceil(n / st);
    return { out, pad: Math.floor(Math.max(0, (out - 1) * st + k - n) / 2) };
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const [N, C, H, W] = this.dims(shape);
    const [P, Q] = [H, W].map((n, i) => (n == null ? null : this.axis(n, i).out));
    return this.dataFormat === 'channelsLast' ? [N, P, Q, C] : [N, C, P, Q];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    const { ops, threads } = nativeOps(`layer '${this.name}' (MaskaccMaxPooling2D)`);
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const [N, C, H, W] = this.dims(x.shape) as number[];
    const [rows, cols] = [this.axis(H, 0), this.axis(W, 1)];
    if (rows.out < 1 || cols.out < 1)
      throw new ArgumentError(
        `${this.name} input`,
        `[${x.shape}]`,
        `planes of at least ${this.poolSize} (valid windows)`,
      );
    const last = this.dataFormat === 'channelsLast';
    const [kh, kw] = this.poolSize,
      [sh, sw] = this.strides;
    const args: Pool2dShape = [N, C, H, W, kh, kw, sh, sw, rows.pad, cols.pad, rows.out, cols.out, last, threads];
    const outShape = last ? [N, rows.out, cols.out, C] : [N, C, rows.out, cols.out];
    // Channels-last keeps each output's winning tap (a byte), so the gradient is a scatter that
    // does not re-read x; channels-first recomputes it (its 2x2 path is one vectorized pass).
    const keepTaps = last && kh * kw < 255;
    const f = tf.customGrad((xt, save) => {
      (save as (t: Tensor[]) => void)([xt as Tensor]);
      const xv = data(xt as Tensor);
      const y = takeArray(N * C * rows.out * cols.out);
      const taps = keepTaps ? new Uint8Array(y.length) : undefined;
      ops.maxPool2dForward(...args, xv, y, taps);
      return {
        value: adopt(y, outShape),
        gradFunc: (dyt: Tensor) => {
          const dx = takeArray(xv.length);
          if (taps) ops.maxPool2dBackwardArgmax(...args, taps, data(dyt), dx);
          else ops.maxPool2dBackward(...args, xv, data(dyt), dx);
          return adopt(dx, (xt as Tensor).shape);
        },
      };
    });
    return f(x) as Tensor;
  }

  override getConfig() {
    const config = {
      poolSize: this.poolSize,
      strides: this.strides,
      padding: this.padding,
      dataFormat: this.dataFormat,
    };
    return { ...config, ...super.getConfig() };
  }
}
tf.serialization.registerClass(MaskaccMaxPooling2D);
