// The library entry: compileMaskedConv(spec) runs ir -> schedule -> codegen -> runtime and returns
// a ready MaskedConv. compileMaskedConvs batches many layers into one addon (one build). The api
// layer: compile, tuning (tune.ts) and re-specialization sit here, above codegen and runtime.

import { availableParallelism } from 'node:os';
import { conv2d, type ConvLayer, type ConvSpec } from '../ir/conv.js';
import { PASSES, PASS_NAMES, type PassName } from '../ir/passes.js';
import { choosePlan, type Strategy } from '../schedule/plan.js';
import { readTuning, tuneLayer, tuningKey, writeTuning } from './tune.js';
import { candidates } from '../schedule/candidates.js';
import { join } from 'node:path';
import { ISAS, ISA_PREFERENCE, cpuModel, hostIsa, isaSupported, type IsaName } from '../schedule/isa.js';
import { compileUnits } from '../codegen/compile.js';
import type { KernelUnit } from '../codegen/render.js';
import { defaultCacheDir, type CacheEvent } from '../codegen/cache.js';
import { MaskedConv, type Respecializer } from '../runtime/masked-conv.js';
import { diagnosticLine, diagnosticsSink, type DiagnosticsSink } from '../runtime/diagnostics.js';
import { loadPool, poolText } from '../runtime/pool.js';
import { ArgumentError, IsaError } from '../errors.js';

export interface CompileOptions {
  /** false (default): hard masks, pruned filters get no gradient; true: soft/feedback pruning. */
  gradOfPrunedFilters?: boolean;
  /** Default 'auto' (best the CPU runs); an explicit ISA the CPU lacks is refused. */
  isa?: 'auto' | IsaName;
  /** Threads per call; default MASKACC_NUM_THREADS or the number of CPUs. */
  threads?: number;
  /** Addon cache; default MASKACC_CACHE_DIR or the user cache dir (env-paths). */
  cacheDir?: string;
  /** Progress lines on stderr while compiling; default: when stderr is a terminal or MASKACC_VERBOSE is set. */
  verbose?: boolean;
  /** Expert override of the gather strategy per pass (default: the scheduler's heuristic). */
  strategy?: Strategy;
  /**
   * Diagnostics, one line per event (cache, compile, each call with its time and GFLOP/s):
   * true prints to stderr, a function receives the lines. Default: MASKACC_VERBOSE=1.
   */
  diagnostics?: boolean | DiagnosticsSink;
  /**
   * Re-specialize in the background when setMasks leaves the compiled density regime (default
   * true); results are right either way, the switch only changes speed.
   */
  respecialize?: boolean;
  /**
   * Opt-in tuning (default false): time the engine families on each layer once (seconds) and
   * keep the fastest per pass in the tuning file; later compiles reuse it without tuning.
   */
  tune?: boolean;
  /** Default MASKACC_TUNING_FILE or `<cacheDir>/tuning.json`. */
  tuningFile?: string;
  /** Cache and build events (hit, miss, built, ...), for diagnostics and tests. */
  onCacheEvent?: (e: CacheEvent) => void;
}

export async function compileMaskedConv(spec: ConvSpec | ConvLayer, options: CompileOptions = {}): Promise<MaskedConv> {
  const [conv] = await compileMaskedConvs([spec], options);
  return conv;
}

/** Compile several layers into one addon: one cmake run, translation units built in parallel. */
export async function compileMaskedConvs(
  specs: readonly (ConvSpec | ConvLayer)[],
  options: CompileOptions = {},
): Promise<MaskedConv[]> {
  if (!Array.isArray(specs)) throw new ArgumentError('specs', specs, 'an array of conv specs');
  const [convs] = await compileMaskedConvGroups([{ specs }], options);
  return convs;
}

