// Shape families beyond the benchmark's models: ResNet-18/34, MobileNet pointwise layers, batch 1,
// odd kernels, dilations, strides, non-square planes and few kept channels. Each pass of maskacc
// against oneDNN on the kept shapes without copies (the efficiency yardstick), warm (outputs
// passed in and reused), interleaved medians. Every maskacc pass is first checked against that
// contender's checked call (relative L2 <= 1e-4). Not the benchmark (npm run bench): single
// density, no cold caches; it shows where a family falls behind.
// npm run bench:families -- [name-filter] [--density 0.5] [--threads 2] [--out bench/results/families.md]
//   [--layer batch,C,K,H,kernel[,stride[,dilation]] ...] (your own square layers instead of the list)
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { compileMaskedConv, type ConvSpec } from '../src/index.js';
import { cpuModel, supportedIsas } from '../src/schedule/isa.js';
import { loadBaselines, outputSize, type BaselineConvSpec } from './baselines.js';
import { CoreDistance, FAR_NS } from './core-distance.js';
import { relL2 } from './report.js';

const args = process.argv.slice(2);
const { values, positionals } = parseArgs({
  args,
  allowPositionals: true,
  options: {
    density: { type: 'string', default: '0.5' },
    threads: { type: 'string', default: '2' },
    out: { type: 'string', default: '' },
    layer: { type: 'string', multiple: true, default: [] },
  },
});
const density = Number(values.density);
const threads = Number(values.threads);
const out = values.out;
const filter = positionals[0] ?? '';

interface Shape {
  family: string;
  name: string;
  spec: ConvSpec & { kernel: [number, number]; padding: [number, number]; stride: number; dilation: number };
}
/** A layer padded to keep its size (before the stride). */
const rect = (
  family: string,
  name: string,
  batch: number,
  C: number,
  K: number,
  H: number,
  W: number,
  R: number,
  S: number,
  stride = 1,
  dil = 1,
): Shape => ({
  family,
  name,
  spec: {
    batch,
    inChannels: C,
    outChannels: K,
    inHeight: H,
    inWidth: W,
    kernel: [R, S],
    padding: [((R - 1) * dil) >> 1, ((S - 1) * dil) >> 1],
    stride,
    dilation: dil,
  },
});
/** A square layer with a square kernel. */
const sq = (
  family: string,
  name: string,
  batch: number,
  C: number,
  K: number,
  H: number,
  k: number,
  stride = 1,
  dil = 1,
) => rect(family, name, batch, C, K, H, H, k, k, stride, dil);

const SHAPES: Shape[] = [
  sq('ResNet-18', '64 @56 3x3', 8, 64, 64, 56, 3),
  sq('ResNet-18', '64->128 3x3 /2 @56', 8, 64, 128, 56, 3, 2),
  sq('ResNet-18', '128 @28 3x3', 8, 128, 128, 28, 3),
  sq('ResNet-18', '256 @14 3x3', 8, 256, 256, 14, 3),
  sq('ResNet-18', '512 @7 3x3', 8, 512, 512, 7, 3),
  sq('ResNet-18', '64->128 1x1 /2 @56', 8, 64, 128, 56, 1, 2),
  sq('MobileNet', 'v1 pw 32->64 @112', 4, 32, 64, 112, 1),
  sq('MobileNet', 'v1 pw 128->128 @56', 4, 128, 128, 56, 1),
  sq('MobileNet', 'v1 pw 512->512 @14', 4, 512, 512, 14, 1),
  sq('MobileNet', 'v1 pw 1024->1024 @7', 4, 1024, 1024, 7, 1),
  sq('MobileNet', 'v2 pw 16->96 @112', 4, 16, 96, 112, 1),
  sq('MobileNet', 'v2 pw 144->24 @56', 4, 144, 24, 56, 1),
  sq('MobileNet', 'v2 pw 960->160 @7', 4, 960, 160, 7, 1),
  sq('batch 1', 'ResNet-50 64->256 1x1 @56', 1, 64, 256, 56, 1),
  sq('batch 1', 'ResNet-50 256 3x3 @14', 1, 256, 256, 14, 3),
  sq('batch 1', 'ResNet-50 512 3x3 @7', 1, 512, 512, 7, 3),
  sq('batch 1', 'VGG 64 3x3 @224', 1, 64, 64, 224, 3),
  sq('batch 1', 'stem 3->64 7x7 /2 @224', 1, 3, 64, 224, 7, 2),
  sq('kernels', '5x5 64 @32 b16', 16, 64, 64, 32, 5),
  sq('kernels', '5x5 /2 32->64 @64', 8, 32, 64, 64, 5, 2),
  sq('kernels', '11x11 /4 3->64 @227 (AlexNet)', 8, 3, 64, 227, 11, 4),
  rect('kernels', '1x7 128 @17', 8, 128, 128, 17, 17, 1, 7),
  rect('kernels', '7x1 128 @17', 8, 128, 128, 17, 17, 7, 1),
  sq('kernels', '4x4 /2 64->128 @32 (DCGAN)', 16, 64, 128, 32, 4, 2),
  sq('dilation', '3x3 d2 128 @28', 8, 128, 128, 28, 3, 1, 2),
  sq('dilation', '3x3 d4 256 @14', 8, 256, 256, 14, 3, 1, 4),
  rect('planes', 'non-square 3x3 64 @30x90', 8, 64, 64, 30, 90, 3, 3),
  sq('planes', 'odd 3x3 37->51 @23 b7', 7, 37, 51, 23, 3),
  sq('planes', '3x3 32 @16 b256', 256, 32, 32, 16, 3),
  sq('planes', '3x3 /2 64 @32 b64', 64, 64, 64, 32, 3, 2),
  sq('few channels', '3x3 64->8 @56', 8, 64, 8, 56, 3),
  sq('few channels', '3x3 8->64 @56', 8, 8, 64, 56, 3),
  sq('few channels', '3x3 16 @32 b64', 64, 16, 16, 32, 3),
  sq('few channels', '3x3 /2 16->32 @32 b64', 64, 16, 32, 32, 3, 2),
  sq('few channels', '7x7 /2 6->64 @112', 8, 6, 64, 112, 7, 2),
  sq('few channels', '1x1 256->12 @28', 8, 256, 12, 28, 1),
];

