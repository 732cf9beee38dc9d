// The TF.js-user workflow on Fashion-MNIST: an ordinary tf.sequential CNN (and, with --residual, a
// small residual tf.model) -> prune (MaskedConv2D layers, masks traced from the graph) -> fit with
// PruningCallback -> stripPruning -> save -> reload with plain TF.js -> evaluate. Trained three
// ways from the same initial weights, epoch by epoch: maskacc's masked kernels, the same masks on
// maskacc's full-mask kernels (dense, the conventional way), and the unpruned model on TF.js's
// own cpu conv2d. Writes bench/results/tfjs-layers-demo.{json,svg}.
//
//   MASKACC_CACHE_DIR=/tmp/mc-tfjs npx tsx examples/tfjs-layers-demo.ts [--epochs 2] [--rate 0.5]
//     [--criterion fpgm] [--schedule sfp] [--batch 128] [--train-limit 4096] [--test-limit 2000]
//     [--residual] [--out bench/results]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';
import { loadFashionMnist, type Split } from '../src/data/fashion-mnist.js';
import type { FilterCriterion } from '../src/prune/criteria.js';
import { PruningCallback } from '../src/prune/callback.js';
import { prune } from '../src/prune/prune-model.js';
import { renderPruneSvg, renderPruneTable, type PruneEpochRow, type RunEpoch } from '../src/prune/report.js';
import type { ScheduleKind } from '../src/prune/schedule.js';
import { stripPruning } from '../src/prune/strip.js';
import { maskedLayers } from '../src/tfjs/compile-layers.js';
import { directory } from '../src/tfjs/file-io.js';
import { tf, type Scalar, type Tensor } from '../src/tfjs/tf.js';

