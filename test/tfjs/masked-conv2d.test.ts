// MaskedConv2D, the tf.layers.Layer: forward and gradients against tf.conv2d on masked tensors
// (both data formats, hard and soft masks, masked and dense modes, batches smaller than, equal
// to and larger than the compiled one), then inside ordinary models: fit / predict with partial
// batches, save -> load round trips of weights and masks, and the error before compileLayers.
import { describe, expect, it, beforeAll } from 'vitest';
import type { Scalar, SymbolicTensor } from '@tensorflow/tfjs';
import { compileLayers } from '../../src/tfjs/compile-layers.js';
import { MaskedConv2D, maskedConv2d, type MaskedConv2DArgs } from '../../src/tfjs/masked-conv2d.js';
import { tf, type Tensor, type Tensor4D, type Variable } from '../../src/tfjs/tf.js';
import { relL2, rng } from '../util.js';
import { roundTrip } from './round-trip.js';
import { bufferStats } from '../../src/tfjs/buffers.js';

const close = (actual: Tensor, expected: Tensor, what: string, tol = 2e-5) => {
  const err = relL2(actual.dataSync() as Float32Array, expected.dataSync());
  expect(err, what).toBeLessThan(tol);
};
const toNhwc = (t: Tensor) => tf.transpose(t, [0, 2, 3, 1]);
const toNchw = (t: Tensor) => tf.transpose(t, [0, 3, 1, 2]);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('MaskedConv2D against tf.conv2d on masked tensors', () => {
  const H = 8,
    W = 7,
    C = 5;
  // A stride-1 3x3 'same' conv, and a stride-2 3x2 'same' conv whose padding is asymmetric.
  const shapes: Omit<MaskedConv2DArgs, 'dataFormat' | 'mode'>[] = [
    { filters: 6, kernelSize: 3, padding: 'same', useBias: true },
    { filters: 4, kernelSize: [3, 2], strides: 2, padding: 'same', useBias: false },
    { filters: 5, kernelSize: 2, padding: 'valid', useBias: true },
  ];
  for (const soft of [false, true]) {
    it(`${soft ? 'soft' : 'hard'} masks: both formats, masked and dense modes, batches 1, 2 (compiled) and 5`, async () => {
      const r = rng(soft ? 7 : 3);
      const cases = shapes.flatMap((shape, s) =>
        (['channelsLast', 'channelsFirst'] as const).flatMap((dataFormat) =>
          (['masked', 'dense'] as const).map((mode) => {
            const layer = maskedConv2d({ ...shape, dataFormat, mode });
            layer.build(dataFormat === 'channelsLast' ? [null, H, W, C] : [null, C, H, W]);
            return { s, dataFormat, mode, layer };
          }),
        ),
      );
      await compileLayers(
        cases.map((c) => c.layer),
        { batch: 2, gradOfPrunedFilters: soft, inputGradOfFirstLayers: true },
      );
      for (const { s, dataFormat, mode, layer } of cases) {
        const K = layer.filters,
          [R, S] = layer.kernelSize;
        const mOut = Array.from({ length: K }, (_, k) => (k % 3 === 1 ? 0 : 1));
        const mIn = Array.from({ length: C }, (_, c) => (c % 2 === 0 ? 1 : 0));
        const kernel = layer.kernelVariable.read() as Variable,
          bias = layer.biasVariable?.read() as Variable | undefined;
        kernel.assign(tf.tensor(r.uniformArray(R * S * C * K), [R, S, C, K]));
        bias?.assign(tf.tensor(r.uniformArray(K)));
        layer.setMasks({ out: mOut, in: mIn });
        const mo = tf.tensor1d(mOut),
          mi = tf.tensor1d(mIn);
        const last = dataFormat === 'channelsLast';
        const reference = (x: Tensor, weff: Tensor, beff?: Tensor) => {
          const xl = last ? x : toNhwc(x);
          let y: Tensor = tf.conv2d(tf.mul(xl, mi) as Tensor4D, weff as Tensor4D, layer.strides, 'same');
          if (layer.padding === 'valid')
            y = tf.conv2d(tf.mul(xl, mi) as Tensor4D, weff as Tensor4D, layer.strides, 'valid');
          if (beff) y = tf.add(y, beff);
          return last ? y : toNchw(y);
        };
        for (const B of [1, 2, 5]) {
          const what = `shape ${s}, ${dataFormat}, ${mode}, batch ${B}`;
          const x = tf.tensor(r.uniformArray(B * H * W * C), last ? [B, H, W, C] : [B, C, H, W]);
          const yShape = layer.computeOutputShape(x.shape) as number[];
          const probe = tf.tensor(r.uniformArray(yShape.reduce((a, b) => a * b)), yShape);
          const refLoss = soft
            ? (xt: Tensor, weff: Tensor, beff?: Tensor) => tf.sum(tf.mul(reference(xt, weff, beff), probe))
            : (xt: Tensor, w: Tensor, b?: Tensor) =>
                tf.sum(tf.mul(reference(xt, tf.mul(w, mo), b && tf.mul(b, mo)), probe));
          const weff = soft ? tf.mul(kernel, mo) : kernel;
          const beff = bias && (soft ? tf.mul(bias, mo) : bias);
          const refGrads = tf.grads(refLoss as (...t: Tensor[]) => Tensor)(beff ? [x, weff, beff] : [x, weff]);
          const y = layer.apply(x) as Tensor;
          expect(y.shape, what).toEqual(yShape);
          close(y, reference(x, tf.mul(kernel, mo), bias && tf.mul(bias, mo)), `${what}: forward`);
          const dx = tf.grads((xt: Tensor) => tf.sum(tf.mul(layer.apply(xt) as Tensor, probe)))([x])[0];
          close(dx, refGrads[0], `${what}: dx`);
          const { grads } = tf.variableGrads(
            () => tf.sum(tf.mul(layer.apply(x) as Tensor, probe)) as Scalar,
            bias ? [kernel, bias] : [kernel],
          );
          close(grads[kernel.name], refGrads[1], `${what}: dw`);
          if (bias) close(grads[bias.name], refGrads[2], `${what}: dbias`);
        }
      }
    });
  }

  it('refuses to run before compileLayers, naming the layer and the fix', () => {
    const model = tf.sequential({
      layers: [maskedConv2d({ filters: 2, kernelSize: 3, inputShape: [5, 5, 1], name: 'not_compiled' })],
    });
    expect(() => model.predict(tf.zeros([1, 5, 5, 1]))).toThrow(/not_compiled.*compileLayers/);
  });

  it('refuses bad config values, naming them', () => {
    expect(() => maskedConv2d({ filters: 0, kernelSize: 3 })).toThrow(/filters/);
    expect(() => maskedConv2d({ filters: 2, kernelSize: 3, padding: 'causal' as 'same' })).toThrow(/padding/);
    expect(() => maskedConv2d({ filters: 2, kernelSize: 3, dataFormat: 'NHWC' as 'channelsLast' })).toThrow(
      /dataFormat/,
    );
  });
});

