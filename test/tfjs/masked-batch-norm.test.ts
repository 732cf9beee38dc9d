// MaskedBatchNormalization against TF.js's own arithmetic: training output, input / gamma / beta
// gradients and moving statistics, inference with the moving statistics, for channelsLast and
// channelsFirst; masked channels exactly zero with no gradient; save -> load keeps the mask.
import { describe, expect, it, beforeAll } from 'vitest';
import type { Scalar } from '@tensorflow/tfjs';
import { compileLayers } from '../../src/tfjs/compile-layers.js';
import { MaskedBatchNormalization, maskedBatchNormalization } from '../../src/tfjs/masked-batch-norm.js';
import { tf, type Tensor, type Variable } from '../../src/tfjs/tf.js';
import { relL2, rng } from '../util.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await compileLayers([]); // loads the native ops
}, 300_000);

const close = (actual: Tensor, expected: Tensor, what: string) =>
  expect(relL2(actual.dataSync() as Float32Array, expected.dataSync()), what).toBeLessThan(2e-5);

describe('MaskedBatchNormalization', () => {
  for (const [axis, shape] of [
    [-1, [4, 5, 3, 6]],
    [1, [4, 6, 5, 3]],
  ] as [number, number[]][]) {
    it(`axis ${axis}: training output and gradients match the TF.js formula; masked channels are 0 with no gradient; inference and moving statistics too`, async () => {
      const r = rng(40 + axis);
      const C = 6;
      const layer = maskedBatchNormalization({ axis, momentum: 0.9, epsilon: 1e-3 });
      layer.build([null, ...shape.slice(1)]);
      const [gamma, beta] = layer.trainableWeights.map((w) => w.read() as Variable);
      gamma.assign(tf.tensor1d(r.uniformArray(C, 0.5, 1.5)));
      beta.assign(tf.tensor1d(r.uniformArray(C)));
      const mask = [1, 0, 1, 1, 0, 1];
      layer.setMask(mask);
      const x = tf.tensor(
        r.uniformArray(
          shape.reduce((p, d) => p * d),
          -1,
          3,
        ),
        [...shape],
      );
      const probe = tf.tensor(r.uniformArray(x.size), [...shape]);
      const bshape = shape.map((d, i) => (i === (axis < 0 ? 3 : axis) ? d : 1));
      const reduce = [0, 1, 2, 3].filter((i) => bshape[i] === 1);
      const m = tf.reshape(tf.tensor1d(mask, 'float32'), bshape);
      const reference = (xt: Tensor, g: Tensor, b: Tensor) => {
        const { mean, variance } = tf.moments(xt, reduce, true);
        const norm = tf.mul(tf.sub(xt, mean), tf.rsqrt(tf.add(variance, 1e-3)));
        return tf.mul(tf.add(tf.mul(norm, tf.reshape(g, bshape)), tf.reshape(b, bshape)), m);
      };
      const refGrads = tf.grads((xt: Tensor, g: Tensor, b: Tensor) => tf.sum(tf.mul(reference(xt, g, b), probe)))([
        x,
        gamma,
        beta,
      ]);
      const y = layer.apply(x, { training: true }) as Tensor;
      close(y, reference(x, gamma, beta), 'training output');
      const ys = y.arraySync() as number[][][][];
      const channelOf = (idx: number[]) => idx[axis < 0 ? 3 : axis];
      ys.forEach((a, i) =>
        a.forEach((b, j) =>
          b.forEach((c, k) => c.forEach((v, l) => mask[channelOf([i, j, k, l])] || expect(v).toBe(0))),
        ),
      );
      const dx = tf.grads((xt: Tensor) => tf.sum(tf.mul(layer.apply(xt, { training: true }) as Tensor, probe)))([x])[0];
      close(dx, refGrads[0], 'dx');
      const { grads } = tf.variableGrads(
        () => tf.sum(tf.mul(layer.apply(x, { training: true }) as Tensor, probe)) as Scalar,
        [gamma, beta],
      );
      close(grads[gamma.name], refGrads[1], 'dgamma');
      close(grads[beta.name], refGrads[2], 'dbeta');
      expect([1, 4].map((c) => grads[gamma.name].dataSync()[c])).toEqual([0, 0]);
      // Three training calls so far, each moving the statistics 10% towards the batch's.
      const { mean, variance } = tf.moments(x, reduce);
      const decay = 0.9 ** 3;
      const [mm, mv] = layer.nonTrainableWeights.slice(0, 2).map((w) => w.read());
      close(mm, tf.mul(mean, 1 - decay), 'moving mean');
      close(mv, tf.add(tf.mul(variance, 1 - decay), decay), 'moving variance');
      const inference = layer.apply(x) as Tensor;
      const ref = tf.mul(
        tf.add(
          tf.mul(
            tf.mul(tf.sub(x, tf.reshape(mm, bshape)), tf.rsqrt(tf.add(tf.reshape(mv, bshape), 1e-3))),
            tf.reshape(gamma, bshape),
          ),
          tf.reshape(beta, bshape),
        ),
        m,
      );
      close(inference, ref, 'inference');
    });
  }

  it('keeps its mask through save -> load and refuses a mask of the wrong length', async () => {
    const model = tf.sequential({ layers: [maskedBatchNormalization({ inputShape: [2, 2, 3], name: 'bn' })] });
    (model.layers[0] as MaskedBatchNormalization).setMask([0, 1, 1]);
    let saved: Parameters<typeof tf.io.fromMemory>[0] | undefined;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        saved = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    expect(Array.from((loaded.getLayer('bn') as MaskedBatchNormalization).getMask())).toEqual([0, 1, 1]);
    expect(() => (model.layers[0] as MaskedBatchNormalization).setMask([1, 1])).toThrow(/mask.*length 3/);
  });
});
