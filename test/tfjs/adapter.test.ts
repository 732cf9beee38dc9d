// The TF.js adapter against TF.js's own ops: masked conv (forward, input and weight gradients,
// hard and soft masks, dense mode), batch norm + ReLU with a channel mask, and max pooling.
import { describe, expect, it, beforeAll } from 'vitest';
import { compileMaskedConv, supportedIsas, type ConvSpec } from '../../src/index.js';
import { compileTrainOps, type TrainOpsAddon } from '../../src/codegen/compile-train-ops.js';
import { defaultCacheDir } from '../../src/codegen/cache.js';
import { BatchNormRelu, MaskedConv2d, dense, maxPool2d } from '../../src/tfjs/layers.js';
import { tf, type Scalar, type Tensor, type Tensor4D } from '../../src/tfjs/tf.js';
import { NativeMomentumOptimizer } from '../../src/tfjs/optimizer.js';
import { relL2, rng } from '../util.js';

const toNhwc = (t: Tensor) => tf.transpose(t, [0, 2, 3, 1]);
const toNchw = (t: Tensor) => tf.transpose(t, [0, 3, 1, 2]);
const close = (actual: Tensor, expected: Tensor, what: string) => {
  const err = relL2(actual.dataSync() as Float32Array, expected.dataSync());
  expect(err, what).toBeLessThan(2e-5);
};

let ops: TrainOpsAddon;
beforeAll(async () => {
  await tf.setBackend('cpu');
  ops = await compileTrainOps({ cacheDir: defaultCacheDir() });
});

