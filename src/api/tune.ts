// Opt-in tuning: time the engine families on one layer (one build holds every candidate), keep
// the fastest engine per pass, and persist the choice in a tuning file keyed by workload, ISA,
// CPU model and threads, so later compiles reuse it without timing anything. It builds and runs
// kernels, so it lives in api/, above codegen and runtime.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ConvLayer } from '../ir/conv.js';
import { PASS_NAMES, type PassName } from '../ir/passes.js';
import { cacheKey } from '../codegen/cache-key.js';
import type { NativeKernelClass } from '../codegen/compile.js';
import type { KernelUnit } from '../codegen/render.js';
import { choosePlan, type Strategy } from '../schedule/plan.js';
import { cpuModel, type Isa } from '../schedule/isa.js';
import { candidates } from '../schedule/candidates.js';
import { drawKept } from '../runtime/masks.js';

export interface TuningEntry {
  strategy: Strategy;
  /** Median ms per pass of the chosen engines and of the heuristic's plan, for the record. */
  tunedMs: number;
  heuristicMs: number;
  candidates: Record<string, { forward: number; backwardData: number; backwardWeights: number }>;
  layer: string;
  cpu: string;
  measuredAt: string;
}

/** The key of one workload on one machine: the layer (with densities), ISA, CPU model, threads. */
export function tuningKey(layer: ConvLayer, isa: Isa, threads: number): string {
  return cacheKey({ layer, isa: isa.name, cpu: cpuModel(), threads });
}

export function readTuning(file: string): Record<string, TuningEntry> {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return {}; // missing or unreadable: tune again, never fail the compile
  }
}

/** Merge one entry into the file (read-modify-rename, so a reader never sees half a file). */
export function writeTuning(file: string, key: string, entry: TuningEntry): void {
  const all = readTuning(file);
  all[key] = entry;
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(all, null, 1)}\n`);
  renameSync(tmp, file);
}

/** Timed rounds per candidate and pass (after one warm-up call), interleaved across candidates. */
const ROUNDS = 9;
/** Another engine replaces the heuristic's for a pass only when its median gain over it is at least this. */
const MARGIN = 1.05;

/**
 * Time every candidate family (built together as `units`) on random data, with kept channels
 * drawn at random at the layer's densities; returns the engine per pass. The candidates run in
 * interleaved rounds (each in a rotated order), so a round's times were taken under the same
 * load: another engine replaces the heuristic's only if the median over rounds of its per-round
 * gain reaches MARGIN. (Timed one after another, 4 calls each, the fastest family of a 1024 ->
 * 1024 1x1 @7 changed from run to run on a shared 2-core VM, with "gains" of 1.1-1.3x that
 * interleaved A/Bs did not confirm.)
 */
export function tuneLayer(
  layer: ConvLayer,
  isa: Isa,
  threads: number,
  units: readonly KernelUnit[],
  Kernel: NativeKernelClass,
  names: readonly string[],
): TuningEntry {
  const { batch: N, inChannels: C, outChannels: K } = layer;
  const [R, S] = layer.kernel;
  const x = randomArray(N * C * layer.inHeight * layer.inWidth),
    w = randomArray(K * C * R * S);
  const y = new Float32Array(N * K * layer.outHeight * layer.outWidth),
    dy = randomArray(y.length);
  const dx = new Float32Array(x.length),
    dw = new Float32Array(w.length);
  // Kept channels drawn at random, with the runs and gaps pruning leaves (evenly spread ones have
  // neither, and the weight packs and the zeros of pruned channels run differently on them).
  const kept = (n: number, density: number) => drawKept(n, Math.max(1, Math.round(n * density)), Math.random);
  const ko = kept(K, layer.density.out),
    ci = kept(C, layer.density.in);
  const passes = PASS_NAMES.filter((p) => p !== 'backwardData' || layer.inputGrad);
  // Every candidate's kernel at once (each with its own workspace), so the rounds can interleave them.
  const kernels = units.map((u) => new Kernel(u.ns, threads));
  const runs = kernels.map((k): Record<PassName, () => void> => ({
    forward: () => k.forward(x, w, null, y, ko, ci),
    backwardData: () => k.backwardData(dy, w, dx, ko, ci),
    backwardWeights: () => k.backwardWeights(dy, x, dw, null, ko, ci),
  }));
  const samples = names.map(
    () => ({ forward: [], backwardData: [], backwardWeights: [] }) as Record<PassName, number[]>,
  );
  try {
    for (const run of runs) for (const p of passes) run[p]();
    for (let round = 0; round < ROUNDS; round++)
      for (let j = 0; j < runs.length; j++) {
        const i = (j + round) % runs.length;
        for (const p of passes) {
          const t0 = performance.now();
          runs[i][p]();
          samples[i][p].push(performance.now() - t0);
        }
      }
  } finally {
    for (const k of kernels) k.dispose();
  }
  const times: Record<string, Record<PassName, number>> = {};
  names.forEach((n, i) => {
    times[n] = { forward: 0, backwardData: 0, backwardWeights: 0 };
    for (const p of passes) times[n][p] = median(samples[i][p]);
  });
  const heuristic = choosePlan(layer, isa, threads);
  const families = candidates(layer);
  // The family whose engine for pass p is the heuristic's (its time is the heuristic's).
  const heuristicFamily = (p: PassName) =>
    names.find((n) => families[n][p] === (heuristic[p]?.source ?? families[n][p]));
  const strategy: Strategy = {};
  let tunedMs = 0,
    heuristicMs = 0;
  for (const p of PASS_NAMES) {
    const own = heuristicFamily(p);
    let best = own ?? names.reduce((a, b) => (times[b][p] < times[a][p] ? b : a));
    if (own !== undefined && passes.includes(p)) {
      const o = names.indexOf(own);
      let bestGain = MARGIN;
      names.forEach((n, i) => {
        const gain = median(samples[o][p].map((t, r) => t / samples[i][p][r]));
        if (i !== o && gain >= bestGain && times[n][p] < times[own][p]) [best, bestGain] = [n, gain];
      });
    }
    (strategy as Record<PassName, string>)[p] = families[best][p]!;
    tunedMs += times[best][p];
    heuristicMs += own !== undefined ? times[own][p] : NaN;
  }
  return {
    strategy,
    tunedMs,
    heuristicMs,
    candidates: times,
    layer: JSON.stringify(layer),
    cpu: cpuModel(),
    measuredAt: new Date().toISOString(),
  };
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}

function randomArray(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() - 0.5;
  return a;
}
