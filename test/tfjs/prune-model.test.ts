// prune / PruningCallback / stripPruning on ordinary TF.js models: mask groups traced from the
// graph (conv -> BN -> pool -> conv, flatten -> dense, a residual add sharing one filter mask, an
// add that cannot be pruned, MobileNet's depthwise convs, concatenations, U-Net's upsampling,
// separable and transposed convs, squeeze-and-excite), pruned channels exactly zero, fit with the
// callback on partial batches, and the stripped model (standard layers only) = the masked one,
// saved and reloaded; compact activations (kept channels only) train, predict and round-trip as
// full ones.
import { describe, expect, it, beforeAll } from 'vitest';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';
import { MaskedConv2D } from '../../src/tfjs/masked-conv2d.js';
import { MaskedBatchNormalization } from '../../src/tfjs/masked-batch-norm.js';
import { MaskaccDense } from '../../src/tfjs/dense.js';
import { tf, type Tensor } from '../../src/tfjs/tf.js';
import { maskGroups, prune } from '../../src/prune/prune-model.js';
import { PruningCallback } from '../../src/prune/callback.js';
import { stripPruning } from '../../src/prune/strip.js';
import { traceMaskGroups } from '../../src/prune/graph.js';
import { directory } from '../../src/tfjs/file-io.js';
import { compileLayers } from '../../src/tfjs/compile-layers.js';
import { relL2, rng, tempDir } from '../util.js';
import { roundTrip } from './round-trip.js';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const sum = (m: Uint8Array) => m.reduce((a, b) => a + b, 0);
const relErr = (a: Tensor, b: Tensor) => relL2(a.dataSync() as Float32Array, b.dataSync());

describe('prune -> fit with PruningCallback -> stripPruning on a tf.sequential CNN', () => {
  it('links conv -> BN -> pool -> conv and flatten -> dense; the stripped model matches and reloads without masked layers', async () => {
    const r = rng(5);
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', inputShape: [8, 8, 2], name: 'c1' }),
        tf.layers.batchNormalization({ name: 'bn1' }),
        tf.layers.activation({ activation: 'relu', name: 'relu1' }),
        tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
        tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2' }),
        tf.layers.flatten({ name: 'flat' }),
        tf.layers.dense({ units: 3, name: 'out' }),
      ],
    });
    const x = tf.tensor(r.uniformArray(10 * 8 * 8 * 2), [10, 8, 8, 2]);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 'int32'), 3);
    const pruned = await prune(model, { rate: 0.5, criterion: 'fpgm', schedule: 'sfp', batch: 4 });
    const groups = maskGroups(pruned);
    expect(groups.map((g) => [g.convs, g.consumers, g.norms, g.denses.map((d) => d.layer)])).toEqual([
      [['c1'], ['c2'], ['bn1'], []],
      [['c2'], [], [], ['out']],
    ]);
    expect(groups.every((g) => g.unprunable === undefined)).toBe(true);
    const c1 = pruned.getLayer('c1') as MaskedConv2D,
      c2 = pruned.getLayer('c2') as MaskedConv2D,
      bn1 = pruned.getLayer('bn1') as MaskedBatchNormalization;
    expect(c1).toBeInstanceOf(MaskedConv2D);
    expect(bn1).toBeInstanceOf(MaskedBatchNormalization);
    // The other layers run on the native ops: max pooling, ReLU and the dense head.
    expect(['pool1', 'relu1', 'out'].map((n) => pruned.getLayer(n).getClassName())).toEqual([
      'MaskaccMaxPooling2D',
      'MaskaccReLU',
      'MaskaccDense',
    ]);
    const m1 = c1.getMasks().out;
    expect(sum(m1)).toBe(4);
    expect(Array.from(c2.getMasks().in)).toEqual(Array.from(m1));
    expect(Array.from(bn1.getMask())).toEqual(Array.from(m1));
    expect(sum(c2.getMasks().out)).toBe(3);
    // Weights were copied: the dense layer as it was, and c1's kept filters (HWIO: last axis).
    const weights = (m: LayersModel, name: string) => Array.from(m.getLayer(name).getWeights()[0].dataSync());
    expect(weights(pruned, 'out')).toEqual(weights(model, 'out'));
    const [w0, w1] = [weights(model, 'c1'), weights(pruned, 'c1')];
    expect(w1.every((v, i) => v === (m1[i % 8] ? w0[i] : 0))).toBe(true); // (-0 === 0)

    pruned.compile({ optimizer: tf.train.sgd(0.05), loss: 'categoricalCrossentropy' });
    const lines: string[] = [];
    const callback = new PruningCallback((l) => lines.push(l));
    const h = await pruned.fit(x, y, { batchSize: 6, epochs: 3, callbacks: [callback], verbose: 0 });
    expect((h.history.loss as number[]).every(Number.isFinite)).toBe(true);
    expect(callback.steps.map((s) => s.epoch)).toEqual([1, 2]); // epoch 0 was selected by prune()
    expect(lines[0]).toMatch(/epoch 2: pruning rate 50.0%, kept filters: c1 4\/8, c2 3\/6/);

    // The activations are compact: the kept channels only, up to the dense layer's input features.
    const mask = c1.getMasks().out;
    const probe = tf.model({ inputs: pruned.inputs, outputs: pruned.getLayer('pool1').output as SymbolicTensor });
    expect((probe.predict(x) as Tensor).shape).toEqual([10, 4, 4, sum(mask)]);
    expect([c1.compactOutput, c2.compactInput, c2.compactOutput, bn1.compact]).toEqual([true, true, true, true]);
    expect((pruned.getLayer('out') as MaskaccDense).compactInput).toBe(true);

    const logits = pruned.predict(x) as Tensor;
    expect(Array.from(logits.dataSync()).every(Number.isFinite)).toBe(true);
    const stripped = await stripPruning(pruned);
    expect(stripped.layers.map((l) => l.getClassName())).toEqual([
      'Conv2D',
      'BatchNormalization',
      'Activation',
      'MaxPooling2D',
      'Conv2D',
      'Flatten',
      'Dense',
    ]);
    expect(stripped.countParams()).toBeLessThan(model.countParams() / 2);
    expect(relErr(stripped.predict(x) as Tensor, logits)).toBeLessThan(1e-5);
    const dir = tempDir('maskacc-stripped');
    await stripped.save(directory(dir));
    expect(existsSync(join(dir, 'model.json')) && existsSync(join(dir, 'weights.bin'))).toBe(true);
    const reloaded = await tf.loadLayersModel(directory(dir));
    rmSync(dir, { recursive: true, force: true });
    expect(reloaded.layers.some((l) => l.getClassName().startsWith('Mask'))).toBe(false);
    expect(relErr(reloaded.predict(x) as Tensor, logits)).toBeLessThan(1e-5);
    // The masked model round-trips too (masks are weights).
    const maskedAgain = await roundTrip(pruned);
    expect(Array.from((maskedAgain.getLayer('c1') as MaskedConv2D).getMasks().out)).toEqual(Array.from(mask));
  });
});

