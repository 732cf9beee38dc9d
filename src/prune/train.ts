// The training loop of a pruning run: shuffled mini-batches through a MaskedCnn with a TF.js
// optimizer, and test accuracy with batch norm in inference mode.
import type { Split } from '../data/fashion-mnist.js';
import type { MaskedCnn } from '../tfjs/masked-cnn.js';
import { tf, type Tensor4D } from '../tfjs/tf.js';
import { adopt, takeArray } from '../tfjs/buffers.js';
import type { Optimizer, Scalar } from '@tensorflow/tfjs';

export interface EpochResult {
  /** Mean training loss over the epoch's batches. */
  loss: number;
  /** Wall time of the epoch's training steps. */
  ms: number;
  /** Of which in the conv kernels (forward, backward-data, backward-weights). */
  convMs: number;
  steps: number;
}

/** Deterministic permutation (xorshift; the same seed gives both runs of a comparison the same batches). */
export function shuffled(count: number, seed: number): Uint32Array {
  const order = Uint32Array.from({ length: count }, (_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = count - 1; i > 0; i--) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function gather(
  data: Split,
  order: ArrayLike<number>,
  from: number,
  batch: number,
  x: Float32Array,
  labels: Int32Array,
): void {
  const size = data.height * data.width;
  for (let b = 0; b < batch; b++) {
    const i = order[Math.min(from + b, order.length - 1)];
    x.set(data.images.subarray(i * size, (i + 1) * size), b * size);
    labels[b] = data.labels[i];
  }
}

/** One epoch over `data` (the last partial batch is dropped: kernels are specialized per batch size). */
export function trainEpoch(
  net: MaskedCnn,
  data: Split,
  optimizer: Optimizer,
  seed: number,
  onStep?: (step: number, steps: number, loss: number) => void,
): EpochResult {
  const batch = net.spec.batch,
    steps = Math.floor(data.count / batch);
  const order = shuffled(data.count, seed);
  const labels = new Int32Array(batch),
    shape = [batch, 1, data.height, data.width];
  net.convMs(true);
  let total = 0;
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const x = takeArray(batch * data.height * data.width); // a batch's images, recycled like activations
    gather(data, order, s * batch, batch, x, labels);
    const loss = tf.tidy(() => {
      const xs = adopt<Tensor4D>(x, shape),
        ys = tf.tensor1d(labels.slice(), 'int32');
      return optimizer.minimize(() => net.loss(xs, ys) as Scalar, true, net.variables)!.dataSync()[0];
    });
    total += loss;
    onStep?.(s + 1, steps, total / (s + 1));
  }
  return { loss: total / steps, ms: performance.now() - t0, convMs: net.convMs(true), steps };
}

/** Top-1 accuracy on `data` (a last partial batch is padded and its padding ignored). */
export function evaluate(net: MaskedCnn, data: Split): number {
  const batch = net.spec.batch;
  const labels = new Int32Array(batch),
    shape = [batch, 1, data.height, data.width];
  const order = Uint32Array.from({ length: data.count }, (_, i) => i);
  let correct = 0;
  for (let from = 0; from < data.count; from += batch) {
    const x = takeArray(batch * data.height * data.width);
    gather(data, order, from, batch, x, labels);
    const predicted = tf.tidy(() => tf.argMax(net.logits(adopt<Tensor4D>(x, shape), false), 1).dataSync());
    for (let b = 0; b < Math.min(batch, data.count - from); b++) if (predicted[b] === labels[b]) correct++;
  }
  return correct / data.count;
}