/** The options a group of layers may set for itself in compileMaskedConvGroups. */
const GROUP_OPTIONS = ['isa', 'strategy', 'gradOfPrunedFilters'] as const;
export type GroupOptions = Pick<CompileOptions, (typeof GROUP_OPTIONS)[number]>;

/**
 * Groups of layers, each with its own ISA, strategy and gradient policy, in one addon: a build's
 * fixed cost (cmake configure, the binding, the link: 2-3 s) is paid once, not per group. The
 * reference tests and the fuzzer put every case of a run into one build this way. `options` holds
 * what the groups share; a group's own options override it.
 */
export async function compileMaskedConvGroups(
  groups: readonly { specs: readonly (ConvSpec | ConvLayer)[]; options?: GroupOptions }[],
  options: CompileOptions = {},
): Promise<MaskedConv[][]> {
  if (!Array.isArray(groups)) throw new ArgumentError('groups', groups, 'an array of { specs, options }');
  const shared = resolveOptions(options);
  const resolved = groups.map((g, gi) => {
    if (!Array.isArray(g?.specs)) throw new ArgumentError(`groups[${gi}].specs`, g?.specs, 'an array of conv specs');
    const own = g.options ?? {};
    for (const k of Object.keys(own))
      if (!(GROUP_OPTIONS as readonly string[]).includes(k))
        throw new ArgumentError(
          `groups[${gi}].options.${k}`,
          (own as Record<string, unknown>)[k],
          GROUP_OPTIONS.join(', '),
        );
    const opts = resolveOptions({ ...options, ...own });
    const specs: readonly (ConvSpec | ConvLayer)[] = g.specs;
    const layers = specs.map((s, i) => {
      try {
        return conv2d(s as ConvSpec);
      } catch (e) {
        if (specs.length > 1 && e instanceof Error) e.message = `specs[${i}]: ${e.message}`;
        throw e;
      }
    });
    return { opts, layers };
  });
  const sink = diagnosticsSink(options.diagnostics);
  const build = (u: readonly KernelUnit[]) =>
    compileUnits(u, {
      cacheDir: shared.cacheDir,
      jobs: Math.max(1, availableParallelism()),
      onEvent: (e) => {
        options.onCacheEvent?.(e);
        sink?.(
          diagnosticLine(
            'cache',
            e.type,
            e.key.slice(0, 16),
            `layers=${u.length}`,
            `isa=${[...new Set(u.map((unit) => unit.plan.isa))].join('+')}`,
            ...(e.ms !== undefined ? [`ms=${e.ms.toFixed(1)}`] : []),
          ),
        );
      },
      log: shared.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined,
    });
  // Identical layers (a ResNet repeats one shape many times) share one compiled unit.
  const unitOf = new Map<string, KernelUnit>();
  const layerUnits: KernelUnit[][] = [];
  for (const { opts, layers } of resolved) {
    const units: KernelUnit[] = [];
    for (const layer of layers) {
      const strategy = await tunedStrategy(layer, opts, build, sink);
      const plan = choosePlan(layer, hostIsa(opts.isa), opts.threads, strategy);
      const id = JSON.stringify([layer, plan]);
      if (!unitOf.has(id)) unitOf.set(id, { ns: `layer${unitOf.size}`, layer, plan, cxxFlags: [] });
      units.push(unitOf.get(id)!);
    }
    layerUnits.push(units);
  }
  const [{ Kernel, key }] = await Promise.all([
    build([...unitOf.values()]),
    loadPool(shared.cacheDir, shared.verbose ? (line) => process.stderr.write(`${line}\n`) : undefined),
  ]);
  sink?.(diagnosticLine('pool', poolText().replace(/,/g, ';')));
  return layerUnits.map((units, gi) => {
    const opts = resolved[gi].opts;
    return units.map((u) => {
      // Re-specialization builds this one layer again with the densities its masks now have.
      const respecializer: Respecializer | undefined = opts.respecialize
        ? {
            planFor: (density) =>
              choosePlan(conv2d({ ...specOf(u.layer), density }), hostIsa(opts.isa), opts.threads, opts.strategy),
            build: async (plan, density) => {
              const unit = { ns: 'layer0', layer: conv2d({ ...specOf(u.layer), density }), plan, cxxFlags: [] };
              const built = await build([unit]);
              return { native: new built.Kernel(unit.ns, opts.threads), cacheKey: built.key };
            },
          }
        : undefined;
      return new MaskedConv(
        u.layer,
        u.plan,
        new Kernel(u.ns, opts.threads),
        opts.threads,
        key,
        opts.gradOfPrunedFilters,
        sink,
        respecializer,
      );
    });
  });
}