/** `--layer batch,C,K,H,kernel[,stride[,dilation]]`: a square layer of the user's. */
function parseLayer(text: string): Shape {
  const n = text.split(',').map(Number);
  if (n.length < 5 || n.length > 7 || !n.every((v) => Number.isInteger(v) && v > 0))
    throw new Error(`--layer ${text}: expected batch,C,K,H,kernel[,stride[,dilation]] (positive integers)`);
  const [batch, C, K, H, k, stride = 1, dil = 1] = n;
  const name = `${k}x${k}${stride > 1 ? ` /${stride}` : ''}${dil > 1 ? ` d${dil}` : ''} ${C}->${K} @${H} b${batch}`;
  return sq('custom', name, batch, C, K, H, k, stride, dil);
}

/** n flags with k set, spread evenly (the same masks on every run). */
const spread = (n: number, k: number) =>
  Uint8Array.from({ length: n }, (_, i) => (Math.floor(((i + 1) * k) / n) > Math.floor((i * k) / n) ? 1 : 0));
const indices = (m: Uint8Array) => Int32Array.from([...m.keys()].filter((i) => m[i]));
const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[xs.length >> 1];

const b = await loadBaselines();
const distance = new CoreDistance();
let farPasses = 0;
let peak = 0;
for (let i = 0; i < 5; i++) peak = Math.max(peak, b.measurePeakGflops(threads, 0.05));
const rows: string[] = [];
const shapes = (values.layer.length ? values.layer.map(parseLayer) : SHAPES).filter((s) =>
  `${s.family} ${s.name}`.includes(filter),
);
for (const [n, { family, name, spec: s }] of shapes.entries()) {
  process.stderr.write(`[families] ${n + 1}/${shapes.length} ${family}: ${name}\n`);
  const inputGrad = s.inChannels > 3; // a first layer: training never needs dx of the image
  const K = s.outChannels,
    C = s.inChannels;
  const mo = spread(K, Math.max(1, Math.round(K * density))),
    mi = spread(C, inputGrad ? Math.max(1, Math.round(C * density)) : C);
  const conv = await compileMaskedConv(
    { ...s, inputGrad, density: { out: indices(mo).length / K, in: indices(mi).length / C } },
    { threads, respecialize: false },
  );
  conv.setMasks({ out: mo, in: mi });
  const P = outputSize(s.inHeight, s.kernel[0], s.stride, s.padding[0], s.dilation),
    Q = outputSize(s.inWidth, s.kernel[1], s.stride, s.padding[1], s.dilation);
  const bs: BaselineConvSpec = {
    ...s,
    stride: [s.stride, s.stride],
    dilation: [s.dilation, s.dilation],
    bias: false,
  };
  const noCopy = new b.CompactOneDnnConv(bs, indices(mo), indices(mi), threads, true);
  const x = random(s.batch * C * s.inHeight * s.inWidth),
    w = random(K * C * s.kernel[0] * s.kernel[1]),
    dy = random(s.batch * K * P * Q);
  const mine = { y: new Float32Array(dy.length), dx: new Float32Array(x.length), dw: new Float32Array(w.length) };
  const theirs = { y: new Float32Array(dy.length), dx: new Float32Array(x.length), dw: new Float32Array(w.length) };
  const passes: [string, () => void, () => void, () => number][] = [
    [
      'fwd',
      () => conv.forward(x, w, undefined, mine.y),
      () => noCopy.forward(x, w, null, theirs.y),
      () => relL2(mine.y, theirs.y),
    ],
  ];
  if (inputGrad)
    passes.push([
      'bwd_data',
      () => conv.backwardData(dy, w, mine.dx),
      () => noCopy.backwardData(dy, w, theirs.dx),
      () => relL2(mine.dx, theirs.dx),
    ]);
  passes.push([
    'bwd_weights',
    () => conv.backwardWeights(dy, x, mine.dw),
    () => noCopy.backwardWeights(dy, x, theirs.dw, null),
    () => relL2(mine.dw, theirs.dw),
  ]);
  const flops = 2 * s.batch * conv.kept.out.length * conv.kept.in.length * s.kernel[0] * s.kernel[1] * P * Q;
  // Loops of ~10 ms (2 GFLOP): shorter ones (0.5 GFLOP) moved single passes by 20-30% between runs.
  const reps = Math.max(3, Math.min(400, Math.round(2e9 / flops)));
  for (const [pass, a, c, err] of passes) {
    for (const o of Object.values(mine)) o.fill(NaN); // an element the kernel leaves unwritten fails the check
    a();
    c(); // the contender's checked call (with copies): the reference
    const e = err();
    if (!(e <= 1e-4)) throw new Error(`${family} ${name} ${pass}: relative L2 ${e} against oneDNN`);
    const ta: number[] = [],
      tc: number[] = [];
    const far = distance.roundTripNs(2000, 150) > FAR_NS; // before the rounds: which phase they ran in
    farPasses += far ? 1 : 0;
    for (let r = 0; r < 12; r++) {
      let t0 = performance.now();
      for (let i = 0; i < reps; i++) a();
      const ma = (performance.now() - t0) / reps;
      t0 = performance.now();
      for (let i = 0; i < reps; i++) c();
      const mc = (performance.now() - t0) / reps;
      if (r < 2) continue; // warm-up rounds
      ta.push(ma);
      tc.push(mc);
    }
    const ma = median(ta),
      mc = median(tc);
    const pct = (ms: number) => `${((flops / ms / 1e6 / peak) * 100).toFixed(0)}%`;
    rows.push(
      `| ${family} | ${name} | ${pass} | ${ma.toPrecision(3)} | ${pct(ma)} | ${pct(mc)} | ${(mc / ma).toFixed(2)}x | ${far ? 2 : 1} |`,
    );
    console.log(rows[rows.length - 1]);
  }
  conv.dispose();
}
const text = [
  '# maskacc: shape families against oneDNN without copies',
  '',
  `\`npm run bench:families -- ${args.join(' ')}\`, ${new Date().toISOString()}. CPU: ${cpuModel()}, kernels on ${supportedIsas()[0]}, ${threads} threads, FMA peak ${peak.toFixed(0)} GFLOP/s (measured in this run). Density ${density} on both masks (a first layer keeps its 3 input channels and has no backward-data pass).`,
  '',
  'Warm: outputs passed in and reused, 10 rounds of interleaved loops of at least 3 calls and ~2 GFLOP each after 2 warm-up rounds, medians. % of peak counts kept FLOPs. "no-copy" is oneDNN 2.6 on the kept shapes with the operands gathered once beforehand; "vs no-copy" = its ms / maskacc ms (> 1: maskacc faster). maskacc writes full outputs (pruned channels as zeros), no-copy only the kept ones.',
  '',
  `CCDs: whether the two threads' cores shared an L3 (1) or not (2) when the pass was timed, from a cache line's round trip between them (bench/core-distance.ts); ${farPasses} of ${rows.length} passes ran on two, where kernels whose threads share packed data run slower.`,
  '',
  '| family | layer | pass | maskacc ms | % peak | no-copy % peak | vs no-copy | CCDs |',
  '|:---|:---|:---|---:|---:|---:|---:|---:|',
  ...rows,
  '',
].join('\n');
await distance.close();
if (out) writeFileSync(out, text);
else if (!filter) console.log(`\n${text}`);
