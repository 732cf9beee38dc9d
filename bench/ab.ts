// A/B of two versions of one template file, in one process: each layer is compiled once per version
// (the kernel cache key covers the templates), then both binaries run alternately, medians of 40
// rounds of 3 calls per pass. Runs in separate processes moved by 10-30% on a shared 2-core VM;
// alternating in one process brings the noise down to about 3% (unchanged passes read 0.97-1.03x).
// The template file gets its own content back at the end. Not the benchmark (npm run bench): no
// baselines, no checks against the reference.
//
// npx tsx bench/ab.ts <template file> <version A> <version B> "C K H batch kernel stride keptC keptK" ...
// (AB_COLD=1: one call per sample, caches evicted before each)
// e.g. cp templates/engine/gemm.hpp /tmp/a.hpp, edit, then
//      npx tsx bench/ab.ts templates/engine/gemm.hpp /tmp/a.hpp templates/engine/gemm.hpp.new "1024 256 14 8 1 1 512 128"
import { readFileSync, writeFileSync } from 'node:fs';
import { compileMaskedConv, type MaskedConv } from '../src/index.js';

const [target, a, b, ...layers] = process.argv.slice(2);
if (!target || !a || !b || layers.length === 0) {
  console.error(
    'usage: npx tsx bench/ab.ts <template file> <version A> <version B> "C K H batch kernel stride keptC keptK" ...',
  );
  process.exit(2);
}
const versions = [readFileSync(a), readFileSync(b)];
const original = readFileSync(target);
const ROUNDS = 40,
  CALLS = 3,
  WARMUP = 5;
// AB_COLD=1: every timed call starts with cold caches, as in the benchmark, where the other
// contenders run between two maskacc calls (a 64 MiB buffer is rewritten first, outside the timing).
const COLD = process.env.AB_COLD === '1';
const evict = COLD ? new Float32Array(16 << 20) : undefined;

/** n flags with k of them set, spread evenly. */
const spread = (n: number, k: number) =>
  Array.from({ length: n }, (_, i) => (Math.floor(((i + 1) * k) / n) > Math.floor((i * k) / n) ? 1 : 0));
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[xs.length >> 1];

try {
  for (const text of layers) {
    const [C, K, H, batch, R, stride, keptC, keptK] = text.trim().split(/\s+/).map(Number);
    const padding = (R - 1) >> 1;
    const spec = { batch, inChannels: C, outChannels: K, inHeight: H, inWidth: H, kernel: R, stride, padding };
    const convs: MaskedConv[] = [];
    for (const v of versions) {
      writeFileSync(target, v);
      const conv = await compileMaskedConv(
        { ...spec, density: { out: keptK / K, in: keptC / C } },
        { respecialize: false },
      );
      conv.setMasks({ out: spread(K, keptK), in: spread(C, keptC) });
      convs.push(conv);
    }
    const P = Math.floor((H + 2 * padding - R) / stride) + 1;
    const x = new Float32Array(batch * C * H * H).map(Math.random),
      w = new Float32Array(K * C * R * R).map(Math.random),
      dy = new Float32Array(batch * K * P * P).map(Math.random);
    // Each version writes its own outputs: with one output array shared, the version compiled
    // second ran its direct forward 1.5x slower than the first on the very same code.
    const outputs = convs.map(() => ({
      y: new Float32Array(dy.length),
      dx: new Float32Array(x.length),
      dw: new Float32Array(w.length),
    }));
    const passes: [string, (j: number) => void][] = [
      ['fwd', (j) => convs[j].forward(x, w, undefined, outputs[j].y)],
      ['bwd_data', (j) => convs[j].backwardData(dy, w, outputs[j].dx)],
      ['bwd_weights', (j) => convs[j].backwardWeights(dy, x, outputs[j].dw)],
    ];
    const cells = passes.map(([name, pass]) => {
      const ms: number[][] = [[], []];
      for (let round = 0; round < ROUNDS; round++)
        for (const j of round % 2 ? [1, 0] : [0, 1]) {
          if (evict) {
            evict.fill(round);
            const t0 = performance.now();
            pass(j);
            if (round >= WARMUP) ms[j].push(performance.now() - t0);
            continue;
          }
          const t0 = performance.now();
          for (let i = 0; i < CALLS; i++) pass(j);
          if (round >= WARMUP) ms[j].push((performance.now() - t0) / CALLS);
        }
      const [ta, tb] = ms.map(median);
      return `${name} ${ta.toFixed(3)}/${tb.toFixed(3)} ms = ${(ta / tb).toFixed(3)}x`;
    });
    console.log(`${text.padEnd(28)} A/B: ${cells.join('  ')}`);
    convs.forEach((c) => c.dispose());
  }
} finally {
  writeFileSync(target, original);
}
