// Pruning schedules, mask linking through a MaskedCnn, a short training run and the compact export.
import { beforeAll, describe, expect, it } from 'vitest';
import { isSoft, pruningSchedule, rateAt, selectsAt } from '../../src/prune/schedule.js';
import { pruneAtEpoch, selectMasks } from '../../src/prune/pruner.js';
import { exportCompact } from '../../src/prune/export.js';
import { evaluate, shuffled, trainEpoch } from '../../src/prune/train.js';
import { renderPruneSvg, renderPruneTable } from '../../src/prune/report.js';
import { MaskedCnn, type CnnSpec } from '../../src/tfjs/masked-cnn.js';
import { tf, type Scalar } from '../../src/tfjs/tf.js';
import type { Split } from '../../src/data/fashion-mnist.js';
import { relL2, rng } from '../util.js';

describe('schedules', () => {
  it('hard selects once, sfp every epoch, asfp ramps up to the rate and stays there', () => {
    const hard = { kind: 'hard' as const, rate: 0.5, startEpoch: 1 };
    expect([0, 1, 2, 3].map((e) => selectsAt(hard, e))).toEqual([false, true, false, false]);
    expect([0, 1, 5].map((e) => rateAt(hard, e))).toEqual([0, 0.5, 0.5]);
    const sfp = { kind: 'sfp' as const, rate: 0.3 };
    expect([0, 1, 2].map((e) => selectsAt(sfp, e))).toEqual([true, true, true]);
    const asfp = { kind: 'asfp' as const, rate: 0.6, rampEpochs: 4 };
    const rates = [0, 1, 2, 3, 4, 9].map((e) => rateAt(asfp, e));
    for (let i = 1; i < 4; i++) expect(rates[i]).toBeGreaterThan(rates[i - 1]);
    expect(rates[0]).toBeGreaterThan(0);
    expect(rates[3]).toBeCloseTo(0.6, 12);
    expect(rates[5]).toBe(0.6);
    expect(rates[1] - rates[0]).toBeGreaterThan(rates[3] - rates[2]); // asymptotic: big steps first
    expect([isSoft(hard), isSoft(sfp), isSoft(asfp)]).toEqual([false, true, true]);
  });

  it('refuses bad schedules, naming the field', () => {
    expect(() => pruningSchedule({ kind: 'soft' as never, rate: 0.5 })).toThrow(/schedule\.kind/);
    expect(() => pruningSchedule({ kind: 'sfp', rate: 1 })).toThrow(/schedule\.rate/);
    expect(() => pruningSchedule({ kind: 'sfp', rate: 0.5, startEpoch: -1 })).toThrow(/schedule\.startEpoch/);
    expect(() => pruningSchedule({ kind: 'asfp', rate: 0.5, rampEpochs: 0 })).toThrow(/schedule\.rampEpochs/);
    expect(() => selectMasks([], 'l1', 0.5, 'everything' as never)).toThrow(/scope/);
  });
});

