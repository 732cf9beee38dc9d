// The main job in one command: compile a VGG-16 layer for 50% filter pruning, check it against
// the float64 reference, and time a masked training step (fwd, bwd-data, bwd-weights) vs dense.
import { compileMaskedConvs, conv2d, passFlops, type ConvSpec, type MaskedConv } from '../src/index.js';
import { refBackwardData, refForward } from '../test/reference.js';
import { dot, relL2, rng } from '../test/util.js';

const layer: ConvSpec = { batch: 64, inChannels: 128, outChannels: 128, inHeight: 16, inWidth: 16, kernel: 3, padding: 1 };
const density = 0.5;
const r = rng(7);

console.log(`maskacc demo: VGG-16-CIFAR conv 128->128 @16x16, batch 64, 3x3 pad 1, density ${density} on filters and input channels`);
let t = performance.now();
const [masked, dense] = await compileMaskedConvs([{ ...layer, density: { out: density, in: density } }, layer], { verbose: true });
console.log(`compile (or cache hit): ${((performance.now() - t) / 1000).toFixed(2)} s`);
console.log(masked.explain().replace(/^/gm, '  '));

const l = conv2d(layer);
const pick = (n: number) => {
  const m = new Uint8Array(n);
  for (const i of [...Array(n).keys()].sort(() => r.next() - 0.5).slice(0, Math.round(n * density))) m[i] = 1;
  return m;
};
const masks = { out: pick(l.outChannels), in: pick(l.inChannels) };
masked.setMasks(masks);
const x = r.uniformArray(l.batch * l.inChannels * l.inHeight * l.inWidth);
const w = r.uniformArray(l.outChannels * l.inChannels * 9);
const dy = r.uniformArray(l.batch * l.outChannels * l.outHeight * l.outWidth);

// Correctness: fwd and bwd-data per image against the reference (2 images), dw by the adjoint
// identity <fwd(x), dy> = <w * m, dw> over the whole batch.
const y = masked.forward(x, w);
const dx = masked.backwardData(dy, w);
const { dw } = masked.backwardWeights(dy, x);
const two = conv2d({ ...layer, batch: 2 });
const imgX = 2 * l.inChannels * l.inHeight * l.inWidth, imgY = 2 * l.outChannels * l.outHeight * l.outWidth;
const errF = relL2(y.subarray(0, imgY), refForward(two, x.subarray(0, imgX), w, undefined, masks.out, masks.in));
const errB = relL2(dx.subarray(0, imgX), refBackwardData(two, dy.subarray(0, imgY), w, masks.out, masks.in));
const wm = w.map((v, i) => (masks.out[Math.floor(i / (l.inChannels * 9))] ? v : 0));
const errW = Math.abs(dot(y, dy) - dot(wm, dw)) / Math.abs(dot(y, dy));
console.log(`check vs reference: forward ${errF.toExponential(1)}, backwardData ${errB.toExponential(1)}, backwardWeights (adjoint) ${errW.toExponential(1)}`);
if (!(errF < 1e-5 && errB < 1e-5 && errW < 1e-4)) {
  console.error('MISMATCH: the kernel disagrees with the reference');
  process.exit(1);
}

// Timing: medians of 9 interleaved steps after warm-up.
const step = (c: MaskedConv) => {
  const s = [performance.now()];
  c.forward(x, w, undefined, y); s.push(performance.now());
  c.backwardData(dy, w, dx); s.push(performance.now());
  c.backwardWeights(dy, x, dw); s.push(performance.now());
  return [s[1] - s[0], s[2] - s[1], s[3] - s[2]];
};
const runs: Record<string, number[][]> = { masked: [], dense: [] };
for (let i = 0; i < 11; i++) {
  runs.masked.push(step(masked));
  runs.dense.push(step(dense));
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
const med = (k: string, j: number) => median(runs[k].slice(2).map((s) => s[j]));
const keptFlops = passFlops(l, masked.kept.out.length, masked.kept.in.length), denseFlops = passFlops(l);
console.log('\npass             masked ms  dense ms  speedup  masked GFLOP/s (kept)');
['forward', 'backwardData', 'backwardWeights'].forEach((name, j) => {
  const m = med('masked', j), d = med('dense', j);
  console.log(`${name.padEnd(16)} ${m.toFixed(2).padStart(9)} ${d.toFixed(2).padStart(9)} ${(d / m).toFixed(2).padStart(7)}x ${(keptFlops / m / 1e6).toFixed(0).padStart(8)}`);
});
const mt = [0, 1, 2].reduce((s, j) => s + med('masked', j), 0), dt = [0, 1, 2].reduce((s, j) => s + med('dense', j), 0);
console.log(`${'step total'.padEnd(16)} ${mt.toFixed(2).padStart(9)} ${dt.toFixed(2).padStart(9)} ${(dt / mt).toFixed(2).padStart(7)}x  (ideal ${(denseFlops / keptFlops).toFixed(2)}x)`);
