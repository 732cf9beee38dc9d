// The pruning job end to end, the way a TF.js user runs it: an ordinary tf.sequential CNN for
// Fashion-MNIST (--model residual: a small residual tf.model) -> prune() (Conv2D -> MaskedConv2D,
// masks traced from the graph) -> fit with PruningCallback -> stripPruning -> save -> reload with
// plain TF.js -> evaluate. Trained side by side, epoch by epoch, from the same initial weights:
// on maskacc's masked kernels, and with the same masks on maskacc's full-mask kernels (dense, the
// conventional way: the baseline). The unpruned model on TF.js's own cpu conv2d is timed on a
// sample of --plain-images images (its conv2d gradient takes seconds per image) and its epoch
// extrapolated. Both timed runs take 8 untimed warm-up steps first (weights restored after). Per
// epoch: loss, test accuracy, time and the share outside the conv kernels.
// Writes bench/results/prune-demo.{json,svg} and the stripped model.
//
//   npm run prune-demo -- [--epochs 4] [--rate 0.5] [--criterion fpgm|l1|l2] [--schedule sfp|asfp|hard]
//     [--scope layer|global] [--model vgg|residual] [--data-format channelsLast|channelsFirst]
//     [--batch 128] [--lr 0.02 (the last epoch: a tenth)] [--train-limit N] [--test-limit N] [--plain-images 8] [--seed 1]
//     [--out bench/results]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { LayersModel } from '@tensorflow/tfjs';
import { progress } from '../src/codegen/progress.js';
import { loadFashionMnist, type Split } from '../src/data/fashion-mnist.js';
import { ArgumentError } from '../src/errors.js';
import { FILTER_CRITERIA, type FilterCriterion } from '../src/prune/criteria.js';
import { PruningCallback } from '../src/prune/callback.js';
import { prune } from '../src/prune/prune-model.js';
import { renderPruneSvg, renderPruneTable, type PruneEpochRow, type RunEpoch } from '../src/prune/report.js';
import type { ScheduleKind } from '../src/prune/schedule.js';
import { stripPruning } from '../src/prune/strip.js';
import { maskedLayers } from '../src/tfjs/compile-layers.js';
import { directory } from '../src/tfjs/file-io.js';
import { momentumOptimizer, type NativeMomentumOptimizer } from '../src/tfjs/optimizer.js';
import { tf, type Scalar, type Tensor } from '../src/tfjs/tf.js';
import { imageShape, residualCnn, vggCnn } from './fashion-models.js';