describe('compact activations', () => {
  it.each(['sfp', 'hard'] as const)('%s: train, predict and round-trip as full ones', async (schedule) => {
    const r = rng(9);
    const conv = (filters: number, name: string, first = false) =>
      tf.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        name,
        ...(first ? { inputShape: [9, 7, 3] } : {}),
      });
    const model = tf.sequential({
      layers: [
        conv(12, 'c1', true),
        tf.layers.batchNormalization({ name: 'bn1' }),
        tf.layers.activation({ activation: 'relu', name: 'relu1' }),
        tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
        conv(10, 'c2'),
        tf.layers.batchNormalization({ name: 'bn2' }),
        tf.layers.activation({ activation: 'relu', name: 'relu2' }),
        conv(6, 'c3'),
        tf.layers.flatten({ name: 'flat' }),
        tf.layers.dense({ units: 3, name: 'out' }),
      ],
    });
    const x = tf.tensor(r.uniformArray(7 * 9 * 7 * 3), [7, 9, 7, 3]);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0], 'int32'), 3);
    const opts = { rate: 0.5, criterion: 'l1', schedule, batch: 4 } as const;
    const [compact, full] = [await prune(model, opts), await prune(model, { ...opts, compactActivations: false })];
    const layer = <T>(m: LayersModel, n: string) => m.getLayer(n) as T;
    // c3 feeds the dense layer with no ReLU between: under soft masks its pruned filters train on
    // the gradient a compact activation would drop, so it stays full; hard masks drop it anyway.
    const soft = schedule === 'sfp';
    const c3Compact = !soft;
    expect(['c1', 'c2', 'c3'].map((n) => layer<MaskedConv2D>(compact, n).compactOutput)).toEqual([
      true,
      true,
      c3Compact,
    ]);
    expect(maskGroups(compact).find((g) => g.convs[0] === 'c3')!.prunedGradient).toMatch(/'out' reads the pruned/);
    // The dense layer reads c3's kept features only: those of the kept channels at every position.
    const c3 = layer<MaskedConv2D>(compact, 'c3').getMasks().out;
    const features = layer<MaskaccDense>(compact, 'out').getInputMask();
    if (c3Compact) expect(Array.from(features!)).toEqual(Array.from({ length: 4 * 3 * 6 }, (_, f) => c3[f % 6]));
    else expect(features).toBeUndefined();
    expect(['c1', 'c2', 'c3'].map((n) => layer<MaskedConv2D>(full, n).compactOutput)).toEqual([false, false, false]);
    // Two epochs each (SFP selects again at the second), odd batches, same data and order.
    for (const m of [compact, full]) {
      m.compile({ optimizer: tf.train.momentum(0.05, 0.9), loss: 'categoricalCrossentropy' });
      await m.fit(x, y, { batchSize: 3, epochs: 2, shuffle: false, callbacks: [new PruningCallback()], verbose: 0 });
    }
    const logits = compact.predict(x) as Tensor;
    expect(relErr(logits, full.predict(x) as Tensor)).toBeLessThan(1e-5);
    for (const name of ['c1', 'bn1', 'c2', 'bn2', 'c3', 'out']) {
      const [a, b] = [compact, full].map((m) => m.getLayer(name).getWeights());
      b.forEach((w, i) => expect(relErr(a[i], w), `${name} weight ${i}`).toBeLessThan(1e-5)); // (a: + input_mask)
    }
    // A probe through the pooling: the compact tensor is the full one's kept channels, and the full
    // one is exactly zero in the pruned channels.
    const probe = (m: LayersModel) =>
      tf.model({ inputs: m.inputs, outputs: m.getLayer('relu2').output as SymbolicTensor }).predict(x) as Tensor;
    const [pc, pf] = [probe(compact), probe(full)];
    const mask = layer<MaskedConv2D>(full, 'c2').getMasks().out;
    const kept = [...mask.keys()].filter((c) => mask[c]);
    expect(pc.shape).toEqual([7, 4, 3, kept.length]);
    expect(relErr(pc, tf.gather(pf, kept, 3))).toBeLessThan(1e-5);
    const pruned = [...mask.keys()].filter((c) => !mask[c]);
    expect(Array.from(tf.gather(pf, pruned, 3).dataSync()).every((v) => v === 0)).toBe(true);
    // Saved and loaded, the compact model predicts the same (the flags are in its config).
    const again = await roundTrip(compact);
    await compileLayers(again, { batch: 4, density: 0.5 });
    expect(layer<MaskedConv2D>(again, 'c1').compactOutput).toBe(true);
    expect(relErr(again.predict(x) as Tensor, logits)).toBeLessThan(1e-6);
    // Its input contract: a full-width tensor where the kept channels are expected is refused.
    const c2 = layer<MaskedConv2D>(compact, 'c2');
    expect(() => c2.apply(tf.zeros([7, 4, 3, sum(c2.getMasks().in) + 1]))).toThrow(/kept channels/);
  });
});