const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '2' },
    rate: { type: 'string', default: '0.5' },
    criterion: { type: 'string', default: 'fpgm' },
    schedule: { type: 'string', default: 'sfp' },
    batch: { type: 'string', default: '128' },
    lr: { type: 'string', default: '0.02' },
    'train-limit': { type: 'string', default: '4096' },
    'test-limit': { type: 'string', default: '2000' },
    residual: { type: 'boolean', default: false },
    // TF.js's cpu conv2d gradient is very slow: by default the plain model is timed on one step
    // (its epoch time extrapolated, no accuracy); --plain-steps 0 trains it fully every epoch.
    'plain-steps': { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const [epochs, batch, lr, seed] = [Number(a.epochs), Number(a.batch), Number(a.lr), Number(a.seed)];
await tf.setBackend('cpu');
const data = loadFashionMnist({ limit: { train: Number(a['train-limit']), test: Number(a['test-limit']) } });
// One channel: NCHW and NHWC are the same array.
const tensors = (s: Split) => ({
  x: tf.tensor4d(s.images, [s.count, s.height, s.width, 1]),
  y: tf.oneHot(tf.tensor1d(s.labels, 'int32'), 10),
});
const train = tensors(data.train),
  test = tensors(data.test);

const init = { kernelInitializer: tf.initializers.heNormal({ seed }) };
function sequentialCnn(): LayersModel {
  const stage = (filters: number, first = false) => [
    tf.layers.conv2d({
      filters,
      kernelSize: 3,
      padding: 'same',
      ...init,
      ...(first ? { inputShape: [28, 28, 1] } : {}),
    }),
    tf.layers.batchNormalization(),
    tf.layers.activation({ activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
  ];
  return tf.sequential({
    layers: [
      ...stage(32, true),
      ...stage(64),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
}
function residualCnn(): LayersModel {
  const input = tf.input({ shape: [28, 28, 1] });
  const conv = (filters: number, activation?: 'relu') =>
    tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation, ...init });
  const a1 = conv(32, 'relu').apply(input) as SymbolicTensor;
  const a2 = conv(32).apply(conv(32, 'relu').apply(a1)) as SymbolicTensor;
  const sum = tf.layers.activation({ activation: 'relu' }).apply(tf.layers.add().apply([a1, a2]));
  const pooled = tf.layers.maxPooling2d({ poolSize: 4 }).apply(sum);
  const out = tf.layers.dense({ units: 10, activation: 'softmax' }).apply(tf.layers.flatten().apply(pooled));
  return tf.model({ inputs: input, outputs: out as SymbolicTensor });
}

const original = a.residual ? residualCnn() : sequentialCnn();
const options = {
  rate: Number(a.rate),
  criterion: a.criterion as FilterCriterion,
  schedule: a.schedule as ScheduleKind,
  batch,
  verbose: true,
};
const runs = {
  maskacc: await prune(original, options),
  dense: await prune(original, { ...options, mode: 'dense' }),
  plain: original,
};
const callbacks = { maskacc: new PruningCallback(console.log), dense: new PruningCallback() };
for (const m of Object.values(runs))
  m.compile({ optimizer: tf.train.momentum(lr, 0.9), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });

const accuracyOf = (m: LayersModel) => {
  const r = m.evaluate(test.x, test.y, { batchSize: batch }) as Scalar[];
  return r[1].dataSync()[0];
};
const plainSteps = Number(a['plain-steps']);
async function epoch(name: keyof typeof runs, e: number): Promise<RunEpoch> {
  const m = runs[name];
  const sampled = name === 'plain' && plainSteps > 0;
  const images = sampled ? Math.min(plainSteps * batch, data.train.count) : data.train.count;
  const convs = maskedLayers(m);
  convs.forEach((l) => l.takeMs(true));
  const t0 = performance.now();
  const h = await m.fit(sampled ? train.x.slice(0, images) : train.x, sampled ? train.y.slice(0, images) : train.y, {
    batchSize: batch,
    initialEpoch: e,
    epochs: e + 1,
    shuffle: true,
    verbose: 0,
    callbacks: name === 'plain' ? [] : [callbacks[name]],
  });
  const ms = ((performance.now() - t0) * data.train.count) / images; // extrapolated when sampled
  const convMs = convs.reduce((t, l) => t + l.takeMs(true), 0);
  const accuracy = sampled ? NaN : accuracyOf(m);
  const loss = (h.history.loss as number[])[0];
  console.log(
    `epoch ${e + 1}/${epochs} ${name}: loss ${loss.toFixed(4)}, test accuracy ${(100 * accuracy).toFixed(2)}%, ` +
      `${(ms / 1000).toFixed(1)} s${sampled ? ` (extrapolated from ${images} images)` : ''}${convs.length ? ` (${((100 * convMs) / ms).toFixed(0)}% in conv kernels)` : ''}`,
  );
  return { loss, accuracy, seconds: ms / 1000, nonConvShare: convs.length ? 1 - convMs / ms : NaN };
}

console.log(
  `Fashion-MNIST: ${data.train.count} train / ${data.test.count} test images; ${a.residual ? 'residual tf.model' : 'tf.sequential CNN'}, ` +
    `batch ${batch}; pruning ${options.schedule} ${options.criterion} at ${100 * options.rate}%`,
);
const rows: (PruneEpochRow & { plain: RunEpoch })[] = [];
for (let e = 0; e < epochs; e++) {
  const maskacc = await epoch('maskacc', e);
  const dense = await epoch('dense', e);
  // Sampled, the plain model's step time is the same every epoch: timed once.
  const plain = plainSteps > 0 && e > 0 ? rows[0].plain : await epoch('plain', e);
  rows.push({ epoch: e, rate: options.rate, maskacc, dense, plain });
}
console.log(`\n${renderPruneTable(rows)}\n`);
for (const r of rows)
  console.log(
    `epoch ${r.epoch + 1}: maskacc ${r.maskacc.seconds.toFixed(1)} s, dense on maskacc ${r.dense.seconds.toFixed(1)} s ` +
      `(${(r.dense.seconds / r.maskacc.seconds).toFixed(2)}x), plain TF.js ${r.plain.seconds.toFixed(1)} s ` +
      `(${(r.plain.seconds / r.maskacc.seconds).toFixed(2)}x)` +
      (Number.isNaN(r.plain.accuracy) ? '' : `; plain test accuracy ${(100 * r.plain.accuracy).toFixed(2)}%`),
  );

// Strip, save, reload with plain TF.js layers only, evaluate.
const stripped = await stripPruning(runs.maskacc);
const dir = join(a.out!, a.residual ? 'tfjs-layers-demo-residual-model' : 'tfjs-layers-demo-model');
await stripped.save(directory(dir));
const reloaded = await tf.loadLayersModel(directory(dir));
reloaded.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
const probe = test.x.slice(0, Math.min(batch, test.x.shape[0]));
const [p0, p1] = [runs.maskacc.predict(probe) as Tensor, reloaded.predict(probe) as Tensor];
const rel = tf.norm(tf.sub(p0, p1)).dataSync()[0] / tf.norm(p0).dataSync()[0];
const [maskedAcc, reloadedAcc] = [accuracyOf(runs.maskacc), accuracyOf(reloaded)];
console.log(
  `stripped: ${runs.maskacc.countParams()} -> ${reloaded.countParams()} parameters (layers ${reloaded.layers.map((l) => l.getClassName()).join(', ')}); ` +
    `saved to ${dir}, reloaded: test accuracy ${(100 * reloadedAcc).toFixed(2)}% (masked ${(100 * maskedAcc).toFixed(2)}%), outputs rel. error ${rel.toExponential(2)}`,
);
if (!(rel < 1e-5)) throw new Error(`the stripped model differs from the masked one (rel. error ${rel})`);

mkdirSync(a.out!, { recursive: true });
const name = a.residual ? 'tfjs-layers-demo-residual' : 'tfjs-layers-demo';
writeFileSync(
  join(a.out!, `${name}.json`),
  `${JSON.stringify({ options, lr, train: data.train.count, test: data.test.count, rows, stripped: { params: reloaded.countParams(), relError: rel, accuracy: reloadedAcc } }, null, 1)}\n`,
);
writeFileSync(
  join(a.out!, `${name}.svg`),
  renderPruneSvg(
    rows,
    `Fashion-MNIST (TF.js layers), ${options.schedule} ${options.criterion} at ${100 * options.rate}%`,
  ),
);
console.log(`wrote ${join(a.out!, `${name}.json`)} and ${name}.svg`);
