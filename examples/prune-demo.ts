// The pruning job end to end: a VGG-style CNN trained on Fashion-MNIST while soft filter pruning
// (FPGM criterion by default) masks half of every layer's filters, run twice side by side:
// with maskacc's mask-aware kernels, and with dense convolutions on masked weights (the
// conventional way, on maskacc's own full-mask kernels, so the baseline is fast). Per epoch:
// loss, test accuracy, epoch time and the share of time outside convolutions; then the compact
// export, checked against the masked network. Writes bench/results/prune-demo.{json,svg}.
//
//   npm run prune-demo -- [--epochs 4] [--rate 0.5] [--criterion fpgm|l1|l2] [--schedule sfp|asfp|hard]
//                         [--scope layer|global] [--batch 128] [--lr 0.02] [--backend cpu|wasm]
//                         [--train-limit N] [--test-limit N] [--seed 1] [--out DIR]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadFashionMnist } from '../src/data/fashion-mnist.js';
import { progress } from '../src/codegen/progress.js';
import { exportCompact } from '../src/prune/export.js';
import { pruneAtEpoch, type PruningOptions } from '../src/prune/pruner.js';
import { renderPruneSvg, renderPruneTable, type PruneEpochRow, type RunEpoch } from '../src/prune/report.js';
import { isSoft, pruningSchedule, type ScheduleKind } from '../src/prune/schedule.js';
import type { FilterCriterion } from '../src/prune/criteria.js';
import { evaluate, trainEpoch } from '../src/prune/train.js';
import { MaskedCnn, type CnnSpec } from '../src/tfjs/masked-cnn.js';
import { tf, useBackend, type TfBackend } from '../src/tfjs/tf.js';
import { NativeMomentumOptimizer } from '../src/tfjs/optimizer.js';
import { compileTrainOps } from '../src/codegen/compile-train-ops.js';
import { defaultCacheDir } from '../src/codegen/cache.js';
import { relL2 } from '../bench/report.js';

