// MaskaccMaxPooling2D against tf.maxPool: output and input gradient, both data formats, 'valid'
// and 'same' padding, windows that overlap (stride < size), that leave a remainder (valid) or
// hang over the edge (same), non-square windows, a batch of one.
import { describe, expect, it, beforeAll } from 'vitest';
import { compileLayers } from '../../src/tfjs/compile-layers.js';
import { MaskaccMaxPooling2D } from '../../src/tfjs/max-pool.js';
import { tf, type Tensor, type Tensor4D } from '../../src/tfjs/tf.js';
import { relL2, rng } from '../util.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await compileLayers([]); // loads the native ops
}, 300_000);

describe('MaskaccMaxPooling2D', () => {
  for (const dataFormat of ['channelsLast', 'channelsFirst'] as const)
    for (const [poolSize, strides, padding, n] of [
      [2, 2, 'valid', 3],
      [3, 2, 'valid', 1],
      [2, 2, 'same', 2],
      [3, 2, 'same', 1],
      [[3, 2], [1, 2], 'same', 2],
      [[2, 3], [2, 1], 'valid', 1],
    ] as const)
      it(`${dataFormat}, pool ${poolSize} stride ${strides} ${padding}, batch ${n}: output and gradient match tf.maxPool`, () => {
        const r = rng(Number(poolSize) * 10 + n);
        const nhwc: [number, number, number, number] = [n, 7, 6, 5];
        const layer = new MaskaccMaxPooling2D({
          poolSize: poolSize as number | [number, number],
          strides: strides as number | [number, number],
          padding,
          dataFormat,
        });
        const toLayer = (t: Tensor) => (dataFormat === 'channelsLast' ? t : tf.transpose(t, [0, 3, 1, 2]));
        const x = tf.tensor(r.uniformArray(nhwc.reduce((a, b) => a * b)), nhwc) as Tensor4D;
        const ref = (t: Tensor) =>
          toLayer(tf.maxPool(t as Tensor4D, poolSize as [number, number], strides as [number, number], padding));
        const y = layer.apply(toLayer(x)) as Tensor;
        expect(y.shape).toEqual(ref(x).shape);
        expect(layer.computeOutputShape(toLayer(x).shape)).toEqual(y.shape);
        expect(relL2(y.dataSync(), ref(x).dataSync())).toBe(0);
        const probe = tf.tensor(r.uniformArray(y.size), y.shape);
        const dx = tf.grads((t: Tensor) => tf.sum(tf.mul(layer.apply(toLayer(t)) as Tensor, probe)))([x])[0];
        const dref = tf.grads((t: Tensor) => tf.sum(tf.mul(ref(t), probe)))([x])[0];
        expect(relL2(dx.dataSync(), dref.dataSync())).toBeLessThan(1e-6);
      });

  it('refuses padding other than valid or same, naming it', () => {
    expect(() => new MaskaccMaxPooling2D({ padding: 'causal' as 'valid' })).toThrow(/padding/);
  });
});