describe('depthwise convs (MobileNet blocks)', () => {
  it('a depthwise conv shrinks with the group it filters; the stripped model matches', async () => {
    const r = rng(12);
    const relu = (name: string) => tf.layers.activation({ activation: 'relu', name });
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          filters: 8,
          kernelSize: 3,
          padding: 'same',
          useBias: false,
          inputShape: [8, 8, 3],
          name: 'c1',
        }),
        tf.layers.batchNormalization({ name: 'bn1' }),
        relu('relu1'),
        tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', name: 'dw1' }), // (a bias, as by default)
        tf.layers.batchNormalization({ name: 'bn2' }),
        relu('relu2'),
        tf.layers.conv2d({ filters: 6, kernelSize: 1, useBias: false, name: 'pw1' }),
        tf.layers.batchNormalization({ name: 'bn3' }),
        relu('relu3'),
        tf.layers.globalAveragePooling2d({ name: 'gap' }),
        tf.layers.dense({ units: 3, name: 'out' }),
      ],
    });
    const x = tf.tensor(r.uniformArray(6 * 8 * 8 * 3), [6, 8, 8, 3]);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3);
    const pruned = await prune(model, { rate: 0.5, criterion: 'l1', batch: 3 });
    const groups = maskGroups(pruned);
    expect(groups.map((g) => [g.convs, g.consumers, g.norms, g.depthwise, g.denses.map((d) => d.layer)])).toEqual([
      [['c1'], ['pw1'], ['bn1', 'bn2'], ['dw1'], []],
      [['pw1'], [], ['bn3'], [], ['out']],
    ]);
    expect(groups.every((g) => g.unprunable === undefined)).toBe(true);
    expect(groups[0].fullChannels).toMatch(/'dw1' \(DepthwiseConv2D\) reads every channel/);
    const m1 = (pruned.getLayer('c1') as MaskedConv2D).getMasks().out;
    expect(sum(m1)).toBe(4);
    expect(Array.from((pruned.getLayer('pw1') as MaskedConv2D).getMasks().in)).toEqual(Array.from(m1));
    expect(Array.from((pruned.getLayer('bn2') as MaskedBatchNormalization).getMask())).toEqual(Array.from(m1));
    pruned.compile({ optimizer: tf.train.sgd(0.05), loss: 'categoricalCrossentropy' });
    await pruned.fit(x, y, { batchSize: 3, epochs: 2, callbacks: [new PruningCallback()], verbose: 0 });
    // The pruned channels are exactly zero after the depthwise conv and its batch norm.
    const probe = tf.model({ inputs: pruned.inputs, outputs: pruned.getLayer('relu2').output as SymbolicTensor });
    const h = (probe.predict(x) as Tensor).dataSync();
    expect(h.every((v, i) => m1[i % 8] || v === 0)).toBe(true);
    const stripped = await stripPruning(pruned);
    expect(stripped.getLayer('dw1').getClassName()).toBe('DepthwiseConv2D');
    expect(
      stripped
        .getLayer('dw1')
        .getWeights()
        .map((w) => w.shape),
    ).toEqual([[3, 3, 4, 1], [4]]);
    expect(relErr(stripped.predict(x) as Tensor, pruned.predict(x) as Tensor)).toBeLessThan(1e-5);
  });

  it('a bias reaches only layers that mask the pruned channels; a depth multiplier stops the group', () => {
    const block = (dw: Record<string, unknown>, head: 'conv' | 'dense') =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', inputShape: [6, 6, 2], name: 'c' }),
          tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw', ...dw }),
          ...(head === 'conv'
            ? [tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'pw' })]
            : [tf.layers.flatten({ name: 'flat' }), tf.layers.dense({ units: 2, name: 'out' })]),
        ],
      });
    const reason = (dw: Record<string, unknown>, head: 'conv' | 'dense') =>
      traceMaskGroups(block(dw, head)).find((g) => g.convs.includes('c'))!.unprunable;
    // The next conv's input mask drops the biased channels; a dense layer would read them.
    expect(reason({ useBias: true }, 'conv')).toBeUndefined();
    expect(reason({ useBias: false }, 'dense')).toBeUndefined();
    expect(reason({ useBias: true }, 'dense')).toMatch(
      /'dw' adds its bias to the pruned channels, and 'flat' reads them/,
    );
    expect(reason({ useBias: false, depthMultiplier: 2 }, 'conv')).toMatch(/'dw' has depthMultiplier 2/);
  });
});