describe('MaskedConv2d', () => {
  const specs: ConvSpec[] = [
    { batch: 2, inChannels: 5, outChannels: 7, inHeight: 9, inWidth: 8, kernel: [3, 3], padding: [1, 1], bias: true },
    {
      batch: 3,
      inChannels: 6,
      outChannels: 4,
      inHeight: 11,
      inWidth: 10,
      kernel: [3, 2],
      stride: [2, 1],
      padding: [1, 0],
    },
    // (TF.js has no conv2d gradient for dilation > 1; the kernels' own tests cover dilation.)
    { batch: 1, inChannels: 4, outChannels: 9, inHeight: 10, inWidth: 7, kernel: [5, 3], padding: [2, 1], bias: true },
  ];
  for (const [i, spec] of specs.entries()) {
    for (const soft of [false, true]) {
      it(`spec ${i}, ${soft ? 'soft' : 'hard'} masks: forward and gradients match tf.conv2d on masked tensors (masked and dense modes)`, async () => {
        const r = rng(100 + i);
        const conv = await compileMaskedConv(spec, { gradOfPrunedFilters: soft, respecialize: false });
        const dense = await compileMaskedConv(spec, { gradOfPrunedFilters: soft, respecialize: false });
        const layer = new MaskedConv2d(conv, soft),
          baseline = new MaskedConv2d(dense, soft, { mode: 'dense' });
        const l = conv.spec;
        const mOut = Array.from({ length: l.outChannels }, (_, k) => (k % 3 === 1 ? 0 : 1));
        const mIn = Array.from({ length: l.inChannels }, (_, c) => (c % 2 === 0 ? 1 : 0));
        for (const lay of [layer, baseline]) {
          lay.kernel.assign(tf.tensor(r.uniformArray(lay.kernel.size), lay.kernel.shape));
          lay.bias?.assign(tf.tensor(r.uniformArray(l.outChannels)));
          lay.setMasks({ out: mOut, in: mIn });
        }
        baseline.kernel.assign(layer.kernel);
        if (layer.bias) baseline.bias!.assign(layer.bias);
        const x = tf.tensor4d(r.uniformArray(l.batch * l.inChannels * l.inHeight * l.inWidth), [
          l.batch,
          l.inChannels,
          l.inHeight,
          l.inWidth,
        ]);
        const probe = tf.tensor4d(r.uniformArray(l.batch * l.outChannels * l.outHeight * l.outWidth), [
          l.batch,
          l.outChannels,
          l.outHeight,
          l.outWidth,
        ]);

        // Reference: TF.js conv2d (NHWC / HWIO) on x * m_in and the effective weights w * m_out.
        const mo = tf.tensor(mOut, [l.outChannels]),
          mi = tf.tensor(mIn, [1, l.inChannels, 1, 1]);
        const reference = (xt: Tensor, weff: Tensor, beff?: Tensor) => {
          const y = toNchw(
            tf.conv2d(
              toNhwc(tf.mul(xt, mi)) as Tensor4D,
              tf.transpose(weff, [2, 3, 1, 0]) as Tensor4D,
              l.stride as [number, number],
              [
                [0, 0],
                [l.padding[0], l.padding[0]],
                [l.padding[1], l.padding[1]],
                [0, 0],
              ],
              'NHWC',
              l.dilation as [number, number],
            ),
          );
          return beff ? tf.add(y, tf.reshape(beff, [1, l.outChannels, 1, 1])) : y;
        };
        const wMask = tf.reshape(mo, [l.outChannels, 1, 1, 1]);
        const refLoss = soft
          ? // soft: the gradient w.r.t. the effective weights, applied to every filter
            (xt: Tensor, weff: Tensor, beff?: Tensor) => tf.sum(tf.mul(reference(xt, weff, beff), probe))
          : (xt: Tensor, w: Tensor, b?: Tensor) =>
              tf.sum(tf.mul(reference(xt, tf.mul(w, wMask), b && tf.mul(b, mo)), probe));
        const weff = soft ? tf.mul(layer.kernel, wMask) : layer.kernel;
        const beff = layer.bias && (soft ? tf.mul(layer.bias, mo) : layer.bias);
        const refArgs = beff ? [x, weff, beff] : [x, weff];
        const refGrads = tf.grads(refLoss as (...t: Tensor[]) => Tensor)(refArgs);
        const yRef = reference(x, tf.mul(layer.kernel, wMask), layer.bias && tf.mul(layer.bias, mo));

        for (const [name, lay] of [
          ['masked', layer],
          ['dense', baseline],
        ] as const) {
          close(lay.apply(x), yRef, `${name} forward`);
          const dx = tf.grads((xt: Tensor) => tf.sum(tf.mul(lay.apply(xt as Tensor4D), probe)))([x])[0];
          close(dx, refGrads[0], `${name} dx`);
          const { grads: vg } = tf.variableGrads(
            () => tf.sum(tf.mul(lay.apply(x), probe)) as Scalar,
            lay.bias ? [lay.kernel, lay.bias] : [lay.kernel],
          );
          close(vg[lay.kernel.name], refGrads[1], `${name} dw`);
          if (lay.bias) close(vg[lay.bias.name], refGrads[2], `${name} dbias`);
        }
        layer.dispose();
        baseline.dispose();
      });
    }
  }

  it('refuses an input of the wrong shape and a mask of the wrong length, naming the argument', async () => {
    const conv = await compileMaskedConv(specs[0], { respecialize: false });
    const layer = new MaskedConv2d(conv, false);
    expect(() => layer.apply(tf.zeros([2, 5, 9, 9]) as Tensor4D)).toThrow(/x.*shape \[2,5,9,8\]/);
    expect(() => layer.setMasks({ out: [1, 0] })).toThrow(/masks\.out.*length 7/);
    layer.dispose();
  });
});