/**
 * The strategy for a layer: the user's, else a tuned one from the tuning file, else (with
 * `tune`) a fresh measurement that is saved there, else none (the scheduler's heuristic).
 */
async function tunedStrategy(
  layer: ConvLayer,
  opts: ResolvedOptions,
  build: (u: readonly KernelUnit[]) => ReturnType<typeof compileUnits>,
  sink: DiagnosticsSink | undefined,
): Promise<Strategy> {
  if (Object.keys(opts.strategy).length > 0) return opts.strategy;
  const isa = hostIsa(opts.isa);
  const key = tuningKey(layer, isa, opts.threads);
  const known = readTuning(opts.tuningFile)[key];
  if (known) {
    sink?.(diagnosticLine('tune', 'hit', key.slice(0, 16), JSON.stringify(known.strategy).replace(/,/g, ';')));
    return known.strategy;
  }
  if (!opts.tune) return {};
  const t0 = performance.now();
  const families = candidates(layer);
  const names = Object.keys(families);
  const units = names.map((n, i) => ({
    ns: `layer${i}`,
    layer,
    plan: choosePlan(layer, isa, opts.threads, families[n]),
    cxxFlags: [],
  }));
  const { Kernel } = await build(units);
  const entry = tuneLayer(layer, isa, opts.threads, units, Kernel, names);
  writeTuning(opts.tuningFile, key, entry);
  sink?.(
    diagnosticLine(
      'tune',
      'run',
      key.slice(0, 16),
      `ms=${(performance.now() - t0).toFixed(0)}`,
      `heuristic=${entry.heuristicMs.toFixed(3)}`,
      `tuned=${entry.tunedMs.toFixed(3)}`,
    ),
  );
  return entry.strategy;
}

/** A ConvSpec equal to a layer (for re-planning it at other densities). */
function specOf(l: ConvLayer): ConvSpec {
  return {
    batch: l.batch,
    inChannels: l.inChannels,
    outChannels: l.outChannels,
    inHeight: l.inHeight,
    inWidth: l.inWidth,
    kernel: [...l.kernel],
    stride: [...l.stride],
    padding: [...l.padding],
    dilation: [...l.dilation],
    bias: l.bias,
  };
}

interface ResolvedOptions {
  gradOfPrunedFilters: boolean;
  isa: IsaName;
  threads: number;
  cacheDir: string;
  verbose: boolean;
  strategy: Strategy;
  respecialize: boolean;
  tune: boolean;
  tuningFile: string;
}

