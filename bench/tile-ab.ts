// A/B of two register tiles for one forward or backward-data pass of one layer (the scheduler's
// plan with the tile replaced), in one process: both compiled into one addon, run alternately,
// medians of 40 rounds of 5 calls after warm-up (bench/alternate.ts). For checking the tile scores
// (directPlan, pickMicrotile in src/schedule/plan.ts) on this machine. Not the benchmark: no
// baselines, no reference checks. A tile is MQ x NV for the direct engine, MR x NV for the GEMM
// engines (whose column blocks keep about the scheduler's width, in whole tiles).
//
// npx tsx bench/tile-ab.ts '<ConvSpec JSON>' <forward|backwardData> <MxNV> <MxNV> [density]
// e.g. npx tsx bench/tile-ab.ts '{"batch":8,"inChannels":512,"outChannels":512,"inHeight":7,"inWidth":7,
//        "kernel":3,"padding":1}' forward 4x2 8x1 0.5
// Random kept channels at the density on both masks; MASKACC_NUM_THREADS sets the threads (default 2),
// AB_ISA the ISA (default: the widest this machine runs), e.g. AB_ISA=avx2 on an AVX-512 machine.
import { conv2d, supportedIsas, type ConvSpec } from '../src/index.js';
import { choosePlan, type Plan } from '../src/schedule/plan.js';
import { hostIsa, type IsaName } from '../src/schedule/isa.js';
import { compileUnits } from '../src/codegen/compile.js';
import { defaultCacheDir } from '../src/codegen/cache.js';
import { MaskedConv } from '../src/runtime/masked-conv.js';
import { keptAtRandom, rng } from '../test/util.js';
import { alternateMedians } from './alternate.js';

const [specJson, pass, tileA, tileB, dArg] = process.argv.slice(2);
if (!specJson || (pass !== 'forward' && pass !== 'backwardData') || !tileA || !tileB) {
  console.error("usage: npx tsx bench/tile-ab.ts '<ConvSpec JSON>' <forward|backwardData> <MxNV> <MxNV> [density]");
  process.exit(2);
}
const d = Number(dArg ?? 0.5);
const threads = Number(process.env.MASKACC_NUM_THREADS ?? 2);
const layer = conv2d({ ...(JSON.parse(specJson) as ConvSpec), density: { out: d, in: d } });
const isaName = (process.env.AB_ISA ?? supportedIsas()[0]) as IsaName;
if (!supportedIsas().includes(isaName)) {
  console.error(`AB_ISA=${isaName}: this machine runs ${supportedIsas().join(', ')}`);
  process.exit(2);
}
const isa = hostIsa(isaName);
const heuristic = choosePlan(layer, isa, threads);
const own = heuristic[pass];
if (!own) {
  console.error(`the scheduler runs no ${pass} for this layer`);
  process.exit(2);
}
const plans: Plan[] = [tileA, tileB].map((t) => {
  const [M, NV] = t.split('x').map(Number);
  const NR = NV * isa.vectorWidth;
  const tiled =
    own.engine === 'direct'
      ? { ...own, MQ: M, NV, NR }
      : { ...own, MR: M, NV, NR, columnsPerBlock: Math.max(1, Math.round(own.columnsPerBlock / NR)) * NR };
  return Object.freeze({ ...heuristic, [pass]: tiled });
});
const units = plans.map((plan, i) => ({ ns: `layer${i}`, layer, plan, cxxFlags: [] }));
const { Kernel, key } = await compileUnits(units, { cacheDir: defaultCacheDir(), jobs: 2 });
const convs = units.map((u) => new MaskedConv(layer, u.plan, new Kernel(u.ns, threads), threads, key, false));
console.log(`heuristic: ${JSON.stringify(own)}`);

const r = rng(7);
const masks = {
  out: keptAtRandom(r, layer.outChannels, Math.round(layer.outChannels * d)),
  in: keptAtRandom(r, layer.inChannels, Math.round(layer.inChannels * d)),
};
for (const c of convs) c.setMasks(masks);
const [R, S] = layer.kernel;
const x = r.uniformArray(layer.batch * layer.inChannels * layer.inHeight * layer.inWidth, -0.5, 0.5);
const w = r.uniformArray(layer.outChannels * layer.inChannels * R * S, -0.5, 0.5);
const dy = r.uniformArray(layer.batch * layer.outChannels * layer.outHeight * layer.outWidth, -0.5, 0.5);
const y = new Float32Array(dy.length),
  dx = new Float32Array(x.length);
const calls = convs.map((c) =>
  pass === 'forward' ? () => c.forward(x, w, undefined, y) : () => c.backwardData(dy, w, dx),
);
const [a, b] = alternateMedians(calls);
console.log(
  `${pass} ${tileA}: ${a.toFixed(3)} ms, ${tileB}: ${b.toFixed(3)} ms: ${tileB} ${(a / b).toFixed(3)}x faster`,
);
for (const c of convs) c.dispose();
