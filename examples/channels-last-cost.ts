// What channelsLast costs a MaskedConv2D against channelsFirst: the same layer (the prune demo's
// second conv: 32 -> 32 channels, 3x3, 28x28, batch 128, half the filters and inputs pruned) timed
// in each data format, forward alone and forward + both gradients (median of --reps runs), and
// the native NHWC <-> NCHW conversions alone (x, y, dy and dx: four per training step).
//
//   MASKACC_CACHE_DIR=/tmp/mc-tfjs npx tsx examples/channels-last-cost.ts [--reps 15]
import { parseArgs } from 'node:util';
import { compileLayers } from '../src/tfjs/compile-layers.js';
import { maskedConv2d } from '../src/tfjs/masked-conv2d.js';
import { nativeOps } from '../src/tfjs/native-ops.js';
import { tf, type Tensor } from '../src/tfjs/tf.js';

const { values: a } = parseArgs({ options: { reps: { type: 'string', default: '15' } } });
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

const median = (v: number[]) => v.sort((p, q) => p - q)[v.length >> 1];
const time = (f: () => void) => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};
const ms: Record<string, { forward: number[]; step: number[] }> = {};
for (const [i, layer] of layers.entries()) {
  const shape = formats[i] === 'channelsLast' ? [N, H, H, C] : [N, C, H, H];
  const x = tf.randomNormal(shape),
    probe = tf.randomNormal(shape);
  const runs = (ms[formats[i]] = { forward: [] as number[], step: [] as number[] });
  for (let rep = -2; rep < reps; rep++) {
    // (The tidy scopes return nothing: tidy walks a returned typed array element by element.)
    const forward = time(() =>
      tf.tidy(() => {
        (layer.apply(x) as Tensor).dataSync();
      }),
    );
    const step = time(() =>
      tf.tidy(() => {
        // dy = probe given directly: TF.js's cpu mul and sum would cost more than the layer.
        tf.grads((xt: Tensor) => layer.apply(xt) as Tensor)([x], probe)[0].dataSync();
      }),
    );
    if (rep < 0) continue; // warm-up
    runs.forward.push(forward);
    runs.step.push(step);
  }
}
const src = new Float32Array(N * C * H * H).map(Math.random),
  dst = new Float32Array(src.length);
const { ops, threads } = nativeOps('channels-last-cost');
const conversion = median(
  Array.from({ length: reps }, () =>
    time(() => {
      ops.transposeImages(N, H * H, C, threads, src, dst); // NHWC -> NCHW
      ops.transposeImages(N, C, H * H, threads, dst, src); // and back
    }),
  ),
);
for (const f of formats)
  console.log(
    `${f}: forward ${median(ms[f].forward).toFixed(1)} ms, forward + backward ${median(ms[f].step).toFixed(1)} ms`,
  );
console.log(
  `channelsLast - channelsFirst: forward ${(median(ms.channelsLast.forward) - median(ms.channelsFirst.forward)).toFixed(1)} ms, ` +
    `forward + backward ${(median(ms.channelsLast.step) - median(ms.channelsFirst.step)).toFixed(1)} ms; ` +
    `the conversions alone: ${(2 * conversion).toFixed(1)} ms per step (4 x ${((N * C * H * H * 4) / 2 ** 20).toFixed(1)} MB)`,
);
