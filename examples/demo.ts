// The main job in one command: VGG-16 for CIFAR-10 at 50% filter pruning with linked masks.
// Compiles every conv layer, checks each against the float64 reference, and times a full
// training step of all convs (fwd, bwd-data, bwd-weights of every layer in order, buffers reused
// as a framework's allocator would) against the same model with dense masks.
import { compileModel, passFlops, vgg16Cifar } from '../src/index.js';
import { medianTiming, timeStep, type LayerBuffers, type StepTiming } from '../src/model/step.js';
import { refBackwardData, refForward } from '../test/reference.js';
import { dot, relL2, rng } from '../test/util.js';

const DENSITY = 0.5;
const r = rng(7);
console.log(
  `maskacc demo: VGG-16-CIFAR, batch 64, ${DENSITY * 100}% of filters kept per layer (masks linked layer to layer)`,
);

const t = performance.now();
const masked = await compileModel(vgg16Cifar({ density: DENSITY }), { verbose: true, respecialize: false });
const dense = await compileModel(vgg16Cifar(), { verbose: true, respecialize: false });
console.log(`compile (or cache hit) of both models: ${((performance.now() - t) / 1000).toFixed(1)} s`);

// Random filter masks keeping DENSITY of each layer; the next layer's input mask follows.
for (const l of masked.model.layers) {
  const k = l.layer.outChannels,
    keep = new Uint8Array(k);
  for (const i of [...Array(k).keys()].sort(() => r.next() - 0.5).slice(0, Math.round(k * DENSITY))) keep[i] = 1;
  masked.setFilterMask(l.name, keep);
}

const data = new Map<string, LayerBuffers>(
  masked.model.layers.map((l) => {
    const L = l.layer,
      nx = L.batch * L.inChannels * L.inHeight * L.inWidth,
      nw = L.outChannels * L.inChannels * 9;
    const ny = L.batch * L.outChannels * L.outHeight * L.outWidth;
    return [
      l.name,
      {
        x: r.uniformArray(nx),
        w: r.uniformArray(nw),
        dy: r.uniformArray(ny),
        y: new Float32Array(ny),
        dx: new Float32Array(nx),
        dw: new Float32Array(nw),
      },
    ];
  }),
);

// Correctness per layer: fwd and bwd-data on 2 images against the reference; dw by the
// adjoint identity <fwd(x), dy> = <w * m_out, dw> over the whole batch.
console.log('\nchecking every layer against the reference (fwd, bwd-data on 2 images; dw by the adjoint identity)');
let worst = 0;
for (const l of masked.model.layers) {
  const conv = masked.convs.get(l.name)!,
    { x, w, dy } = data.get(l.name)!,
    L = l.layer,
    m = masked.masksOf(l.name);
  const two = { ...L, batch: 2 };
  const nx = 2 * L.inChannels * L.inHeight * L.inWidth,
    ny = 2 * L.outChannels * L.outHeight * L.outWidth;
  // The first layer has no backward-data pass (inputGrad: false): its dx check is skipped.
  const y = conv.forward(x, w),
    dx = L.inputGrad ? conv.backwardData(dy, w) : undefined,
    { dw } = conv.backwardWeights(dy, x);
  const wm = w.map((v, i) => (m.out[Math.floor(i / (L.inChannels * 9))] ? v : 0));
  const errs = [
    relL2(y.subarray(0, ny), refForward(two, x.subarray(0, nx), w, undefined, m.out, m.in)),
    dx ? relL2(dx.subarray(0, nx), refBackwardData(two, dy.subarray(0, ny), w, m.out, m.in)) : 0,
    Math.abs(dot(y, dy) - dot(wm, dw)) / Math.abs(dot(y, dy)),
  ];
  worst = Math.max(worst, ...errs);
  if (!(errs[0] < 1e-5 && errs[1] < 1e-5 && errs[2] < 1e-4)) {
    console.error(`MISMATCH in ${l.name}: ${errs.map((e) => e.toExponential(1)).join(', ')}`);
    process.exit(1);
  }
}
console.log(`all ${masked.model.layers.length} layers match (worst relative error ${worst.toExponential(1)})`);

// Timing: medians of 7 steps after 2 warm-up steps, masked and dense interleaved; each step runs
// every layer's three passes in order on the buffers allocated above (outputs reused).
const runs = { masked: [] as StepTiming[], dense: [] as StepTiming[] };
for (let i = 0; i < 9; i++) {
  runs.masked.push(timeStep(masked, data));
  runs.dense.push(timeStep(dense, data));
}
const timing = { masked: medianTiming(runs.masked.slice(2)), dense: medianTiming(runs.dense.slice(2)) };
const med = (k: 'masked' | 'dense', layer: number, pass: number) => timing[k].layers[layer].ms[pass];

console.log('\nlayer      shape           masked ms (fwd/bwd-data/bwd-w)   dense ms   speedup  GFLOP/s kept');
let mt = 0,
  dt = 0,
  keptFlops = 0,
  denseFlops = 0;
masked.model.layers.forEach((l, i) => {
  const L = l.layer,
    conv = masked.convs.get(l.name)!;
  const m = [0, 1, 2].map((p) => med('masked', i, p)),
    d = [0, 1, 2].map((p) => med('dense', i, p));
  const ms = m[0] + m[1] + m[2],
    ds = d[0] + d[1] + d[2];
  const kf = 3 * passFlops(L, conv.kept.out.length, conv.kept.in.length);
  mt += ms;
  dt += ds;
  keptFlops += kf;
  denseFlops += 3 * passFlops(L);
  const shape = `${L.inChannels}->${L.outChannels} @${L.inHeight}`;
  console.log(
    `${l.name.padEnd(10)} ${shape.padEnd(15)} ${m.map((v) => v.toFixed(2).padStart(6)).join(' ')}  = ${ms.toFixed(2).padStart(6)}  ${ds.toFixed(2).padStart(8)}  ${(ds / ms).toFixed(2).padStart(6)}x ${(kf / ms / 1e6).toFixed(0).padStart(8)}`,
  );
});
console.log(
  `${'total'.padEnd(26)} ${''.padStart(20)}  = ${mt.toFixed(1).padStart(6)}  ${dt.toFixed(1).padStart(8)}  ${(dt / mt).toFixed(2).padStart(6)}x ${(keptFlops / mt / 1e6).toFixed(0).padStart(8)}`,
);
const sm = timing.masked.stepMs,
  sd = timing.dense.stepMs;
console.log(
  `\nfull conv training step (wall): ${sm.toFixed(1)} ms masked vs ${sd.toFixed(1)} ms dense = ${(sd / sm).toFixed(2)}x` +
    ` (per-layer total ${(dt / mt).toFixed(2)}x; ideal ${(denseFlops / keptFlops).toFixed(2)}x from the kept FLOPs)`,
);