describe('MaskedConv2d inside an ordinary TF.js model', () => {
  it('trains with TF.js ops around it (relu, global average pooling, matMul, softmax cross-entropy) and tf.train.adam', async () => {
    const r = rng(31);
    const conv = await compileMaskedConv(
      { batch: 8, inChannels: 2, outChannels: 6, inHeight: 6, inWidth: 6, kernel: 3, padding: 1, bias: true },
      { respecialize: false },
    );
    const layer = new MaskedConv2d(conv, false, { seed: 7 }); // seeded: an unseeded run once missed the bound
    layer.setMasks({ out: [1, 1, 0, 1, 1, 0] });
    const head = tf.variable(tf.randomNormal([6, 2], 0, 0.5, 'float32', 11)),
      opt = tf.train.adam(0.05);
    // Toy task: which of the two input channels is brighter.
    const labels = Array.from({ length: 8 }, (_, i) => i % 2);
    const x = tf.tensor4d(
      Float32Array.from({ length: 8 * 2 * 36 }, (_, i) => {
        const n = Math.floor(i / 72),
          c = Math.floor(i / 36) % 2;
        return r.next() * 0.3 + (c === labels[n] ? 0.7 : 0);
      }),
      [8, 2, 6, 6],
    );
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 2);
    const loss = () =>
      tf.losses.softmaxCrossEntropy(y, tf.matMul(tf.mean(tf.relu(layer.apply(x)), [2, 3]), head)) as Scalar;
    const row = 2 * 9,
      initial = Float32Array.from(layer.kernel.dataSync());
    const first = loss().dataSync()[0];
    for (let step = 0; step < 40; step++) opt.minimize(loss, false, [layer.kernel, layer.bias!, head]);
    expect(loss().dataSync()[0]).toBeLessThan(0.5 * first);
    // Hard masks: pruned filters (2 and 5) get zero gradients, so Adam leaves them as they were; kept ones learned.
    const w = layer.kernel.dataSync();
    for (const k of [2, 5])
      expect(Array.from(w.subarray(k * row, (k + 1) * row))).toEqual(
        Array.from(initial.subarray(k * row, (k + 1) * row)),
      );
    expect(Array.from(w.subarray(0, row))).not.toEqual(Array.from(initial.subarray(0, row)));
    layer.dispose();
  });
});

describe('a chain of adapter layers (outputs recycled between steps)', () => {
  it('conv -> bn+relu -> pool -> conv: input and weight gradients match the TF.js chain, over repeated steps; earlier outputs stay intact', async () => {
    const r = rng(21);
    const [c1, c2] = await Promise.all([
      compileMaskedConv(
        { batch: 2, inChannels: 3, outChannels: 6, inHeight: 8, inWidth: 8, kernel: 3, padding: 1 },
        { respecialize: false },
      ),
      compileMaskedConv(
        { batch: 2, inChannels: 6, outChannels: 4, inHeight: 4, inWidth: 4, kernel: 3, padding: 1 },
        { respecialize: false },
      ),
    ]);
    const l1 = new MaskedConv2d(c1, false),
      l2 = new MaskedConv2d(c2, false),
      bn = new BatchNormRelu(ops, 6);
    const keep = [1, 1, 0, 1, 0, 1];
    l1.setMasks({ out: keep });
    bn.setMask(keep);
    l2.setMasks({ in: keep });
    const chain = (x: Tensor4D) => l2.apply(maxPool2d(ops, bn.apply(l1.apply(x), true)));
    const k4 = tf.tensor(keep, [1, 6, 1, 1]);
    const refChain = (x: Tensor, w1: Tensor, w2: Tensor) => {
      const conv = (a: Tensor, w: Tensor) =>
        toNchw(tf.conv2d(toNhwc(a) as Tensor4D, tf.transpose(w, [2, 3, 1, 0]) as Tensor4D, 1, 'same'));
      const y1 = tf.mul(conv(x, tf.mul(w1, tf.reshape(k4, [6, 1, 1, 1]))), k4);
      const m = tf.moments(y1, [0, 2, 3], true);
      const h = tf.mul(tf.relu(tf.div(tf.sub(y1, m.mean), tf.sqrt(tf.add(m.variance, 1e-5)))), k4);
      return conv(toNchw(tf.maxPool(toNhwc(h) as Tensor4D, 2, 2, 'valid')), tf.mul(w2, k4));
    };
    const first = chain(tf.tensor4d(r.uniformArray(2 * 3 * 64), [2, 3, 8, 8]));
    const firstValues = Float32Array.from(first.dataSync());
    for (let step = 0; step < 3; step++) {
      const x = tf.tensor4d(r.uniformArray(2 * 3 * 64), [2, 3, 8, 8]);
      const probe = tf.tensor4d(r.uniformArray(2 * 4 * 16), [2, 4, 4, 4]);
      const { grads } = tf.variableGrads(() => tf.sum(tf.mul(chain(x), probe)) as Scalar, [l1.kernel, l2.kernel]);
      const ref = tf.grads((xt: Tensor, w1: Tensor, w2: Tensor) => tf.sum(tf.mul(refChain(xt, w1, w2), probe)))([
        x,
        l1.kernel,
        l2.kernel,
      ]);
      close(grads[l1.kernel.name], ref[1], `step ${step} dw1`);
      close(grads[l2.kernel.name], ref[2], `step ${step} dw2`);
      close(tf.grads((xt: Tensor) => tf.sum(tf.mul(chain(xt as Tensor4D), probe)))([x])[0], ref[0], `step ${step} dx`);
      tf.dispose([x, probe, ...Object.values(grads), ...ref]);
    }
    expect(Array.from(first.dataSync())).toEqual(Array.from(firstValues)); // a live tensor's array is never recycled
    [l1, l2, bn].forEach((l) => l.dispose());
  });
});