function resolveOptions(o: CompileOptions): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw new ArgumentError('options', o, 'an object');
  const known = new Set([
    'gradOfPrunedFilters',
    'isa',
    'threads',
    'cacheDir',
    'verbose',
    'onCacheEvent',
    'strategy',
    'diagnostics',
    'respecialize',
    'tune',
    'tuningFile',
  ]);
  for (const k of Object.keys(o))
    if (!known.has(k))
      throw new ArgumentError(`options.${k}`, (o as Record<string, unknown>)[k], 'no such option (typo?)');
  if (o.gradOfPrunedFilters !== undefined && typeof o.gradOfPrunedFilters !== 'boolean') {
    throw new ArgumentError('options.gradOfPrunedFilters', o.gradOfPrunedFilters, 'a boolean');
  }
  const isa = resolveIsa(o.isa ?? 'auto');
  let threads = o.threads;
  if (threads === undefined && process.env.MASKACC_NUM_THREADS) {
    threads = Number(process.env.MASKACC_NUM_THREADS);
    if (!Number.isInteger(threads) || threads < 1) {
      throw new ArgumentError('MASKACC_NUM_THREADS', process.env.MASKACC_NUM_THREADS, 'a positive integer');
    }
  }
  threads ??= availableParallelism();
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024)
    throw new ArgumentError('options.threads', threads, 'an integer in [1, 1024]');
  if (o.cacheDir !== undefined && (typeof o.cacheDir !== 'string' || o.cacheDir === '')) {
    throw new ArgumentError('options.cacheDir', o.cacheDir, 'a non-empty directory path');
  }
  if (o.diagnostics !== undefined && typeof o.diagnostics !== 'boolean' && typeof o.diagnostics !== 'function') {
    throw new ArgumentError('options.diagnostics', o.diagnostics, 'a boolean or a function receiving lines');
  }
  if (o.onCacheEvent !== undefined && typeof o.onCacheEvent !== 'function')
    throw new ArgumentError('options.onCacheEvent', o.onCacheEvent, 'a function');
  const strategy = validateStrategy(o.strategy);
  const cacheDir = o.cacheDir ?? defaultCacheDir();
  if (o.tune !== undefined && typeof o.tune !== 'boolean') throw new ArgumentError('options.tune', o.tune, 'a boolean');
  if (o.tuningFile !== undefined && (typeof o.tuningFile !== 'string' || o.tuningFile === '')) {
    throw new ArgumentError('options.tuningFile', o.tuningFile, 'a file path');
  }
  if (o.respecialize !== undefined && typeof o.respecialize !== 'boolean')
    throw new ArgumentError('options.respecialize', o.respecialize, 'a boolean');
  const verbose = o.verbose ?? (Boolean(process.stderr.isTTY) || Boolean(process.env.MASKACC_VERBOSE));
  return {
    gradOfPrunedFilters: o.gradOfPrunedFilters ?? false,
    isa,
    threads,
    cacheDir,
    verbose,
    strategy,
    respecialize: o.respecialize ?? true,
    tune: o.tune ?? false,
    tuningFile: o.tuningFile ?? process.env.MASKACC_TUNING_FILE ?? join(cacheDir, 'tuning.json'),
  };
}

function resolveIsa(isa: unknown): IsaName {
  if (isa === 'auto') return ISA_PREFERENCE.find((n) => isaSupported(ISAS[n]))!;
  if (typeof isa !== 'string' || !(isa in ISAS)) {
    throw new IsaError(
      String(isa),
      `unknown; expected one of 'auto', ${ISA_PREFERENCE.map((n) => `'${n}'`).join(', ')}`,
    );
  }
  const name = isa as IsaName;
  if (!isaSupported(ISAS[name])) {
    throw new IsaError(name, `this CPU (${cpuModel()}) lacks ${ISAS[name].cpuFlags.join('/')}`);
  }
  return name;
}

function validateStrategy(s: unknown): Strategy {
  if (s === undefined) return {};
  if (s === null || typeof s !== 'object')
    throw new ArgumentError('options.strategy', s, 'an object { forward?, backwardData?, backwardWeights? }');
  for (const [pass, value] of Object.entries(s)) {
    if (!Object.hasOwn(PASSES, pass))
      throw new ArgumentError(`options.strategy.${pass}`, value, `one of ${PASS_NAMES.join(', ')}`);
    const allowed: readonly string[] = PASSES[pass as PassName].strategies;
    if (value !== undefined && !allowed.includes(value as string)) {
      throw new ArgumentError(`options.strategy.${pass}`, value, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
    }
  }
  return s as Strategy;
}
