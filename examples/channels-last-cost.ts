// What channelsLast costs a MaskedConv2D against channelsFirst: the same layer (the prune demo's
// second conv: 32 -> 32 channels, 3x3, 28x28, batch 128, half the filters and inputs pruned) timed
// for forward + both gradients in each data format. The difference is the NHWC <-> NCHW
// conversion of x, y, dy and dx inside the op.
//
//   MASKACC_CACHE_DIR=/tmp/mc-tfjs npx tsx examples/channels-last-cost.ts [--reps 10]
import { parseArgs } from 'node:util';
import { compileLayers } from '../src/tfjs/compile-layers.js';
import { maskedConv2d } from '../src/tfjs/masked-conv2d.js';
import { tf, type Tensor } from '../src/tfjs/tf.js';

const { values: a } = parseArgs({ options: { reps: { type: 'string', default: '10' } } });
const reps = Number(a.reps);
const [N, C, K, H] = [128, 32, 32, 28];
await tf.setBackend('cpu');
const half = (n: number) => Array.from({ length: n }, (_, i) => i % 2);
const formats = ['channelsFirst', 'channelsLast'] as const;
const layers = formats.map((dataFormat) => {
  const l = maskedConv2d({ filters: K, kernelSize: 3, padding: 'same', dataFormat });
  l.build(dataFormat === 'channelsLast' ? [null, H, H, C] : [null, C, H, H]);
  return l;
});
await compileLayers(layers, { batch: N, density: 0.5, inputGradOfFirstLayers: true });
layers.forEach((l) => l.setMasks({ out: half(K), in: half(C) }));
const ms: Record<string, number> = {};
for (let rep = -2; rep < reps; rep++)
  for (const [i, layer] of layers.entries()) {
    const shape = formats[i] === 'channelsLast' ? [N, H, H, C] : [N, C, H, H];
    const x = tf.randomNormal(shape);
    const t0 = performance.now();
    const g = tf.grads((xt: Tensor) => tf.sum(layer.apply(xt) as Tensor))([x]);
    g[0].dataSync();
    if (rep >= 0) ms[formats[i]] = (ms[formats[i]] ?? 0) + (performance.now() - t0) / reps;
    tf.dispose([x, ...g]);
  }
const conv = layers.map((l) => l.takeMs() / (reps + 2));
for (const [i, f] of formats.entries())
  console.log(`${f}: ${ms[f].toFixed(1)} ms per forward + backward (${conv[i].toFixed(1)} ms in the conv kernels)`);
console.log(
  `channelsLast costs ${(ms.channelsLast - ms.channelsFirst).toFixed(1)} ms more (${((ms.channelsLast / ms.channelsFirst - 1) * 100).toFixed(0)}%)`,
);