describe('squeeze-and-excite (EfficientNet, MobileNet v3 blocks)', () => {
  it("x * reshape(dense(...)): the dense layer's units shrink with the channels they scale", async () => {
    const r = rng(17);
    const input = tf.input({ shape: [8, 8, 3] });
    const x = tf.layers
      .conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
      .apply(input) as SymbolicTensor;
    const squeeze = tf.layers.globalAveragePooling2d({ name: 'squeeze' }).apply(x);
    const fc1 = tf.layers.dense({ units: 2, activation: 'relu', name: 'fc1' }).apply(squeeze);
    const fc2 = tf.layers.dense({ units: 8, activation: 'sigmoid', name: 'fc2' }).apply(fc1);
    const scale = tf.layers.reshape({ targetShape: [1, 1, 8], name: 'scale' }).apply(fc2) as SymbolicTensor;
    const excited = tf.layers.multiply({ name: 'excite' }).apply([x, scale]) as SymbolicTensor;
    const c2 = tf.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'c2' }).apply(excited);
    const pooled = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(c2);
    const model = tf.model({
      inputs: input,
      outputs: tf.layers.dense({ units: 3, name: 'out' }).apply(pooled) as SymbolicTensor,
    });
    const pruned = await prune(model, { rate: 0.5, batch: 3 });
    const g = maskGroups(pruned).find((m) => m.convs.includes('c1'))!;
    expect([g.unprunable, g.consumers, g.denses.map((d) => d.layer), g.scales]).toEqual([
      undefined,
      ['c2'],
      ['fc1'],
      [{ dense: 'fc2', reshape: 'scale', axis: 3 }],
    ]);
    const data = tf.tensor(r.uniformArray(4 * 8 * 8 * 3), [4, 8, 8, 3]);
    pruned.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
    await pruned.fit(data, tf.tensor(r.uniformArray(4 * 3), [4, 3]), { batchSize: 2, epochs: 1, verbose: 0 });
    const stripped = await stripPruning(pruned);
    const shapes = (name: string) =>
      stripped
        .getLayer(name)
        .getWeights()
        .map((w) => w.shape);
    expect([shapes('fc1'), shapes('fc2')]).toEqual([
      [[4, 2], [2]],
      [[2, 4], [4]],
    ]);
    expect(relErr(stripped.predict(data) as Tensor, pruned.predict(data) as Tensor)).toBeLessThan(1e-5);
  });
});

