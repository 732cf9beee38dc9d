// A/B of two register tiles for one direct pass of one layer (the scheduler's plan with the
// tile replaced), in one process: both compiled into one addon, run alternately, medians of 40
// rounds of 5 calls after warm-up (bench/alternate.ts). For checking the direct tile scores (directPlan in
// src/schedule/plan.ts) on this machine. Not the benchmark: no baselines, no reference checks.
//
// npx tsx bench/tile-ab.ts '<ConvSpec JSON>' <forward|backwardData> <MQxNV> <MQxNV> [density]
// e.g. npx tsx bench/tile-ab.ts '{"batch":8,"inChannels":512,"outChannels":512,"inHeight":7,"inWidth":7,
//        "kernel":3,"padding":1}' forward 4x2 8x1 0.5
// Random kept channels at the density on both masks; MASKACC_NUM_THREADS sets the threads (default 2).
import { conv2d, supportedIsas, type ConvSpec } from '../src/index.js';
import { choosePlan, type Plan } from '../src/schedule/plan.js';
import { ISAS } from '../src/schedule/isa.js';
import { compileUnits } from '../src/codegen/compile.js';
import { defaultCacheDir } from '../src/codegen/cache.js';
import { MaskedConv } from '../src/runtime/masked-conv.js';
import { keptAtRandom, rng } from '../test/util.js';
import { alternateMedians } from './alternate.js';

const [specJson, pass, tileA, tileB, dArg] = process.argv.slice(2);
if (!specJson || (pass !== 'forward' && pass !== 'backwardData') || !tileA || !tileB) {
  console.error("usage: npx tsx bench/tile-ab.ts '<ConvSpec JSON>' <forward|backwardData> <MQxNV> <MQxNV> [density]");
  process.exit(2);
}
const d = Number(dArg ?? 0.5);
const threads = Number(process.env.MASKACC_NUM_THREADS ?? 2);
const layer = conv2d({ ...(JSON.parse(specJson) as ConvSpec), density: { out: d, in: d } });
const isa = ISAS[supportedIsas()[0]];
const heuristic = choosePlan(layer, isa, threads);
const own = heuristic[pass];
if (!own || own.engine !== 'direct') {
  console.error(`the scheduler runs ${pass} of this layer on ${own?.engine ?? 'nothing'}: force a direct layer`);
  process.exit(2);
}
const plans: Plan[] = [tileA, tileB].map((t) => {
  const [MQ, NV] = t.split('x').map(Number);
  return Object.freeze({ ...heuristic, [pass]: { ...own, MQ, NV, NR: NV * isa.vectorWidth } });
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
