// Batch normalization with a channel keep-mask as one TF.js op of plain loops over a
// [outer][C][inner] view of the input (channelsLast: inner = 1; channelsFirst: outer = N, inner =
// H * W). TF.js's cpu backend runs every broadcasting element-wise op through a per-element index
// path that allocates: built from those ops, a batch norm step took seconds and mostly GC.
import { adopt, takeArray } from './buffers.js';
import { data } from './conv-op.js';
import { tf, type Tensor } from './tf.js';

export interface BatchNormView {
  outer: number;
  channels: number;
  inner: number;
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
): Tensor {
  const C = view.channels;
  const xs = data(x),
    y = takeArray(xs.length);
  const scale = new Float32Array(C),
    shift = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    scale[c] = p.gamma[c] / Math.sqrt(p.variance[c] + p.epsilon);
    shift[c] = p.beta[c] - p.mean[c] * scale[c];
  }
  normalize(xs, y, view, scale, shift, p.mask);
  return adopt(y, x.shape);
}

/** y = x * scale + shift per channel; masked channels exactly +0 (not x * 0, which may be -0). */
function normalize(
  xs: Float32Array,
  y: Float32Array,
  { outer, channels: C, inner }: BatchNormView,
  scale: Float32Array,
  shift: Float32Array,
  mask: Float32Array,
): void {
  for (let o = 0, i = 0; o < outer; o++)
    for (let c = 0; c < C; c++, i += inner) {
      if (!mask[c]) y.fill(0, i, i + inner);
      else for (let j = i; j < i + inner; j++) y[j] = xs[j] * scale[c] + shift[c];
    }
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
): { y: Tensor; mean: Float32Array; variance: Float32Array } {
  const { outer, channels: C, inner } = view;
  const M = outer * inner;
  const mean = new Float32Array(C),
    variance = new Float32Array(C);
  const f = tf.customGrad((xt, gt, bt, save) => {
    const xs = data(xt as Tensor),
      g = data(gt as Tensor),
      b = data(bt as Tensor);
    const sum = new Float64Array(C),
      sq = new Float64Array(C);
    for (let o = 0, i = 0; o < outer; o++)
      for (let c = 0; c < C; c++) for (let j = 0; j < inner; j++, i++) sum[c] += xs[i];
    for (let c = 0; c < C; c++) mean[c] = sum[c] / M;
    for (let o = 0, i = 0; o < outer; o++)
      for (let c = 0; c < C; c++)
        for (let j = 0; j < inner; j++, i++) {
          const d = xs[i] - mean[c];
          sq[c] += d * d;
        }
    const invstd = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      variance[c] = sq[c] / M;
      invstd[c] = 1 / Math.sqrt(variance[c] + epsilon);
    }
    const scale = new Float32Array(C),
      shift = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      scale[c] = g[c] * invstd[c];
      shift[c] = b[c] - mean[c] * scale[c];
    }
    const y = takeArray(xs.length);
    normalize(xs, y, view, scale, shift, mask);
    (save as (t: Tensor[]) => void)([xt as Tensor]); // backward reads x
    return {
      value: adopt(y, (xt as Tensor).shape),
      gradFunc: (dyt: Tensor) => {
        const dy = data(dyt);
        const dbeta = new Float64Array(C),
          dgamma = new Float64Array(C);
        for (let o = 0, i = 0; o < outer; o++)
          for (let c = 0; c < C; c++) {
            if (!mask[c]) {
              i += inner;
              continue;
            }
            for (let j = 0; j < inner; j++, i++) {
              dbeta[c] += dy[i];
              dgamma[c] += dy[i] * (xs[i] - mean[c]) * invstd[c];
            }
          }
        const dx = takeArray(xs.length);
        for (let o = 0, i = 0; o < outer; o++)
          for (let c = 0; c < C; c++) {
            const k = (mask[c] * g[c] * invstd[c]) / M,
              mb = dbeta[c],
              mg = dgamma[c];
            for (let j = 0; j < inner; j++, i++) dx[i] = k * (M * dy[i] - mb - (xs[i] - mean[c]) * invstd[c] * mg);
          }
        return [
          adopt(dx, (xt as Tensor).shape),
          tf.tensor1d(Float32Array.from(dgamma)),
          tf.tensor1d(Float32Array.from(dbeta)),
        ];
      },
    };
  });
  return { y: f(x, gamma, beta) as Tensor, mean, variance };
}