describe('separable and transposed convs', () => {
  it('read a group whole: stripping drops their weights for the pruned channels', async () => {
    const r = rng(15);
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          filters: 6,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          inputShape: [6, 6, 2],
          name: 'c1',
        }),
        tf.layers.separableConv2d({ filters: 4, kernelSize: 3, depthMultiplier: 2, padding: 'same', name: 'sep' }),
        tf.layers.conv2d({ filters: 6, kernelSize: 1, activation: 'relu', name: 'c2' }),
        tf.layers.conv2dTranspose({ filters: 2, kernelSize: 2, strides: 2, name: 'up' }),
      ],
    });
    const pruned = await prune(model, { rate: 0.5, batch: 2 });
    const groups = maskGroups(pruned);
    expect(groups.map((g) => [g.convs, g.readers, g.unprunable])).toEqual([
      [['c1'], ['sep'], undefined],
      [['c2'], ['up'], undefined],
    ]);
    const x = tf.tensor(r.uniformArray(3 * 6 * 6 * 2), [3, 6, 6, 2]);
    const stripped = await stripPruning(pruned);
    expect(
      stripped
        .getLayer('sep')
        .getWeights()
        .map((w) => w.shape),
    ).toEqual([[3, 3, 3, 2], [1, 1, 6, 4], [4]]);
    expect(stripped.getLayer('up').getWeights()[0].shape).toEqual([2, 2, 2, 3]);
    expect(relErr(stripped.predict(x) as Tensor, pruned.predict(x) as Tensor)).toBeLessThan(1e-5);
  });
});