const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '4' },
    rate: { type: 'string', default: '0.5' },
    criterion: { type: 'string', default: 'fpgm' },
    schedule: { type: 'string', default: 'sfp' },
    scope: { type: 'string', default: 'layer' },
    batch: { type: 'string', default: '128' },
    lr: { type: 'string', default: '0.02' },
    backend: { type: 'string', default: 'cpu' },
    'train-limit': { type: 'string' },
    'test-limit': { type: 'string' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const epochs = Number(a.epochs),
  batch = Number(a.batch),
  lr = Number(a.lr),
  seed = Number(a.seed);
const pruning: PruningOptions = {
  criterion: a.criterion as FilterCriterion,
  schedule: pruningSchedule({ kind: a.schedule as ScheduleKind, rate: Number(a.rate) }),
  scope: a.scope as 'layer' | 'global',
};

await useBackend(a.backend as TfBackend);
const data = loadFashionMnist({
  limit: {
    train: a['train-limit'] ? Number(a['train-limit']) : undefined,
    test: a['test-limit'] ? Number(a['test-limit']) : undefined,
  },
});
const spec: CnnSpec = {
  input: [1, 28, 28],
  batch,
  classes: 10,
  stages: [{ out: 32 }, { out: 32, pool: true }, { out: 64 }, { out: 64, pool: true }, { out: 128, pool: true }],
};
console.log(
  `Fashion-MNIST: ${data.train.count} train / ${data.test.count} test images; CNN ${spec.stages.map((s) => s.out).join('-')} + dense, batch ${batch}`,
);
console.log(
  `pruning: ${pruning.schedule.kind}, ${pruning.criterion}, rate ${pruning.schedule.rate} per ${pruning.scope}; TF.js backend ${a.backend}`,
);

const soft = isSoft(pruning.schedule);
const masked = await MaskedCnn.create(spec, {
  mode: 'masked',
  soft,
  density: 1 - pruning.schedule.rate,
  verbose: true,
  seed,
});
const dense = await MaskedCnn.create(spec, { mode: 'dense', soft, verbose: true });
dense.copyFrom(masked); // same initial weights: the two runs differ only in how convolutions are computed
// SGD with momentum 0.9: TF.js's MomentumOptimizer with the update in one native pass.
const ops = await compileTrainOps({ cacheDir: defaultCacheDir() });
const optimizers = {
  maskacc: new NativeMomentumOptimizer(ops, lr, 0.9),
  dense: new NativeMomentumOptimizer(ops, lr, 0.9),
};

const rows: PruneEpochRow[] = [];
for (let epoch = 0; epoch < epochs; epoch++) {
  const run = (name: 'maskacc' | 'dense', net: MaskedCnn): { rate: number | undefined; result: RunEpoch } => {
    const rate = pruneAtEpoch(net, pruning, epoch);
    const bar = progress();
    const r = trainEpoch(net, data.train, optimizers[name], seed + epoch, (step, steps, loss) => {
      if (step % 20 === 0 || step === steps)
        bar.update(`epoch ${epoch + 1}/${epochs} ${name}: step ${step}/${steps}, loss ${loss.toFixed(4)}`);
    });
    const accuracy = evaluate(net, data.test);
    bar.done(
      `epoch ${epoch + 1}/${epochs} ${name}: loss ${r.loss.toFixed(4)}, test accuracy ${(100 * accuracy).toFixed(2)}%, ${(r.ms / 1000).toFixed(1)} s (${((100 * r.convMs) / r.ms).toFixed(0)}% in conv kernels)`,
    );
    return { rate, result: { loss: r.loss, accuracy, seconds: r.ms / 1000, nonConvShare: 1 - r.convMs / r.ms } };
  };
  const m = run('maskacc', masked),
    d = run('dense', dense);
  rows.push({ epoch, rate: m.rate ?? rows[rows.length - 1]?.rate ?? 0, maskacc: m.result, dense: d.result });
}

console.log(`\n${renderPruneTable(rows)}\n`);
const last = rows[rows.length - 1];
const speedups = rows.filter((r) => r.rate > 0).map((r) => r.dense.seconds / r.maskacc.seconds);
console.log(
  `epoch speedup at ${100 * pruning.schedule.rate}% filter pruning: ${Math.min(...speedups).toFixed(2)}x-${Math.max(...speedups).toFixed(2)}x; ` +
    `final test accuracy ${(100 * last.maskacc.accuracy).toFixed(2)}% (maskacc) vs ${(100 * last.dense.accuracy).toFixed(2)}% (dense)`,
);

// Export: the compact network must compute what the masked one computes.
const compact = await exportCompact(masked);
const probe = tf.tensor4d(data.test.images.slice(0, batch * 28 * 28), [batch, 1, 28, 28]);
const err = relL2(compact.logits(probe, false).dataSync(), masked.logits(probe, false).dataSync());
const params = (n: MaskedCnn) => n.variables.reduce((s, v) => s + v.size, 0);
console.log(
  `compact export: ${params(masked)} -> ${params(compact)} parameters (channels ${compact.spec.stages.map((s) => s.out).join('-')}), ` +
    `logits match the masked network: rel L2 ${err.toExponential(2)}`,
);
if (!(err < 1e-4)) throw new Error(`the compact export differs from the masked network (rel L2 ${err})`);

mkdirSync(a.out!, { recursive: true });
const title = `Fashion-MNIST, ${pruning.schedule.kind} ${pruning.criterion} at ${100 * pruning.schedule.rate}% filters`;
writeFileSync(
  join(a.out!, 'prune-demo.json'),
  `${JSON.stringify({ spec, pruning, backend: a.backend, batch, lr, rows, compact: { params: params(compact), relL2: err } }, null, 1)}\n`,
);
writeFileSync(join(a.out!, 'prune-demo.svg'), renderPruneSvg(rows, title));
console.log(`wrote ${join(a.out!, 'prune-demo.json')} and prune-demo.svg`);