// The training ops are built per ISA like the kernels: test every build this machine runs.
describe.each(supportedIsas())('training ops [%s]: batch norm, pooling, dense, momentum', (isa) => {
  let ops: TrainOpsAddon; // this ISA's build (shadows the default one above)
  beforeAll(async () => {
    ops = await compileTrainOps({ cacheDir: defaultCacheDir(), isa });
  });

  it('batch norm + ReLU (training) matches tf.moments/batchNorm/relu, pruned channels are exactly 0 with no gradient', () => {
    const r = rng(7);
    const [N, C, H, W] = [3, 5, 4, 6];
    const bn = new BatchNormRelu(ops, C);
    bn.gamma.assign(tf.tensor(r.uniformArray(C)));
    bn.beta.assign(tf.tensor(r.uniformArray(C)));
    const keep = [1, 0, 1, 1, 0];
    bn.setMask(keep);
    const x = tf.tensor4d(r.uniformArray(N * C * H * W), [N, C, H, W]);
    const probe = tf.tensor4d(r.uniformArray(N * C * H * W), [N, C, H, W]);
    const k4 = tf.tensor(keep, [1, C, 1, 1]),
      k1 = tf.tensor(keep, [C]);
    // Reference from elementary ops: xhat = (x - mean) / sqrt(var + eps), y = relu(xhat * g + b) * keep.
    const bnRef = (xt: Tensor, g: Tensor, b: Tensor) => {
      const m = tf.moments(xt, [0, 2, 3], true);
      const xhat = tf.div(tf.sub(xt, m.mean), tf.sqrt(tf.add(m.variance, 1e-5)));
      return tf.mul(
        tf.relu(tf.add(tf.mul(xhat, tf.reshape(tf.mul(g, k1), [1, C, 1, 1])), tf.reshape(tf.mul(b, k1), [1, C, 1, 1]))),
        k4,
      );
    };
    const ref = (xt: Tensor, g: Tensor, b: Tensor) => tf.sum(tf.mul(bnRef(xt, g, b), probe));
    const [rdx, rdg, rdb] = tf.grads(ref)([x, bn.gamma, bn.beta]);
    const y = bn.apply(x, true);
    close(y, bnRef(x, bn.gamma, bn.beta), 'forward');
    const ys = y.dataSync();
    for (let i = 0; i < ys.length; i++) if (!keep[Math.floor(i / (H * W)) % C]) expect(ys[i]).toBe(0);
    const dx = tf.grads((xt: Tensor) => tf.sum(tf.mul(bn.apply(xt as Tensor4D, true), probe)))([x])[0];
    close(dx, rdx, 'dx');
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(bn.apply(x, true), probe)) as Scalar, [bn.gamma, bn.beta]);
    close(grads[bn.gamma.name], rdg, 'dgamma');
    close(grads[bn.beta.name], rdb, 'dbeta');
    // Inference uses the running statistics, which moved toward the batch's.
    expect(bn.runningMean[0]).not.toBe(0);
    bn.dispose();
  });

  it('max pooling (2x2/2 and 3x3/2) matches tf.maxPool forward and gradient', () => {
    const r = rng(9);
    for (const [k, s, H, W] of [
      [2, 2, 6, 8],
      [3, 2, 7, 9],
    ]) {
      const x = tf.tensor4d(r.uniformArray(2 * 3 * H * W), [2, 3, H, W]);
      const y = maxPool2d(ops, x, k, s);
      const ref = (xt: Tensor) => toNchw(tf.maxPool(toNhwc(xt) as Tensor4D, k, s, 'valid'));
      close(y, ref(x), 'forward');
      const probe = tf.randomUniform(y.shape);
      close(
        tf.grads((xt: Tensor) => tf.sum(tf.mul(maxPool2d(ops, xt as Tensor4D, k, s), probe)))([x])[0],
        tf.grads((xt: Tensor) => tf.sum(tf.mul(ref(xt), probe)))([x])[0],
        'gradient',
      );
    }
    expect(() => maxPool2d(ops, tf.zeros([1, 1, 2, 2]) as Tensor4D, 3)).toThrow(/k/);
  });

  it('dense layer: forward and gradients match tf.matMul + bias', () => {
    const r = rng(11);
    const x = tf.tensor2d(r.uniformArray(5 * 37), [5, 37]);
    const w = tf.variable(tf.tensor2d(r.uniformArray(37 * 3), [37, 3])),
      b = tf.variable(tf.tensor1d(r.uniformArray(3)));
    const probe = tf.tensor2d(r.uniformArray(15), [5, 3]);
    close(dense(ops, x, w, b), tf.add(tf.matMul(x, w), b), 'forward');
    const ours = tf.grads((xt: Tensor, wt: Tensor, bt: Tensor) => tf.sum(tf.mul(dense(ops, xt, wt, bt), probe)))([
      x,
      w,
      b,
    ]);
    const ref = tf.grads((xt: Tensor, wt: Tensor, bt: Tensor) =>
      tf.sum(tf.mul(tf.add(tf.matMul(xt as never, wt as never), bt), probe)),
    )([x, w, b]);
    ['dx', 'dw', 'db'].forEach((name, i) => close(ours[i], ref[i], name));
    expect(() => dense(ops, tf.zeros([5, 36]), w, b)).toThrow(/x, w, b/);
  });

  it('native momentum optimizer follows tf.train.momentum step for step, and round-trips its state', async () => {
    const r = rng(12);
    const init = r.uniformArray(40);
    const [a, b] = [tf.variable(tf.tensor2d(init, [8, 5])), tf.variable(tf.tensor2d(init, [8, 5]))];
    const ours = new NativeMomentumOptimizer(ops, 0.1, 0.9),
      theirs = tf.train.momentum(0.1, 0.9);
    const target = tf.tensor2d(r.uniformArray(40), [8, 5]);
    for (let step = 0; step < 5; step++) {
      ours.minimize(() => tf.sum(tf.square(tf.sub(a, target))) as Scalar, false, [a]);
      theirs.minimize(() => tf.sum(tf.square(tf.sub(b, target))) as Scalar, false, [b]);
      close(a, b, `step ${step}`);
    }
    // A second optimizer restored from getWeights continues exactly where the first one is.
    const copy = new NativeMomentumOptimizer(ops, 0.1, 0.9);
    await copy.setWeights(await ours.getWeights());
    const before = a.clone();
    const loss = () => tf.sum(tf.square(tf.sub(a, target))) as Scalar;
    ours.minimize(loss, false, [a]);
    const after = a.clone();
    a.assign(before);
    copy.minimize(loss, false, [a]);
    close(a, after, 'restored');
    expect(ours.iterations).toBe(6);
    // setLearningRate: from the same (fresh) state, a tenth of the rate moves a tenth as far.
    const [fast, slow] = [new NativeMomentumOptimizer(ops, 0.1, 0.9), new NativeMomentumOptimizer(ops, 0.1, 0.9)];
    slow.setLearningRate(0.01);
    const start = a.clone();
    fast.minimize(loss, false, [a]);
    const far = tf.sub(a, start);
    a.assign(start);
    slow.minimize(loss, false, [a]);
    close(tf.mul(tf.sub(a, start), 10), far, 'a tenth of the rate');
    expect(() => slow.setLearningRate(0)).toThrow(/learningRate/);
  });
});
