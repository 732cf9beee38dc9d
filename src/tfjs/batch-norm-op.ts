// Batch normalization with a channel keep-mask as one TF.js op on the native training ops, over a
// [outer][C][inner] view of the input (channelsLast: inner = 1, the rows path that runs along the
// channels; channelsFirst: outer = N, inner = H * W). Masked channels are exactly +0 and get no
// gradient. Built from TF.js's broadcasting ops instead, a step of the demo CNN took seconds.
import { adopt, takeArray } from './buffers.js';
import { data } from './conv-op.js';
import { nativeOps } from './native-ops.js';
import { tf, type Tensor } from './tf.js';

export interface BatchNormView {
  outer: number;
  channels: number;
  inner: number;
}

const keepOf = (mask: Float32Array) => Uint8Array.from(mask, (v) => (v ? 1 : 0));

/**
 * How the op's channels map to the layer's: all of them, or (a compact input, which holds the kept
 * channels only) the kept ones, whose parameters are gathered and whose results are scattered back.
 */
class Channels {
  /** Indices of the op's channels among the layer's; undefined: the same channels. */
  private readonly kept?: Int32Array;
  /** The op's keep-mask. */
  readonly keep: Uint8Array;

  constructor(
    mask: Float32Array,
    readonly compact: boolean,
  ) {
    if (!compact) this.keep = keepOf(mask);
    else {
      this.kept = Int32Array.from([...mask.keys()].filter((c) => mask[c]));
      this.keep = new Uint8Array(this.kept.length).fill(1);
    }
  }

  /** A per-channel array of the layer, for the op. */
  gather(a: Float32Array): Float32Array {
    return this.kept ? this.kept.reduce((g, c, i) => ((g[i] = a[c]), g), new Float32Array(this.kept.length)) : a;
  }

  /** A per-channel result of the op, for the layer: `absent` in the channels the op did not see. */
  scatter(a: Float32Array, size: number, absent = 0): Float32Array {
    if (!this.kept) return a;
    const out = new Float32Array(size).fill(absent);
    this.kept.forEach((c, i) => (out[c] = a[i]));
    return out;
  }
}

/** y = ((x - mean) * invstd * gamma + beta) * mask with given per-channel statistics (inference). */
export function batchNormInference(
  x: Tensor,
  view: BatchNormView,
  p: {
    mean: Float32Array;
    variance: Float32Array;
    gamma: Float32Array;
    beta: Float32Array;
    mask: Float32Array;
    epsilon: number;
  },
  layer: string,
  compact = false,
): Tensor {
  const { ops, threads } = nativeOps(layer);
  const { outer, channels: C, inner } = view;
  const ch = new Channels(p.mask, compact);
  const y = takeArray(x.size);
  const invstd = ch.gather(p.variance).map((v) => 1 / Math.sqrt(v + p.epsilon));
  // Inference reads mean and invstd and never writes them.
  ops.batchNormForward(
    data(x),
    ch.gather(p.gamma),
    ch.gather(p.beta),
    ch.keep,
    outer,
    C,
    inner,
    p.epsilon,
    false,
    threads,
    false,
    ch.gather(p.mean),
    invstd,
    y,
  );
  return adopt(y, x.shape);
}

/**
 * Training: normalizes with the batch statistics (biased variance, as TF.js) and returns them for
 * the moving averages. Gradients flow to x, gamma and beta; a masked channel gets none. A compact x
 * (view.channels = the kept channels) gives a pruned channel the statistics of a zero channel.
 */
export function batchNormTraining(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  view: BatchNormView,
  mask: Float32Array,
  epsilon: number,
  layer: string,
  compact = false,
): { y: Tensor; mean: Float32Array; variance: Float32Array } {
  const { ops, threads } = nativeOps(layer);
  const { outer, channels: C, inner } = view;
  const ch = new Channels(mask, compact);
  const keep = ch.keep;
  const mean = new Float32Array(C),
    invstd = new Float32Array(C);
  const f = tf.customGrad((xt, gt, bt, save) => {
    const xs = data(xt as Tensor),
      g = ch.gather(data(gt as Tensor)),
      b = ch.gather(data(bt as Tensor));
    const y = takeArray(xs.length);
    ops.batchNormForward(xs, g, b, keep, outer, C, inner, epsilon, false, threads, true, mean, invstd, y);
    const value = adopt(y, (xt as Tensor).shape);
    (save as (t: Tensor[]) => void)([xt as Tensor, value]); // backward reads x (and y, unused without ReLU)
    return {
      value,
      gradFunc: (dyt: Tensor) => {
        const dx = takeArray(xs.length),
          dgamma = new Float32Array(C),
          dbeta = new Float32Array(C);
        ops.batchNormBackward(
          xs,
          g,
          b,
          keep,
          outer,
          C,
          inner,
          epsilon,
          false,
          threads,
          mean,
          invstd,
          y,
          data(dyt),
          dx,
          dgamma,
          dbeta,
        );
        const full = mask.length;
        return [
          adopt(dx, (xt as Tensor).shape),
          tf.tensor1d(ch.scatter(dgamma, full)),
          tf.tensor1d(ch.scatter(dbeta, full)),
        ];
      },
    };
  });
  const y = f(x, gamma, beta) as Tensor;
  // The op returns 1 / sqrt(var + eps) of every channel it saw, pruned ones included.
  const variance = invstd.map((s) => Math.max(0, 1 / (s * s) - epsilon));
  return { y, mean: ch.scatter(mean, mask.length), variance: ch.scatter(variance, mask.length) };
}
