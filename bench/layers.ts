// Quick per-layer check while tuning kernels: one zoo model's unique layers (filtered by name),
// each pass of maskacc against dense oneDNN and oneDNN on the compact shape (no copies), medians of
// interleaved reps. Not the benchmark (npm run bench): no report, no checks against the reference.
// npx tsx bench/layers.ts [name-regex] [--model resnet50-imagenet] [--density 0.5] [--batch 64] [--reps 7] [--threads 2] [--strategy json]
import { compileMaskedConvs, MODEL_ZOO } from '../src/index.js';
import { loadBaselines } from './baselines.js';
import { cpuModel, supportedIsas } from '../src/schedule/isa.js';

const args = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : d;
};
const density = Number(opt('--density', '0.5'));
const reps = Number(opt('--reps', '7'));
const strategy = JSON.parse(opt('--strategy', '{}'));
const modelName = opt('--model', 'resnet50-imagenet');
const batch = Number(opt('--batch', '64'));
const filter = args[0] && !args[0].startsWith('--') ? new RegExp(args[0]) : /.*/;
const threads = Number(opt('--threads', '2'));

const model = MODEL_ZOO[modelName as keyof typeof MODEL_ZOO]({ batch, density });
const seen = new Map<string, { name: string; count: number; layer: (typeof model.layers)[number]['layer'] }>();
for (const l of model.layers) {
  const L = l.layer;
  const key = JSON.stringify([L.inChannels, L.outChannels, L.inHeight, L.inWidth, L.kernel, L.stride, L.padding]);
  if (!filter.test(l.name)) continue;
  const s = seen.get(key);
  if (s) s.count++;
  else seen.set(key, { name: l.name, count: 1, layer: L });
}
const layers = [...seen.values()];
const b = await loadBaselines();
const peak = b.measurePeakGflops(threads, 0.5);
console.log(`CPU ${cpuModel()}, ${supportedIsas()[0]}, peak ${peak.toFixed(0)} GFLOP/s, density ${density}`);
const convs = await compileMaskedConvs(
  layers.map((l) => l.layer),
  { threads, respecialize: false, strategy, verbose: true },
);
const rnd = (n: number) => {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5;
  return a;
};
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const tot = { m: 0, d: 0, c: 0 };
for (const [i, { name, count, layer: L }] of layers.entries()) {
  const conv = convs[i];
  const K = L.outChannels,
    C = L.inChannels;
  const keep = (n: number) => {
    const m = new Uint8Array(n);
    const idx = [...Array(n).keys()].sort(() => Math.random() - 0.5).slice(0, Math.max(1, Math.round(n * density)));
    idx.forEach((j) => (m[j] = 1));
    return m;
  };
  const mo = keep(K),
    mi = L.inChannels <= 4 ? new Uint8Array(C).fill(1) : keep(C);
  conv.setMasks({ out: mo, in: mi });
  const Kp = conv.kept.out.length,
    Cp = conv.kept.in.length;
  const spec = {
    batch: L.batch,
    inChannels: C,
    outChannels: K,
    inHeight: L.inHeight,
    inWidth: L.inWidth,
    kernel: L.kernel,
    stride: L.stride,
    padding: L.padding,
    dilation: L.dilation,
    bias: false,
  };
  const dense = new b.OneDnnConv(spec, threads);
  const compact = new b.OneDnnConv({ ...spec, inChannels: Cp, outChannels: Kp }, threads);
  const [R, S] = L.kernel,
    P = L.outHeight,
    Q = L.outWidth,
    N = L.batch;
  const x = rnd(N * C * L.inHeight * L.inWidth),
    w = rnd(K * C * R * S),
    dy = rnd(N * K * P * Q);
  const y = new Float32Array(N * K * P * Q),
    dx = new Float32Array(x.length),
    dw = new Float32Array(w.length);
  const xc = rnd(N * Cp * L.inHeight * L.inWidth),
    wc = rnd(Kp * Cp * R * S),
    dyc = rnd(N * Kp * P * Q);
  const yc = new Float32Array(dyc.length),
    dxc = new Float32Array(xc.length),
    dwc = new Float32Array(wc.length);
  const passes = {
    fwd: [
      () => conv.forward(x, w, undefined, y),
      () => dense.forward(x, w, null, y),
      () => compact.forward(xc, wc, null, yc),
    ],
    bwd_data: [
      () => conv.backwardData(dy, w, dx),
      () => dense.backwardData(dy, w, dx),
      () => compact.backwardData(dyc, wc, dxc),
    ],
    bwd_weights: [
      () => conv.backwardWeights(dy, x, dw),
      () => dense.backwardWeights(dy, x, dw, null),
      () => compact.backwardWeights(dyc, xc, dwc, null),
    ],
  };
  const flops = 2 * N * Kp * Cp * R * S * P * Q;
  console.log(
    `${name} x${count} ${C}->${K} ${R}x${S} s${L.stride[0]} @${L.inHeight} kept ${Kp}/${Cp}  ${conv.plan.forward.engine}/${conv.plan.backwardData?.engine ?? 'none'}/${conv.plan.backwardWeights.engine}`,
  );
  for (const [pass, fns] of Object.entries(passes)) {
    if (pass === 'bwd_data' && !L.inputGrad) continue;
    const t: number[][] = [[], [], []];
    for (const f of fns) f();
    for (let r = 0; r < reps; r++)
      for (let j = 0; j < 3; j++) {
        const t0 = performance.now();
        fns[j]();
        t[j].push(performance.now() - t0);
      }
    const [m, d, c] = t.map(median);
    tot.m += m * count;
    tot.d += d * count;
    tot.c += c * count;
    console.log(
      `  ${pass.padEnd(12)} maskacc ${m.toFixed(2).padStart(7)} ms ${(flops / m / 1e6).toFixed(0).padStart(4)} GF/s ${((flops / m / 1e6 / peak) * 100).toFixed(0).padStart(3)}%  dense ${d.toFixed(2).padStart(7)} (${(d / m).toFixed(2)}x)  compact ${c.toFixed(2).padStart(7)} (${(c / m).toFixed(2)}x)`,
    );
  }
}
console.log(
  `total maskacc ${tot.m.toFixed(1)} ms, dense ${tot.d.toFixed(1)} (${(tot.d / tot.m).toFixed(2)}x), compact-no-copies ${tot.c.toFixed(1)} (${(tot.c / tot.m).toFixed(2)}x)`,
);