describe('concatenations (Inception, DenseNet, SqueezeNet blocks)', () => {
  it("a layer reading a concatenation takes its groups' masks side by side; the stripped model matches", async () => {
    const r = rng(13);
    const input = tf.input({ shape: [8, 8, 3] });
    const conv = (name: string, filters: number, kernelSize: number) =>
      tf.layers.conv2d({ filters, kernelSize, padding: 'same', activation: 'relu', name });
    const a = conv('a', 4, 1).apply(input) as SymbolicTensor;
    const b = conv('b', 6, 3).apply(a) as SymbolicTensor;
    const cat = tf.layers.concatenate({ name: 'cat' }).apply([input, a, b]) as SymbolicTensor;
    const h = tf.layers
      .activation({ activation: 'relu', name: 'act' })
      .apply(tf.layers.batchNormalization({ name: 'bn' }).apply(cat)) as SymbolicTensor;
    const c = conv('c', 5, 3).apply(h) as SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(c);
    const model = tf.model({
      inputs: input,
      outputs: tf.layers.dense({ units: 3, name: 'out' }).apply(gap) as SymbolicTensor,
    });
    const x = tf.tensor(r.uniformArray(6 * 8 * 8 * 3), [6, 8, 8, 3]);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3);
    const pruned = await prune(model, { rate: 0.5, criterion: 'l2', schedule: 'sfp', batch: 3 });
    const groups = maskGroups(pruned);
    const of = (name: string) => groups.find((g) => g.convs.includes(name))!;
    expect(of('a').slices).toEqual([
      { layer: 'bn', offset: 3, total: 13 },
      { layer: 'c', offset: 3, total: 13 },
    ]);
    expect(of('b').slices.map((s) => s.offset)).toEqual([7, 7]);
    expect(of('a').consumers).toEqual(['b']);
    expect(of('a').fullChannels).toMatch(/'bn' reads it in a concatenation/);
    expect(groups.every((g) => g.unprunable === undefined)).toBe(true);
    const linked = () => {
      const [ma, mb] = ['a', 'b'].map((n) => Array.from((pruned.getLayer(n) as MaskedConv2D).getMasks().out));
      const expected = [1, 1, 1, ...ma, ...mb];
      expect(Array.from((pruned.getLayer('c') as MaskedConv2D).getMasks().in)).toEqual(expected);
      expect(Array.from((pruned.getLayer('bn') as MaskedBatchNormalization).getMask())).toEqual(expected);
      return [ma, mb].map((m) => m.reduce((s, v) => s + v, 0));
    };
    expect(linked()).toEqual([2, 3]);
    pruned.compile({ optimizer: tf.train.sgd(0.05), loss: 'categoricalCrossentropy' });
    const callback = new PruningCallback();
    await pruned.fit(x, y, { batchSize: 3, epochs: 2, callbacks: [callback], verbose: 0 });
    expect(callback.steps).toHaveLength(1); // sfp selected again at epoch 1: the links followed
    expect(linked()).toEqual([2, 3]);
    const stripped = await stripPruning(pruned);
    const keptC = sum((pruned.getLayer('c') as MaskedConv2D).getMasks().out);
    expect(stripped.getLayer('c').getWeights()[0].shape).toEqual([3, 3, 8, keptC]);
    expect(stripped.getLayer('bn').getWeights()[0].shape).toEqual([8]);
    expect(relErr(stripped.predict(x) as Tensor, pruned.predict(x) as Tensor)).toBeLessThan(1e-5);
  });

  it('DenseNet style: concatenations grow, and the last one is flattened into the dense layer', async () => {
    const r = rng(16);
    const input = tf.input({ shape: [6, 6, 3] });
    const conv = (name: string) =>
      tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name });
    const a = conv('a').apply(input) as SymbolicTensor;
    const cat1 = tf.layers.concatenate({ name: 'cat1' }).apply([input, a]) as SymbolicTensor;
    const b = conv('b').apply(cat1) as SymbolicTensor;
    const cat2 = tf.layers.concatenate({ name: 'cat2' }).apply([cat1, b]) as SymbolicTensor;
    const h = tf.layers
      .activation({ activation: 'relu', name: 'act' })
      .apply(tf.layers.batchNormalization({ name: 'bn' }).apply(cat2));
    const flat = tf.layers
      .flatten({ name: 'flat' })
      .apply(tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(h));
    const model = tf.model({
      inputs: input,
      outputs: tf.layers.dense({ units: 3, name: 'out' }).apply(flat) as SymbolicTensor,
    });
    const pruned = await prune(model, { rate: 0.5, batch: 3 });
    const groups = maskGroups(pruned);
    expect(groups.every((g) => g.unprunable === undefined)).toBe(true);
    const of = (name: string) => groups.find((g) => g.convs.includes(name))!;
    expect(of('a').slices.map((s) => [s.layer, s.offset, s.total])).toEqual([
      ['b', 3, 7],
      ['bn', 3, 11],
      ['out', 3, 11],
    ]);
    expect(of('b').slices.find((s) => s.layer === 'out')).toEqual({
      layer: 'out',
      offset: 7,
      total: 11,
      features: { plane: 9, channelMajor: false },
    });
    const x = tf.tensor(r.uniformArray(4 * 6 * 6 * 3), [4, 6, 6, 3]);
    pruned.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
    await pruned.fit(x, tf.tensor(r.uniformArray(4 * 3), [4, 3]), { batchSize: 2, epochs: 1, verbose: 0 });
    const stripped = await stripPruning(pruned);
    expect(stripped.getLayer('out').getWeights()[0].shape).toEqual([9 * (3 + 2 + 2), 3]);
    expect(relErr(stripped.predict(x) as Tensor, pruned.predict(x) as Tensor)).toBeLessThan(1e-5);
  });

  it('U-Net style: upsampling and cropping pass a group on to the concatenation after them', async () => {
    const r = rng(14);
    const input = tf.input({ shape: [8, 8, 2] });
    const conv = (name: string, filters: number) =>
      tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu', name });
    const skip = conv('skip', 4).apply(input) as SymbolicTensor;
    const down = conv('down', 6).apply(tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(skip));
    const up = tf.layers.upSampling2d({ size: [2, 2], name: 'up' }).apply(down) as SymbolicTensor;
    const crop = tf.layers.cropping2D({ cropping: [1, 1], name: 'crop' }).apply(skip) as SymbolicTensor;
    const pad = tf.layers.zeroPadding2d({ padding: 1, name: 'pad' }).apply(crop) as SymbolicTensor;
    const cat = tf.layers.concatenate({ name: 'cat' }).apply([pad, up]) as SymbolicTensor;
    const model = tf.model({
      inputs: input,
      outputs: tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'head' }).apply(cat) as SymbolicTensor,
    });
    const pruned = await prune(model, { rate: 0.5, skip: ['head'], batch: 2 });
    const groups = maskGroups(pruned);
    expect(
      groups.filter((g) => g.unprunable === undefined).map((g) => [g.convs, g.slices.map((s) => [s.layer, s.offset])]),
    ).toEqual([
      [['skip'], [['head', 0]]],
      [['down'], [['head', 4]]],
    ]);
    const x = tf.tensor(r.uniformArray(3 * 8 * 8 * 2), [3, 8, 8, 2]);
    const stripped = await stripPruning(pruned);
    expect(stripped.getLayer('head').getWeights()[0].shape).toEqual([1, 1, 5, 2]);
    expect(relErr(stripped.predict(x) as Tensor, pruned.predict(x) as Tensor)).toBeLessThan(1e-5);
  });

  it('a concatenation along another axis, or one added to, leaves its groups unpruned and says why', () => {
    const input = tf.input({ shape: [6, 6, 2] });
    const a = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'a' }).apply(input);
    const b = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'b' }).apply(input);
    const rows = tf.layers.concatenate({ axis: 1, name: 'rows' }).apply([a, b] as SymbolicTensor[]);
    const byRows = tf.model({
      inputs: input,
      outputs: tf.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(rows) as SymbolicTensor,
    });
    expect(traceMaskGroups(byRows).find((g) => g.convs.includes('a'))!.unprunable).toMatch(
      /'rows' concatenates along another axis than the channels/,
    );
    const cat = tf.layers.concatenate({ name: 'cat' }).apply([a, b] as SymbolicTensor[]) as SymbolicTensor;
    const wide = tf.layers.conv2d({ filters: 8, kernelSize: 1, name: 'wide' }).apply(input) as SymbolicTensor;
    const sum = tf.layers.add({ name: 'sum' }).apply([cat, wide]) as SymbolicTensor;
    const added = tf.model({
      inputs: input,
      outputs: tf.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(sum) as SymbolicTensor,
    });
    expect(traceMaskGroups(added).find((g) => g.convs.includes('b'))!.unprunable).toMatch(/'sum' adds a concatenation/);
  });
});

