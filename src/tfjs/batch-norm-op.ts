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
): Tensor {
  const { ops, threads } = nativeOps(layer);
  const { outer, channels: C, inner } = view;
  const y = takeArray(x.size);
  const invstd = p.variance.map((v) => 1 / Math.sqrt(v + p.epsilon));
  // Inference reads mean and invstd and never writes them.
  ops.batchNormForward(
    data(x),
    p.gamma,
    p.beta,
    keepOf(p.mask),
    outer,
    C,
    inner,
    p.epsilon,
    false,
    threads,
    false,
    p.mean,
    invstd,
    y,
  );
  return adopt(y, x.shape);
}

/**
 * Training: normalizes with the batch statistics (biased variance, as TF.js) and returns them for
 * the moving averages. Gradients flow to x, gamma and beta; a masked channel gets none.
 */
export function batchNormTraining(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  view: BatchNormView,
  mask: Float32Array,
  epsilon: number,
  layer: string,
): { y: Tensor; mean: Float32Array; variance: Float32Array } {
  const { ops, threads } = nativeOps(layer);
  const { outer, channels: C, inner } = view;
  const keep = keepOf(mask);
  const mean = new Float32Array(C),
    invstd = new Float32Array(C);
  const f = tf.customGrad((xt, gt, bt, save) => {
    const xs = data(xt as Tensor),
      g = data(gt as Tensor),
      b = data(bt as Tensor);
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
        return [adopt(dx, (xt as Tensor).shape), tf.tensor1d(dgamma), tf.tensor1d(dbeta)];
      },
    };
  });
  const y = f(x, gamma, beta) as Tensor;
  // The op returns 1 / sqrt(var + eps) of every channel, pruned ones included.
  const variance = invstd.map((s) => Math.max(0, 1 / (s * s) - epsilon));
  return { y, mean, variance };
}
