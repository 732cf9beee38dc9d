// MaskaccMaxPooling2D: tf.layers.maxPooling2d ('valid' windows) as one op of plain loops that
// remembers each window's argmax, so the gradient is a scatter. TF.js's cpu maxPool gradient
// recomputes the positions through TensorBuffer.get per element: ~1.7 s of a 3.5 s step of the
// demo CNN. prune() swaps it in for MaxPooling2D and stripPruning swaps it back (same config).
import type { Shape } from '@tensorflow/tfjs';
import { ArgumentError } from '../errors.js';
import { adopt, takeArray } from './buffers.js';
import { data } from './conv-op.js';
import { tf, type Tensor } from './tf.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Pair = [number, number];

export interface MaskaccMaxPooling2DArgs extends LayerArgs {
  poolSize?: number | Pair;
  /** Default: poolSize. */
  strides?: number | Pair;
  padding?: 'valid';
  dataFormat?: 'channelsLast' | 'channelsFirst';
}

const pair = (v: number | Pair): Pair => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export class MaskaccMaxPooling2D extends tf.layers.Layer {
  static readonly className = 'MaskaccMaxPooling2D';
  readonly poolSize: Pair;
  readonly strides: Pair;
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
    if ((args.padding ?? 'valid') !== 'valid') throw new ArgumentError('padding', args.padding, "'valid'");
    this.dataFormat = args.dataFormat ?? 'channelsLast';
    if (this.dataFormat !== 'channelsLast' && this.dataFormat !== 'channelsFirst')
      throw new ArgumentError('dataFormat', args.dataFormat, "'channelsLast' or 'channelsFirst'");
  }

  /** [N, C, H, W] of an input shape, whatever the data format. */
  private dims(shape: Shape): (number | null)[] {
    return this.dataFormat === 'channelsLast' ? [shape[0], shape[3], shape[1], shape[2]] : shape.slice(0, 4);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const [N, C, H, W] = this.dims(shape);
    const [P, Q] = [H!, W!].map((n, i) => Math.floor((n - this.poolSize[i]) / this.strides[i]) + 1);
    return this.dataFormat === 'channelsLast' ? [N, P, Q, C] : [N, C, P, Q];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const [N, C, H, W] = this.dims(x.shape) as number[];
    const outShape = this.computeOutputShape(x.shape) as number[];
    const [P, Q] = this.dataFormat === 'channelsLast' ? outShape.slice(1, 3) : outShape.slice(2, 4);
    const [kh, kw] = this.poolSize,
      [sh, sw] = this.strides;
    // Element strides of n, c, h, w in x (and of n, c, p, q in y).
    const last = this.dataFormat === 'channelsLast';
    const xs = last ? [H * W * C, 1, W * C, C] : [C * H * W, H * W, W, 1];
    const ys = last ? [P * Q * C, 1, Q * C, C] : [C * P * Q, P * Q, Q, 1];
    const f = tf.customGrad((xt, save) => {
      (save as (t: Tensor[]) => void)([xt as Tensor]);
      const xv = data(xt as Tensor);
      const y = takeArray(N * C * P * Q),
        argmax = new Int32Array(y.length);
      for (let n = 0; n < N; n++)
        for (let c = 0; c < C; c++)
          for (let p = 0; p < P; p++)
            for (let q = 0; q < Q; q++) {
              let best = -Infinity,
                at = n * xs[0] + c * xs[1] + p * sh * xs[2] + q * sw * xs[3];
              for (let i = 0; i < kh; i++)
                for (let j = 0; j < kw; j++) {
                  const k = n * xs[0] + c * xs[1] + (p * sh + i) * xs[2] + (q * sw + j) * xs[3];
                  if (xv[k] > best) {
                    best = xv[k];
                    at = k;
                  }
                }
              const o = n * ys[0] + c * ys[1] + p * ys[2] + q * ys[3];
              y[o] = best;
              argmax[o] = at;
            }
      return {
        value: adopt(y, outShape),
        gradFunc: (dyt: Tensor) => {
          const dy = data(dyt),
            dx = takeArray(xv.length).fill(0);
          for (let o = 0; o < dy.length; o++) dx[argmax[o]] += dy[o];
          return adopt(dx, (xt as Tensor).shape);
        },
      };
    });
    return f(x) as Tensor;
  }

  override getConfig() {
    const config = { poolSize: this.poolSize, strides: this.strides, padding: 'valid', dataFormat: this.dataFormat };
    return { ...config, ...super.getConfig() };
  }
}
tf.serialization.registerClass(MaskaccMaxPooling2D);
