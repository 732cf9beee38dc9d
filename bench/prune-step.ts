// Where a training step of the pruning run goes: the demo's model (examples/fashion-models.ts),
// pruned as the demo prunes it, trained with model.fit on the first --images training images; per
// epoch, the step time, the conv kernels' time per layer and every native training op's time per
// step (each call timed). No pruning callback: the masks of epoch 0 stay.
//
//   npx tsx bench/prune-step.ts [--mode masked|dense] [--data-format channelsLast|channelsFirst]
//     [--model vgg|residual] [--images 6400] [--epochs 3] [--rate 0.5] [--batch 128]
import { parseArgs } from 'node:util';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { ArgumentError } from '../src/errors.js';
import { prune } from '../src/prune/prune-model.js';
import { maskedLayers } from '../src/tfjs/compile-layers.js';
import { nativeOps } from '../src/tfjs/native-ops.js';
import { momentumOptimizer } from '../src/tfjs/optimizer.js';
import { tf } from '../src/tfjs/tf.js';
import { imageShape, residualCnn, vggCnn, type DataFormat } from '../examples/fashion-models.js';

const { values: a } = parseArgs({
  options: {
    mode: { type: 'string', default: 'masked' },
    'data-format': { type: 'string', default: 'channelsLast' },
    model: { type: 'string', default: 'vgg' },
    images: { type: 'string', default: '6400' },
    epochs: { type: 'string', default: '3' },
    rate: { type: 'string', default: '0.5' },
    batch: { type: 'string', default: '128' },
  },
});
const mode = a.mode as 'masked' | 'dense';
if (mode !== 'masked' && mode !== 'dense') throw new ArgumentError('--mode', mode, "'masked' or 'dense'");
const dataFormat = a['data-format'] as DataFormat;
if (dataFormat !== 'channelsLast' && dataFormat !== 'channelsFirst')
  throw new ArgumentError('--data-format', dataFormat, "'channelsLast' or 'channelsFirst'");
const [images, epochs, batch] = [a.images, a.epochs, a.batch].map(Number);

await tf.setBackend('cpu');
const data = loadFashionMnist({ limit: { train: images, test: 1 } });
const n = data.train.count;
const x = tf.tensor4d(data.train.images, [n, ...imageShape(dataFormat)]);
const y = tf.oneHot(tf.tensor1d(data.train.labels, 'int32'), 10);
const model = (a.model === 'residual' ? residualCnn : vggCnn)(dataFormat, 1);
const pruned = await prune(model, { rate: Number(a.rate), criterion: 'fpgm', schedule: 'sfp', batch, mode });
pruned.compile({ optimizer: momentumOptimizer(0.02, 0.9), loss: 'categoricalCrossentropy' });

// Every native training op, timed per call.
const opMs = new Map<string, number>();
const ops = nativeOps('bench/prune-step').ops as unknown as Record<string, (...args: unknown[]) => unknown>;
for (const [name, f] of Object.entries(ops)) {
  ops[name] = (...args: unknown[]) => {
    const t0 = performance.now();
    const r = f(...args);
    opMs.set(name, (opMs.get(name) ?? 0) + performance.now() - t0);
    return r;
  };
}

const steps = Math.ceil(n / batch);
const convs = maskedLayers(pruned);
console.log(`${mode} ${dataFormat} ${a.model}, ${n} images, batch ${batch}, ${tf.getBackend()} backend`);
for (let e = 0; e < epochs; e++) {
  opMs.clear();
  convs.forEach((l) => l.takeMs(true));
  const t0 = performance.now();
  await pruned.fit(x, y, { batchSize: batch, epochs: 1, shuffle: true, verbose: 0 });
  const perStep = (ms: number) => (ms / steps).toFixed(2);
  const conv = convs.map((l) => l.takeMs(true));
  console.log(
    `epoch ${e + 1}: ${perStep(performance.now() - t0)} ms/step; conv ${perStep(conv.reduce((s, v) => s + v, 0))} ` +
      `(per layer ${conv.map(perStep).join(' ')})`,
  );
  const sorted = [...opMs].sort((p, q) => q[1] - p[1]);
  console.log(`  native ops: ${sorted.map(([k, v]) => `${k} ${perStep(v)}`).join(', ')}`);
}