describe('MaskedConv2D in tf.sequential and tf.model', () => {
  it('fit / evaluate / predict with partial batches (compiled 4; fit batch 6, predict 1 and 3), then save -> load keeps weights, masks and outputs', async () => {
    const r = rng(11);
    const model = tf.sequential({
      layers: [
        maskedConv2d({
          filters: 6,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          inputShape: [6, 6, 2],
          kernelInitializer: 'heNormal',
        }),
        maskedConv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2, activation: 'softmax' }),
      ],
    });
    const [conv1, conv2] = model.layers as MaskedConv2D[];
    await compileLayers(model, { batch: 4 });
    conv1.setMasks({ out: [1, 0, 1, 1, 0, 1] });
    conv2.setMasks({ in: [1, 0, 1, 1, 0, 1], out: [1, 1, 0, 1] });
    model.compile({ optimizer: tf.train.adam(0.02), loss: 'categoricalCrossentropy' });
    const labels = Array.from({ length: 18 }, (_, i) => i % 2);
    const x = tf.tensor4d(
      Float32Array.from(
        { length: 18 * 72 },
        (_, i) => r.next() * 0.3 + (i % 2 === labels[Math.floor(i / 72)] ? 0.7 : 0),
      ),
      [18, 6, 6, 2],
    );
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 2);
    const pruned = Float32Array.from(conv1.kernelVariable.read().dataSync());
    const h = await model.fit(x, y, { batchSize: 6, epochs: 8, shuffle: false, verbose: 0 });
    const losses = h.history.loss as number[];
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
    // Steady state: another epoch (with a partial batch) leaves no tensor behind.
    const one = x.slice(0, 1);
    const tensors = tf.memory().numTensors;
    await model.fit(x, y, { batchSize: 6, epochs: 1, verbose: 0 });
    model.predict(one);
    expect(tf.memory().numTensors).toBe(tensors + 1); // the prediction's output
    // Hard masks: the pruned filters' kernel columns (HWIO: last axis 1 and 4) never moved.
    const after = conv1.kernelVariable.read().dataSync();
    for (let i = 0; i < after.length; i++) if (i % 6 === 1 || i % 6 === 4) expect(after[i]).toBe(pruned[i]);
    expect(Array.from(after)).not.toEqual(Array.from(pruned));
    // A pruned filter's output channel is exactly zero.
    const features = tf.model({ inputs: model.inputs, outputs: conv1.output as SymbolicTensor });
    const f = (features.predict(x.slice(0, 3)) as Tensor).arraySync() as number[][][][];
    expect(f.flat(2).every((px) => px[1] === 0 && px[4] === 0)).toBe(true);

    const all = model.predict(x, { batchSize: 18 }) as Tensor;
    expect(Array.from(all.dataSync()).every(Number.isFinite)).toBe(true);
    close(model.predict(x.slice(5, 1)) as Tensor, all.slice(5, 1), 'predict, batch 1');
    close(model.predict(x.slice(0, 3)) as Tensor, all.slice(0, 3), 'predict, batch 3');
    const evaluated = model.evaluate(x, y, { batchSize: 7 }) as Scalar;
    expect(Number.isFinite(evaluated.dataSync()[0])).toBe(true);

    const loaded = await roundTrip(model);
    const [l1, l2] = loaded.layers as MaskedConv2D[];
    expect(l1).toBeInstanceOf(MaskedConv2D);
    expect(Array.from(l1.getMasks().out)).toEqual([1, 0, 1, 1, 0, 1]);
    expect(Array.from(l2.getMasks().in)).toEqual([1, 0, 1, 1, 0, 1]);
    expect(l1.getConfig()).toMatchObject({
      filters: 6,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: 'heNormal',
    });
    await compileLayers(loaded, { batch: 4 });
    close(loaded.predict(x, { batchSize: 18 }) as Tensor, all, 'loaded model');
  });

  it('a functional tf.model with channelsFirst layers and a residual add trains and round-trips', async () => {
    const r = rng(12);
    const input = tf.input({ shape: [3, 6, 6] });
    const a = maskedConv2d({
      filters: 4,
      kernelSize: 3,
      padding: 'same',
      dataFormat: 'channelsFirst',
      activation: 'relu',
    }).apply(input) as SymbolicTensor;
    const b = maskedConv2d({ filters: 4, kernelSize: 3, padding: 'same', dataFormat: 'channelsFirst' }).apply(
      a,
    ) as SymbolicTensor;
    const sum = tf.layers.add().apply([a, b]) as SymbolicTensor;
    const out = tf.layers.dense({ units: 3 }).apply(tf.layers.flatten().apply(sum)) as SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    await compileLayers(model, { batch: 4 });
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const x = tf.tensor(r.uniformArray(5 * 3 * 36), [5, 3, 6, 6]),
      y = tf.tensor(r.uniformArray(15), [5, 3]);
    const h = await model.fit(x, y, { batchSize: 5, epochs: 3, verbose: 0 });
    expect((h.history.loss as number[]).every(Number.isFinite)).toBe(true);
    const loaded = await roundTrip(model);
    await compileLayers(loaded, { batch: 4 });
    close(loaded.predict(x) as Tensor, model.predict(x) as Tensor, 'loaded functional model');
  });

  it("disposing a model lets go of the adapter's recycled arrays (they go back to the output pool)", async () => {
    const r = rng(13);
    const model = tf.sequential({
      layers: [
        maskedConv2d({ filters: 8, kernelSize: 3, padding: 'same', inputShape: [10, 10, 4] }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2 }),
      ],
    });
    await compileLayers(model, { batch: 4 });
    model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const x = tf.tensor(r.uniformArray(8 * 400), [8, 10, 10, 4]),
      y = tf.tensor(r.uniformArray(16), [8, 2]);
    await model.fit(x, y, { batchSize: 4, epochs: 2, verbose: 0 });
    tf.dispose([x, y]);
    expect(bufferStats().freeBytes).toBeGreaterThan(0); // released by TF.js, kept for the next step
    model.dispose();
    expect(bufferStats().freeBytes).toBe(0);
  });
});