describe('compact activations through a residual add', () => {
  it.each([true, false])('relu after the add: %s (soft masks keep the group full without it)', async (relu) => {
    const r = rng(10);
    const input = tf.input({ shape: [6, 5, 3] });
    const conv = (name: string, activation?: 'relu') =>
      tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation, name });
    const a = conv('a', 'relu').apply(input) as SymbolicTensor;
    const b = conv('b').apply(conv('m', 'relu').apply(a)) as SymbolicTensor;
    let s = tf.layers.add({ name: 'add' }).apply([a, b]) as SymbolicTensor;
    if (relu) s = tf.layers.activation({ activation: 'relu', name: 'act' }).apply(s) as SymbolicTensor;
    const pooled = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(s);
    const out = tf.layers.dense({ units: 3, name: 'out' }).apply(tf.layers.flatten().apply(pooled));
    const model = tf.model({ inputs: input, outputs: out as SymbolicTensor });
    const x = tf.tensor(r.uniformArray(5 * 6 * 5 * 3), [5, 6, 5, 3]);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1], 'int32'), 3);
    const opts = { rate: 0.5, criterion: 'l2', schedule: 'sfp', batch: 4 } as const;
    const [compact, full] = [await prune(model, opts), await prune(model, { ...opts, compactActivations: false })];
    const shared = maskGroups(compact).find((g) => g.convs.includes('a'))!;
    // Without the ReLU, b's pruned filters get the dense layer's gradient through the add.
    expect(shared.prunedGradient === undefined).toBe(relu);
    expect((compact.getLayer('a') as MaskedConv2D).compactOutput).toBe(relu);
    expect((compact.getLayer('m') as MaskedConv2D).compactOutput).toBe(true);
    for (const m of [compact, full]) {
      m.compile({ optimizer: tf.train.sgd(0.05), loss: 'categoricalCrossentropy' });
      await m.fit(x, y, { batchSize: 3, epochs: 2, shuffle: false, callbacks: [new PruningCallback()], verbose: 0 });
    }
    expect(relErr(compact.predict(x) as Tensor, full.predict(x) as Tensor)).toBeLessThan(1e-5);
    for (const name of ['a', 'm', 'b', 'out']) {
      const [p, q] = [compact, full].map((m) => m.getLayer(name).getWeights());
      q.forEach((w, i) => expect(relErr(p[i], w), `${name} weight ${i}`).toBeLessThan(1e-5));
    }
  });
});