describe('MaskedCnn pruning', () => {
  const spec: CnnSpec = {
    input: [1, 8, 8],
    batch: 6,
    classes: 3,
    stages: [{ out: 6 }, { out: 5, pool: true }, { out: 4, pool: true }],
  };
  let net: MaskedCnn;
  // A learnable toy task: the class is which third of the image is bright.
  const toy = (count: number, seed: number): Split => {
    const r = rng(seed),
      images = new Float32Array(count * 64),
      labels = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      labels[i] = Math.floor(r.next() * 3);
      for (let p = 0; p < 64; p++)
        images[i * 64 + p] = 0.2 * r.next() + (Math.floor((p % 8) / 3) === labels[i] ? 0.8 : 0);
    }
    return { images, labels, count, height: 8, width: 8 };
  };
  beforeAll(async () => {
    net = await MaskedCnn.create(spec, { mode: 'masked', soft: true, density: 0.5 });
  });

  it('links each filter mask to its batch norm, the next conv inputs, and zeroes pruned filters', () => {
    const rate = pruneAtEpoch(net, { criterion: 'l2', schedule: { kind: 'sfp', rate: 0.5 } }, 0);
    expect(rate).toBe(0.5);
    const masks = net.filterMasks;
    expect(masks.map((m) => m.reduce((s, v) => s + v, 0))).toEqual([3, 2, 2]); // round(K * 0.5), halves up
    masks.forEach((m, i) => {
      expect(Array.from(net.norms[i].keep)).toEqual(Array.from(m));
      if (i + 1 < masks.length) expect(Array.from(net.convs[i + 1].masks.in)).toEqual(Array.from(m));
      const w = net.convs[i].kernel.dataSync(),
        row = w.length / m.length;
      m.forEach((keep, k) => {
        if (!keep) expect(w.subarray(k * row, (k + 1) * row).every((v) => v === 0)).toBe(true);
      });
    });
  });

  it('trains: the loss falls over a few epochs on a learnable task and accuracy beats chance', () => {
    const train = toy(120, 1),
      test = toy(60, 2);
    const opt = tf.train.momentum(0.05, 0.9);
    const first = trainEpoch(net, train, opt, 1);
    let last = first;
    for (let e = 2; e <= 6; e++) last = trainEpoch(net, train, opt, e);
    expect(first.steps).toBe(20);
    expect(last.loss).toBeLessThan(first.loss * 0.7);
    expect(last.convMs).toBeGreaterThan(0); // the conv time counter is wired (no claim on speed)
    expect(evaluate(net, test)).toBeGreaterThan(0.6);
  });

  it('the compact export computes the masked network function with fewer channels', async () => {
    const compact = await exportCompact(net);
    expect(compact.spec.stages.map((s) => s.out)).toEqual(net.filterMasks.map((m) => m.reduce((s, v) => s + v, 0)));
    const x = tf.tensor4d(rng(5).uniformArray(6 * 64), [6, 1, 8, 8]);
    expect(relL2(compact.logits(x, false).dataSync(), net.logits(x, false).dataSync())).toBeLessThan(1e-5);
    compact.dispose();
  });

  it('SFP: the masked network (hard-mask kernels) and the dense baseline (every row computed) give the same gradients', async () => {
    const baseline = await MaskedCnn.create(spec, { mode: 'dense', soft: true });
    baseline.copyFrom(net);
    const x = tf.tensor4d(rng(8).uniformArray(6 * 64), [6, 1, 8, 8]),
      labels = tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32');
    const grads = (n: MaskedCnn) => {
      const { grads: g } = tf.variableGrads(() => n.loss(x, labels) as Scalar, n.variables);
      return n.variables.map((v) => g[v.name]);
    };
    const ours = grads(net),
      ref = grads(baseline);
    ours.forEach((g, i) => expect(relL2(g.dataSync(), ref[i].dataSync()), `variable ${i}`).toBeLessThan(1e-5));
    // The pruned rows of every conv gradient are zero in the baseline's full computation too.
    net.convs.forEach((c, i) => {
      const dw = ref[net.variables.indexOf(c.kernel)].dataSync(),
        row = dw.length / c.conv.spec.outChannels;
      c.masks.out.forEach(
        (keep, k) =>
          keep ||
          expect(
            dw.subarray(k * row, (k + 1) * row).every((v) => v === 0),
            `conv ${i} row ${k}`,
          ).toBe(true),
      );
    });
    baseline.dispose();
  });

  it('shuffles deterministically, and reports render every epoch', () => {
    expect(Array.from(shuffled(10, 3))).toEqual(Array.from(shuffled(10, 3)));
    expect([...shuffled(50, 4)].sort((a, b) => a - b)).toEqual([...Array(50).keys()]);
    const row = (epoch: number, t: number) => ({
      epoch,
      rate: 0.5,
      maskacc: { loss: 1, accuracy: 0.8, seconds: t, nonConvShare: 0.2 },
      dense: { loss: 1, accuracy: 0.81, seconds: 2 * t, nonConvShare: 0.1 },
    });
    const table = renderPruneTable([row(0, 10), row(1, 12)]);
    expect(table.split('\n')).toHaveLength(4);
    expect(table).toContain('2.00x');
    const svg = renderPruneSvg([row(0, 10), row(1, 12)], 'a <test>');
    expect(svg).toContain('&lt;test&gt;');
    expect(svg.match(/<path /g)).toHaveLength(4);
  });

  it('a seed fixes the initial weights', async () => {
    const [a, b] = await Promise.all([1, 2].map(() => MaskedCnn.create(spec, { mode: 'dense', soft: false, seed: 5 })));
    a.variables.forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(Array.from(b.variables[i].dataSync())));
    expect(Array.from(a.convs[1].kernel.dataSync())).not.toEqual(
      Array.from(a.convs[2].kernel.dataSync()).slice(0, a.convs[1].kernel.size),
    );
    a.dispose();
    b.dispose();
  });

  it('refuses a bad network spec and mask lists of the wrong length', async () => {
    await expect(MaskedCnn.create({ ...spec, stages: [] }, { mode: 'masked', soft: false })).rejects.toThrow(
      /spec\.stages/,
    );
    await expect(
      MaskedCnn.create(
        {
          ...spec,
          input: [1, 2, 2],
          stages: [
            { out: 2, pool: true },
            { out: 2, pool: true },
          ],
        },
        { mode: 'masked', soft: false },
      ),
    ).rejects.toThrow(/spec\.stages/);
    expect(() => net.setFilterMasks([[1]])).toThrow(/masks/);
  });
});
