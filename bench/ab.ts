// A/B of two versions of one template file (or of a templates folder), in one process: each layer is compiled once per version
// (the kernel cache key covers the templates), then both binaries run alternately, medians of 40
// rounds of at least 3 calls and ~2 ms per pass; twice, in two processes that load the builds in either order (below).
// Runs in separate processes moved by 10-30% on a shared 2-core VM; alternating in one process
// brings that noise down to about 3%, but not a bias of a version's place: with identical code,
// version B of ResNet-56's 16 @32 b64 (8 kept, AVX2 on a Zen 4) read 0.93x, and a change read
// 0.88x as B and 1.22x as A. Before trusting a few percent on a small layer, run it again with
// the versions swapped.
// The template file gets its own content back at the end. Not the benchmark (npm run bench): no
// baselines, no checks against the reference.
//
// npx tsx bench/ab.ts <template file> <version A> <version B> "C K H batch kernel stride keptC keptK" ...
// (or a layer as a JSON ConvSpec with its density: '{"batch":8,...,"kernel":[1,7],"density":{"out":0.5,"in":0.5}}')
// (AB_COLD=1: one call per sample, caches evicted before each; AB_MASKS=random: kept channels drawn
// at random, as the benchmark's masks are, instead of spread evenly: gaps of several pruned
// channels, which evenly spread masks at d=0.5 never have; AB_ISA=avx2 builds for that ISA instead
// of the widest this machine runs; AB_PHASE=1: each round is tagged with how far apart the two cores
// are (bench/core-distance.ts) and the medians are given for near and far rounds apart, over
// AB_ROUNDS rounds, default 40: a VM's far phases last seconds, so ask for a few hundred; AB_PASSES=
// fwd,bwd_data,bwd_weights: only those)
// e.g. cp templates/engine/gemm.hpp /tmp/a.hpp, edit, then
//      npx tsx bench/ab.ts templates/engine/gemm.hpp /tmp/a.hpp templates/engine/gemm.hpp.new "1024 256 14 8 1 1 512 128"
// A change across several files: pass folders (e.g. git worktree copies of templates/ at two commits)
//      npx tsx bench/ab.ts templates /tmp/old/templates /tmp/new/templates "256 512 56 8 1 2 128 256"
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { compileMaskedConv, type CompileOptions, type MaskedConv } from '../src/index.js';
import { conv2d, type ConvSpec } from '../src/ir/conv.js';
import { takeArray } from '../src/runtime/pool.js';
import { keptAtRandom, rng } from '../test/util.js';
import { inBothOrders } from './alternate.js';
import { CoreDistance, FAR_NS } from './core-distance.js';

