// MaskaccMaxPooling2D against tf.maxPool: output and input gradient, both data formats, windows
// that overlap (stride < size) and that leave a remainder (valid padding), a batch of one.
import { describe, expect, it, beforeAll } from 'vitest';
import { MaskaccMaxPooling2D } from '../../src/tfjs/max-pool.js';
import { tf, type Tensor, type Tensor4D } from '../../src/tfjs/tf.js';
import { relL2, rng } from '../util.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('MaskaccMaxPooling2D', () => {
  for (const dataFormat of ['channelsLast', 'channelsFirst'] as const)
    for (const [poolSize, strides, n] of [
      [2, 2, 3],
      [3, 2, 1],
    ] as const)
      it(`${dataFormat}, pool ${poolSize} stride ${strides}, batch ${n}: output and gradient match tf.maxPool`, () => {
        const r = rng(poolSize * 10 + n);
        const nhwc: [number, number, number, number] = [n, 7, 6, 5];
        const layer = new MaskaccMaxPooling2D({ poolSize, strides, dataFormat });
        const toLayer = (t: Tensor) => (dataFormat === 'channelsLast' ? t : tf.transpose(t, [0, 3, 1, 2]));
        const x = tf.tensor(r.uniformArray(nhwc.reduce((a, b) => a * b)), nhwc) as Tensor4D;
        const ref = (t: Tensor) => toLayer(tf.maxPool(t as Tensor4D, poolSize, strides, 'valid'));
        const y = layer.apply(toLayer(x)) as Tensor;
        expect(y.shape).toEqual(ref(x).shape);
        expect(relL2(y.dataSync(), ref(x).dataSync())).toBe(0);
        const probe = tf.tensor(r.uniformArray(y.size), y.shape);
        const dx = tf.grads((t: Tensor) => tf.sum(tf.mul(layer.apply(toLayer(t)) as Tensor, probe)))([x])[0];
        const dref = tf.grads((t: Tensor) => tf.sum(tf.mul(ref(t), probe)))([x])[0];
        expect(relL2(dx.dataSync(), dref.dataSync())).toBeLessThan(1e-6);
      });

  it('refuses padding other than valid, naming it', () => {
    expect(() => new MaskaccMaxPooling2D({ padding: 'same' as 'valid' })).toThrow(/padding/);
  });
});