const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '4' },
    rate: { type: 'string', default: '0.5' },
    criterion: { type: 'string', default: 'fpgm' },
    schedule: { type: 'string', default: 'sfp' },
    scope: { type: 'string', default: 'layer' },
    model: { type: 'string', default: 'vgg' },
    'data-format': { type: 'string', default: 'channelsLast' },
    batch: { type: 'string', default: '128' },
    lr: { type: 'string', default: '0.02' },
    'train-limit': { type: 'string' },
    'test-limit': { type: 'string' },
    'plain-images': { type: 'string', default: '8' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const [epochs, batch, lr, seed, plainImages] = [a.epochs, a.batch, a.lr, a.seed, a['plain-images']].map(Number);
if (!FILTER_CRITERIA.includes(a.criterion as FilterCriterion))
  throw new ArgumentError('--criterion', a.criterion, FILTER_CRITERIA.join(', '));
if (a.model !== 'vgg' && a.model !== 'residual') throw new ArgumentError('--model', a.model, "'vgg' or 'residual'");
const dataFormat = a['data-format'] as 'channelsLast' | 'channelsFirst';
if (dataFormat !== 'channelsLast' && dataFormat !== 'channelsFirst')
  throw new ArgumentError('--data-format', dataFormat, "'channelsLast' or 'channelsFirst'");

await tf.setBackend('cpu');
const data = loadFashionMnist({
  limit: {
    train: a['train-limit'] ? Number(a['train-limit']) : undefined,
    test: a['test-limit'] ? Number(a['test-limit']) : undefined,
  },
});
// One channel: the NCHW and NHWC images are the same array.
const tensors = (s: Split) => ({
  x: tf.tensor4d(s.images, [s.count, ...imageShape(dataFormat)]),
  y: tf.oneHot(tf.tensor1d(s.labels, 'int32'), 10),
});
const train = tensors(data.train),
  test = tensors(data.test);

const original = (a.model === 'residual' ? residualCnn : vggCnn)(dataFormat, seed);
const options = {
  rate: Number(a.rate),
  criterion: a.criterion as FilterCriterion,
  schedule: a.schedule as ScheduleKind,
  scope: a.scope as 'layer' | 'global',
  batch,
  verbose: true,
};
console.log(
  `Fashion-MNIST: ${data.train.count} train / ${data.test.count} test images; ${a.model === 'residual' ? 'residual tf.model' : 'VGG-style tf.sequential CNN'}, ` +
    `${dataFormat}, batch ${batch}; pruning ${options.schedule} ${options.criterion} at ${100 * options.rate}% per ${options.scope}`,
);
// The same initial weights for all three: prune copies the original's.
const runs = {
  maskacc: await prune(original, options),
  dense: await prune(original, { ...options, mode: 'dense' }),
  plain: original,
};
const callbacks = { maskacc: new PruningCallback(console.log), dense: new PruningCallback() };
// SGD with momentum 0.9. The two maskacc runs use momentumOptimizer, tf.train.momentum's arithmetic
// in one native pass per variable (TF.js's update took ~11 ms of a ~90 ms pruned step); the plain
// TF.js model keeps tf.train.momentum.
const compile = (name: string, m: LayersModel) =>
  m.compile({
    optimizer: name === 'plain' ? tf.train.momentum(lr, 0.9) : momentumOptimizer(lr, 0.9),
    loss: 'categoricalCrossentropy',
    metrics: ['accuracy'],
  });
for (const [name, m] of Object.entries(runs)) compile(name, m);

// Untimed warm-up: 8 steps of each timed run, then its weights and optimizer are put back. V8
// compiles the step's JavaScript and the buffers fault in here, not in whichever run's first
// epoch happens to come first.
for (const name of ['maskacc', 'dense'] as const) {
  const m = runs[name];
  const saved = m.getWeights().map((w) => w.clone());
  const n = Math.min(8 * batch, data.train.count);
  await m.fit(train.x.slice(0, n), train.y.slice(0, n), { batchSize: batch, epochs: 1, verbose: 0 });
  m.setWeights(saved);
  tf.dispose(saved);
  m.optimizer.dispose();
  compile(name, m);
}

const accuracyOf = (m: LayersModel) => {
  const r = m.evaluate(test.x, test.y, { batchSize: batch }) as Scalar[];
  return r[1].dataSync()[0];
};

async function epoch(name: 'maskacc' | 'dense', e: number): Promise<RunEpoch> {
  const m = runs[name];
  // A step schedule: the last epoch at a tenth of the rate, so the final accuracy is a settled one.
  (m.optimizer as NativeMomentumOptimizer).setLearningRate(e === epochs - 1 && epochs > 1 ? lr / 10 : lr);
  const convs = maskedLayers(m);
  convs.forEach((l) => l.takeMs(true));
  const bar = progress();
  const steps = Math.ceil(data.train.count / batch);
  const t0 = performance.now();
  const h = await m.fit(train.x, train.y, {
    batchSize: batch,
    initialEpoch: e,
    epochs: e + 1,
    shuffle: true,
    verbose: 0,
    callbacks: [
      callbacks[name],
      new tf.CustomCallback({
        onBatchEnd: async (step) => {
          if (step % 25 === 0) bar.update(`epoch ${e + 1}/${epochs} ${name}: step ${step + 1}/${steps}`);
        },
      }),
    ],
  });
  const ms = performance.now() - t0;
  const convMs = convs.reduce((t, l) => t + l.takeMs(true), 0);
  const accuracy = accuracyOf(m);
  const loss = (h.history.loss as number[])[0];
  bar.done(
    `epoch ${e + 1}/${epochs} ${name}: loss ${loss.toFixed(4)}, test accuracy ${(100 * accuracy).toFixed(2)}%, ` +
      `${(ms / 1000).toFixed(1)} s (${((100 * convMs) / ms).toFixed(0)}% in conv kernels)`,
  );
  return { loss, accuracy, seconds: ms / 1000, nonConvShare: 1 - convMs / ms };
}

const rows: PruneEpochRow[] = [];
for (let e = 0; e < epochs; e++) {
  const maskacc = await epoch('maskacc', e);
  const dense = await epoch('dense', e);
  rows.push({ epoch: e, rate: callbacks.maskacc.steps.at(-1)?.rate ?? options.rate, maskacc, dense });
}

// The unpruned model on TF.js's cpu conv2d: one training step on a sample, per image, times the epoch.
const sample = Math.min(plainImages, data.train.count);
let plainSeconds = NaN;
if (sample > 0) {
  const bar = progress();
  bar.update(`plain TF.js: timing one training step of ${sample} images`);
  const t0 = performance.now();
  await runs.plain.fit(train.x.slice(0, sample), train.y.slice(0, sample), {
    batchSize: sample,
    epochs: 1,
    verbose: 0,
  });
  plainSeconds = ((performance.now() - t0) / 1000) * (data.train.count / sample);
  bar.done(
    `plain TF.js (cpu conv2d): ${(plainSeconds / 3600).toFixed(1)} h per epoch, extrapolated from ${sample} images`,
  );
}

console.log(`\n${renderPruneTable(rows)}\n`);
const speedups = rows.map((r) => r.dense.seconds / r.maskacc.seconds);
const total = (run: 'maskacc' | 'dense') => rows.reduce((s, r) => s + r[run].seconds, 0);
const final = rows[rows.length - 1];
const meanMaskacc = rows.reduce((s, r) => s + r.maskacc.seconds, 0) / rows.length;
console.log(
  `epoch speedup at ${100 * options.rate}% filter pruning: ${(total('dense') / total('maskacc')).toFixed(2)}x over dense on maskacc's kernels ` +
    `(all epochs; ${Math.min(...speedups).toFixed(2)}x-${Math.max(...speedups).toFixed(2)}x epoch by epoch)` +
    (Number.isNaN(plainSeconds) ? '' : `, ~${Math.round(plainSeconds / meanMaskacc)}x over plain TF.js`) +
    `; final test accuracy ${(100 * final.maskacc.accuracy).toFixed(2)}% (maskacc) vs ${(100 * final.dense.accuracy).toFixed(2)}% (dense)`,
);

// Strip, save, reload with plain TF.js layers only, evaluate: it must compute what the masked model computes.
const stripped = await stripPruning(runs.maskacc);
const name = a.model === 'residual' ? 'prune-demo-residual' : 'prune-demo';
const dir = join(a.out!, `${name}-model`);
await stripped.save(directory(dir));
const reloaded = await tf.loadLayersModel(directory(dir));
reloaded.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
const probe = test.x.slice(0, Math.min(batch, test.x.shape[0]));
const [p0, p1] = [runs.maskacc.predict(probe) as Tensor, reloaded.predict(probe) as Tensor];
const rel = tf.norm(tf.sub(p0, p1)).dataSync()[0] / tf.norm(p0).dataSync()[0];
// TF.js's own cpu conv2d runs the reloaded model: ~20 ms per image here, so a sample of the test set.
const checked = Math.min(1000, data.test.count);
const reloadedAcc = (
  reloaded.evaluate(test.x.slice(0, checked), test.y.slice(0, checked), { batchSize: batch }) as Scalar[]
)[1].dataSync()[0];
const maskedAcc = (
  runs.maskacc.evaluate(test.x.slice(0, checked), test.y.slice(0, checked), { batchSize: batch }) as Scalar[]
)[1].dataSync()[0];
console.log(
  `stripped: ${runs.maskacc.countParams()} -> ${reloaded.countParams()} parameters (${reloaded.layers.map((l) => l.getClassName()).join(', ')}); ` +
    `saved to ${dir} and reloaded with plain TF.js: test accuracy on ${checked} images ${(100 * reloadedAcc).toFixed(2)}% ` +
    `(masked model: ${(100 * maskedAcc).toFixed(2)}%), outputs rel. error ${rel.toExponential(2)}`,
);
if (!(rel < 1e-5)) throw new Error(`the stripped model differs from the masked one (rel. error ${rel})`);

mkdirSync(a.out!, { recursive: true });
writeFileSync(
  join(a.out!, `${name}.json`),
  `${JSON.stringify(
    {
      options: { ...options, dataFormat, model: a.model, lr, seed },
      train: data.train.count,
      test: data.test.count,
      rows,
      plain: { secondsPerEpoch: plainSeconds, sampleImages: sample },
      stripped: {
        params: reloaded.countParams(),
        relError: rel,
        accuracy: reloadedAcc,
        maskedAccuracy: maskedAcc,
        checkedImages: checked,
      },
    },
    null,
    1,
  )}\n`,
);
writeFileSync(
  join(a.out!, `${name}.svg`),
  renderPruneSvg(
    rows,
    `Fashion-MNIST (TF.js layers, ${dataFormat}), ${options.schedule} ${options.criterion} at ${100 * options.rate}%`,
  ),
);
console.log(`wrote ${join(a.out!, `${name}.json`)} and ${name}.svg`);