const [target, a, b, ...layers] = process.argv.slice(2);
if (!target || !a || !b || layers.length === 0) {
  console.error(
    'usage: npx tsx bench/ab.ts <template file> <version A> <version B> "C K H batch kernel stride keptC keptK" ...',
  );
  process.exit(2);
}
/** A file's content, or every file under a folder by its relative path. */
type Version = Map<string, Buffer>;
function read(path: string): Version {
  if (!statSync(path).isDirectory()) return new Map([['', readFileSync(path)]]);
  const files: Version = new Map();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.set(relative(path, full), readFileSync(full));
    }
  };
  walk(path);
  return files;
}
function install(version: Version): void {
  for (const [rel, content] of version) {
    const file = rel ? join(target, rel) : target;
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}
const versions = [read(a), read(b)];
const original = read(target);
// Each sample runs at least MIN_CALLS calls and ~SAMPLE_MS of them: tiny layers (tens of µs) moved
// 10-40% between processes at 3 calls a sample.
const ROUNDS = Number(process.env.AB_ROUNDS ?? 40),
  MIN_CALLS = 3,
  SAMPLE_MS = 2,
  WARMUP = 5;
// AB_COLD=1: every timed call starts with cold caches, as in the benchmark, where the other
// contenders run between two maskacc calls (a 64 MiB buffer is rewritten first, outside the timing).
const COLD = process.env.AB_COLD === '1';
const evict = COLD ? new Float32Array(16 << 20) : undefined;

/** n flags with k of them set, drawn with a fixed seed (AB_MASKS=random), else spread evenly. */
const keptFlags = (n: number, k: number) =>
  process.env.AB_MASKS === 'random' ? keptAtRandom(rng(n * 7919 + k), n, k) : spread(n, k);
/** n flags with k of them set, spread evenly. */
const spread = (n: number, k: number) =>
  Array.from({ length: n }, (_, i) => (Math.floor(((i + 1) * k) / n) > Math.floor((i * k) / n) ? 1 : 0));
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[xs.length >> 1];
const PASS_NAMES = ['fwd', 'bwd_data', 'bwd_weights'];
const PASSES = process.env.AB_PASSES?.split(',') ?? PASS_NAMES;
const distance = process.env.AB_PHASE === '1' ? new CoreDistance() : undefined;
/** Medians (ms) of versions [A, B] of one pass, over all rounds and over near / far ones (AB_PHASE). */
interface PassMedians {
  all: number[];
  near?: number[];
  far?: number[];
}

/** A layer as "C K H batch kernel stride keptC keptK" (square, padding (kernel-1)/2) or as a
 * JSON ConvSpec whose density gives the kept counts. */
function parseLayer(text: string): { spec: ConvSpec; keptC: number; keptK: number } {
  if (text.trim().startsWith('{')) {
    const { density, ...spec } = JSON.parse(text) as ConvSpec & { density?: { out?: number; in?: number } };
    const keptK = Math.round(spec.outChannels * (density?.out ?? 1)),
      keptC = Math.round(spec.inChannels * (density?.in ?? 1));
    return { spec, keptC, keptK };
  }
  const [C, K, H, batch, R, stride, keptC, keptK] = text.trim().split(/\s+/).map(Number);
  const spec = {
    batch,
    inChannels: C,
    outChannels: K,
    inHeight: H,
    inWidth: H,
    kernel: R,
    stride,
    padding: (R - 1) >> 1,
  };
  return { spec, keptC, keptK };
}

/** Medians of versions [A, B] per pass, builds loaded (and instances created) in `order`. */
async function measure(text: string, order: readonly number[]): Promise<PassMedians[]> {
  const { spec, keptC, keptK } = parseLayer(text);
  const { batch, inChannels: C, outChannels: K } = spec;
  const convs: MaskedConv[] = [];
  for (const j of order) {
    install(versions[j]);
    const conv = await compileMaskedConv(
      { ...spec, density: { out: keptK / K, in: keptC / C } },
      { respecialize: false, isa: (process.env.AB_ISA ?? 'auto') as CompileOptions['isa'] },
    );
    conv.setMasks({ out: keptFlags(K, keptK), in: keptFlags(C, keptC) });
    convs[j] = conv;
  }
  const layer = conv2d(spec);
  const x = new Float32Array(batch * C * layer.inHeight * layer.inWidth).map(Math.random),
    w = new Float32Array(K * C * layer.kernel[0] * layer.kernel[1]).map(Math.random),
    dy = new Float32Array(batch * K * layer.outHeight * layer.outWidth).map(Math.random);
  // Each version writes its own outputs: with one output array shared, the version compiled
  // second ran its direct forward 1.5x slower than the first on the very same code. They come
  // from the runtime's pool, 64-byte aligned as a user's allocated outputs are: plain
  // Float32Arrays fall at whatever offset the heap gives, and version A's always being
  // outputs[0] made two identical builds read 0.86-0.97x in both orders (64 -> 64 3x3 @8 b64).
  const outputs = convs.map(() => ({ y: takeArray(dy.length), dx: takeArray(x.length), dw: takeArray(w.length) }));
  const passes: ((j: number) => void)[] = [
    (j) => convs[j].forward(x, w, undefined, outputs[j].y),
    (j) => convs[j].backwardData(dy, w, outputs[j].dx),
    (j) => convs[j].backwardWeights(dy, x, outputs[j].dw),
  ];
  const medians = passes.map((pass, p) => {
    if (!PASSES.includes(PASS_NAMES[p])) return { all: [NaN, NaN] };
    const ms: number[][] = [[], []];
    const far: boolean[] = []; // per kept round (AB_PHASE)
    const t = performance.now();
    for (let i = 0; i < MIN_CALLS; i++) pass(0);
    const calls = Math.max(MIN_CALLS, Math.ceil((SAMPLE_MS * MIN_CALLS) / (performance.now() - t)));
    for (let round = 0; round < ROUNDS; round++) {
      if (distance && round >= WARMUP) far.push(distance.roundTripNs(1000) > FAR_NS);
      for (const j of round % 2 ? [1, 0] : [0, 1]) {
        if (evict) {
          evict.fill(round);
          const t0 = performance.now();
          pass(j);
          if (round >= WARMUP) ms[j].push(performance.now() - t0);
          continue;
        }
        const t0 = performance.now();
        for (let i = 0; i < calls; i++) pass(j);
        if (round >= WARMUP) ms[j].push((performance.now() - t0) / calls);
      }
    }
    const phase = (isFar: boolean) => {
      const kept = ms.map((xs) => xs.filter((_, i) => far[i] === isFar));
      return kept[0].length >= 5 ? kept.map(median) : undefined;
    };
    return { all: ms.map(median), near: distance && phase(false), far: distance && phase(true) };
  });
  convs.forEach((c) => c.dispose());
  return medians;
}

// Which build is loaded first matters by itself: two builds of one identical kernel (a comment
// apart), alternated in one process, read 0.88x in both orders of creating their instances
// (backward-data, 32->32 3x3 @16 b64), and the twin instances of one build 0.94-0.97x. So each
// comparison runs in two child processes, one loading A first, the other B first; the ratio
// reported is the geometric mean of the two (each process's ratio in brackets).
try {
  const both = await inBothOrders(async (reversed) => {
    const results: PassMedians[][] = [];
    for (const text of layers) results.push(await measure(text, reversed ? [1, 0] : [0, 1]));
    return results;
  });
  if (both) {
    const [ab, ba] = both;
    layers.forEach((text, l) => {
      const cells = PASS_NAMES.flatMap((name, p) => {
        if (!PASSES.includes(name)) return [];
        const cell = (m1?: number[], m2?: number[]) => {
          if (!m1 && !m2) return '-';
          if (!m1 || !m2) {
            // the phase came up in one order's process only: its ratio alone, order-biased
            const [m, order] = m1 ? [m1, 'A first'] : [m2!, 'B first'];
            return `${m[0].toFixed(3)}/${m[1].toFixed(3)} ms = ${(m[0] / m[1]).toFixed(3)}x (${order} only)`;
          }
          const r1 = m1[0] / m1[1],
            r2 = m2[0] / m2[1];
          const ta = Math.sqrt(m1[0] * m2[0]),
            tb = Math.sqrt(m1[1] * m2[1]);
          return `${ta.toFixed(3)}/${tb.toFixed(3)} ms = ${Math.sqrt(r1 * r2).toFixed(3)}x [${r1.toFixed(2)}, ${r2.toFixed(2)}]`;
        };
        const [x, y] = [ab[l][p], ba[l][p]];
        if (!distance) return `${name} ${cell(x.all, y.all)}`;
        return `${name} near ${cell(x.near, y.near)} far ${cell(x.far, y.far)}`;
      });
      console.log(`${text.padEnd(28)} A/B: ${cells.join('  ')}`);
    });
  }
} finally {
  install(original);
  await distance?.close();
}
