// A/B of the engines one pass may run on one layer: the layer is compiled once per strategy
// ('auto' = the scheduler's own choice), then the kernels run alternately, medians of 40 rounds of
// 5 calls after warm-up; in two child processes that build them in the given order and in
// reverse, the ratios their geometric means (each child's in brackets). For checking a scheduler
// rule (src/schedule/plan.ts) on this machine. Not the benchmark (npm run bench): no baselines,
// no checks against the reference.
//
// npx tsx bench/engine-ab.ts '<ConvSpec JSON>' <forward|backwardData|backwardWeights> <strategy,strategy,...> [dOut] [dIn]
// e.g. npx tsx bench/engine-ab.ts '{"batch":64,"inChannels":3,"outChannels":16,"inHeight":32,"inWidth":32,
//        "kernel":3,"padding":1,"inputGrad":false}' backwardWeights auto,planes,direct 0.5
// Kept channels are drawn at random as the benchmark's masks are (dIn defaults to 1 for a layer
// without input gradient, else to dOut); MASKACC_NUM_THREADS sets the threads (default 2), AB_ISA
// the ISA (default: the widest this machine runs), e.g. AB_ISA=avx2 on an AVX-512 machine.
import { compileMaskedConv, type CompileOptions, type MaskedConv } from '../src/index.js';
import type { ConvSpec } from '../src/ir/conv.js';
import type { Strategy } from '../src/schedule/plan.js';
import { keptAtRandom, rng } from '../test/util.js';
import { alternateMedians, inBothOrders } from './alternate.js';

const [specJson, pass, list, outArg, inArg] = process.argv.slice(2);
const passes = ['forward', 'backwardData', 'backwardWeights'] as const;
type Pass = (typeof passes)[number];
if (!specJson || !passes.includes(pass as Pass) || !list) {
  console.error(
    "usage: npx tsx bench/engine-ab.ts '<ConvSpec JSON>' <forward|backwardData|backwardWeights> <strategy,...> [dOut] [dIn]",
  );
  process.exit(2);
}
const spec = JSON.parse(specJson) as ConvSpec;
const dOut = Number(outArg ?? 0.5);
const dIn = Number(inArg ?? (spec.inputGrad === false ? 1 : dOut));
const threads = Number(process.env.MASKACC_NUM_THREADS ?? 2);
const isa = (process.env.AB_ISA ?? 'auto') as CompileOptions['isa'];
const strategies = list.split(',');

/** The strategies' kernels built and created in `order`, run alternately; medians in the given order. */
async function measure(order: number[]): Promise<number[]> {
  const convs: MaskedConv[] = [];
  for (const i of order) {
    const s = strategies[i];
    const strategy = (s === 'auto' ? {} : { [pass]: s }) as Strategy;
    convs[i] = await compileMaskedConv(
      { ...spec, density: { out: dOut, in: dIn } },
      { threads, strategy, respecialize: false, isa },
    );
  }
  const L = convs[0].spec;
  const r = rng(7);
  const masks = {
    out: keptAtRandom(r, L.outChannels, Math.round(L.outChannels * dOut)),
    in: keptAtRandom(r, L.inChannels, Math.round(L.inChannels * dIn)),
  };
  for (const c of convs) c.setMasks(masks);
  if (order[0] === 0)
    for (const [i, s] of strategies.entries()) console.error(`${s}: ${JSON.stringify(convs[i].plan[pass as Pass])}`);
  const [R, S] = L.kernel;
  const data = (n: number): Float32Array => r.uniformArray(n, -0.5, 0.5);
  const x = data(L.batch * L.inChannels * L.inHeight * L.inWidth);
  const w = data(L.outChannels * L.inChannels * R * S);
  const dy = data(L.batch * L.outChannels * convs[0].outHeight * convs[0].outWidth);
  // Each kernel writes its own outputs: one shared array slowed the second (bench/ab.ts).
  const call = (c: MaskedConv): (() => void) => {
    const y = new Float32Array(dy.length),
      dx = new Float32Array(x.length),
      dw = new Float32Array(w.length);
    return pass === 'forward'
      ? () => c.forward(x, w, undefined, y)
      : pass === 'backwardData'
        ? () => c.backwardData(dy, w, dx)
        : () => c.backwardWeights(dy, x, dw);
  };
  const calls = order.map((i) => call(convs[i]));
  const medians = alternateMedians(calls);
  for (const c of convs) c.dispose();
  return strategies.map((_, i) => medians[order.indexOf(i)]);
}

const given = strategies.map((_, i) => i);
const both = await inBothOrders((reversed) => measure(reversed ? [...given].reverse() : given));
if (both) {
  const [inGiven, inReverse] = both;
  for (const [i, s] of strategies.entries()) {
    const ms = Math.sqrt(inGiven[i] * inReverse[i]);
    const r1 = inGiven[0] / inGiven[i],
      r2 = inReverse[0] / inReverse[i];
    console.log(
      `${s}: ${ms.toFixed(3)} ms, ${Math.sqrt(r1 * r2).toFixed(2)}x of ${strategies[0]} [${r1.toFixed(2)} in the given order, ${r2.toFixed(2)} reversed]`,
    );
  }
}
