// A/B of two register tiles for one forward or backward-data pass of one layer (the scheduler's
// plan with the tile replaced): both compiled into one addon, run alternately, medians of 40
// rounds of 5 calls after warm-up (bench/alternate.ts); in two child processes that build them in
// either order, the ratio their geometric mean (each child's in brackets). For checking the tile
// scores (directPlan, pickMicrotile in src/schedule/plan.ts) on this machine. Not the benchmark:
// no baselines, no reference checks. A tile is MQ x NV for the direct engine, MR x NV for the GEMM
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
import { alternateMedians, inBothOrders } from './alternate.js';

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
const r = rng(7);
const masks = {
  out: keptAtRandom(r, layer.outChannels, Math.round(layer.outChannels * d)),
  in: keptAtRandom(r, layer.inChannels, Math.round(layer.inChannels * d)),
};
const [R, S] = layer.kernel;
const x = r.uniformArray(layer.batch * layer.inChannels * layer.inHeight * layer.inWidth, -0.5, 0.5);
const w = r.uniformArray(layer.outChannels * layer.inChannels * R * S, -0.5, 0.5);
const dy = r.uniformArray(layer.batch * layer.outChannels * layer.outHeight * layer.outWidth, -0.5, 0.5);

/** Both tiles built into one addon in `order`, run alternately; medians in the order A, B. */
async function measure(order: number[]): Promise<number[]> {
  const units = order.map((t) => ({ ns: `layer${t}`, layer, plan: plans[t], cxxFlags: [] }));
  const { Kernel, key } = await compileUnits(units, { cacheDir: defaultCacheDir(), jobs: 2 });
  const convs = units.map((u) => new MaskedConv(layer, u.plan, new Kernel(u.ns, threads), threads, key, false));
  for (const c of convs) c.setMasks(masks);
  // Each kernel writes its own output: one shared array slowed the second (bench/ab.ts).
  const calls = convs.map((c) => {
    if (pass === 'forward') {
      const y = new Float32Array(dy.length);
      return () => c.forward(x, w, undefined, y);
    }
    const dx = new Float32Array(x.length);
    return () => c.backwardData(dy, w, dx);
  });
  const medians = alternateMedians(calls);
  for (const c of convs) c.dispose();
  return order.map((_, t) => medians[order.indexOf(t)]);
}

const both = await inBothOrders((reversed) => measure(reversed ? [1, 0] : [0, 1]));
if (both) {
  const [[a1, b1], [a2, b2]] = both;
  const ratio = Math.sqrt((a1 / b1) * (a2 / b2));
  console.log(`heuristic: ${JSON.stringify(own)}`);
  console.log(
    `${pass} ${tileA}: ${Math.sqrt(a1 * a2).toFixed(3)} ms, ${tileB}: ${Math.sqrt(b1 * b2).toFixed(3)} ms: ` +
      `${tileB} ${ratio.toFixed(3)}x faster [${(a1 / b1).toFixed(2)} built ${tileA} first, ${(a2 / b2).toFixed(2)} ${tileB} first]`,
  );
}