describe('mask groups of residual models', () => {
  it('the inputs of an add share one filter mask; the stripped channelsFirst model matches', async () => {
    const r = rng(6);
    const input = tf.input({ shape: [3, 6, 6] });
    const cf = { padding: 'same', dataFormat: 'channelsFirst' } as const;
    const a = tf.layers.conv2d({ ...cf, filters: 6, kernelSize: 3, activation: 'relu', name: 'a' }).apply(input);
    const b = tf.layers.conv2d({ ...cf, filters: 6, kernelSize: 3, name: 'b' }).apply(a);
    const s = tf.layers.add({ name: 'add' }).apply([a, b] as SymbolicTensor[]);
    const z = tf.layers.conv2d({ ...cf, filters: 4, kernelSize: 1, activation: 'relu', name: 'z' }).apply(s);
    const pooled = tf.layers.globalAveragePooling2d({ dataFormat: 'channelsFirst', name: 'gap' }).apply(z);
    const out = tf.layers.dense({ units: 2, name: 'out' }).apply(pooled) as SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    const pruned = await prune(model, { rate: 0.5, criterion: 'l2', batch: 4 });
    const groups = maskGroups(pruned);
    const shared = groups.find((g) => g.convs.includes('a'))!;
    expect(shared.convs.sort()).toEqual(['a', 'b']);
    expect(shared.consumers.sort()).toEqual(['b', 'z']);
    const [ma, mb] = ['a', 'b'].map((n) => (pruned.getLayer(n) as MaskedConv2D).getMasks());
    expect(sum(ma.out)).toBe(3);
    expect(Array.from(mb.out)).toEqual(Array.from(ma.out));
    expect(Array.from(mb.in)).toEqual(Array.from(ma.out));
    const x = tf.tensor(r.uniformArray(5 * 3 * 36), [5, 3, 6, 6]);
    const stripped = await stripPruning(pruned);
    expect((stripped.getLayer('a').getConfig() as { filters: number }).filters).toBe(3);
    expect((stripped.getLayer('z').getConfig() as { filters: number }).filters).toBe(2);
    expect(relErr(stripped.predict(x) as Tensor, pruned.predict(x) as Tensor)).toBeLessThan(1e-5);
  });

  it('an add with an unpruned input leaves its convs unpruned and says why; skip keeps a conv whole', async () => {
    const input = tf.input({ shape: [6, 6, 4] });
    const a = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'a' }).apply(input);
    const s = tf.layers.add({ name: 'shortcut' }).apply([input, a] as SymbolicTensor[]);
    const b = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'b' }).apply(s);
    const c = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c' }).apply(b) as SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: c });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    const pruned = await prune(model, { rate: 0.5, skip: ['c'], batch: 2 });
    await new Promise((resolve) => setImmediate(resolve)); // (warnings are emitted on the next tick)
    process.off('warning', onWarning);
    // The topology's reason is said once; the skip list is the caller's own choice.
    expect(warnings.map((w) => w.message)).toEqual([
      "1 of 3 mask groups stay unpruned: a: 'shortcut' adds unpruned channels",
    ]);
    const groups = maskGroups(pruned);
    expect(groups.find((g) => g.convs.includes('a'))!.unprunable).toMatch(/'shortcut' adds unpruned channels/);
    expect(groups.find((g) => g.convs.includes('c'))!.unprunable).toMatch(/'c' is in the skip list/);
    expect(sum((pruned.getLayer('a') as MaskedConv2D).getMasks().out)).toBe(4);
    expect(sum((pruned.getLayer('b') as MaskedConv2D).getMasks().out)).toBe(2);
    expect(sum((pruned.getLayer('c') as MaskedConv2D).getMasks().out)).toBe(4);
    await expect(prune(model, { rate: 0.5, skip: ['nope'] })).rejects.toThrow(/skip.*nope/);
    const noConv = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
    await expect(prune(noConv, { rate: 0.5 })).rejects.toThrow(/model.*Conv2D/);
    // A model used as a layer is refused, naming it, rather than left dense without a word.
    const base = tf.sequential({
      name: 'base',
      layers: [tf.layers.conv2d({ filters: 4, kernelSize: 3, inputShape: [6, 6, 4] })],
    });
    const outer = tf.sequential({ layers: [base, tf.layers.conv2d({ filters: 2, kernelSize: 1 })] });
    await expect(prune(outer, { rate: 0.5 })).rejects.toThrow(/layer 'base'.*no nested model/);
  });
});
