// Turns kernel units (layer + plan + ISA) into a loaded addon: renders the sources, computes the
// cache key from everything that changes the binary, and builds on a cache miss only.

import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ISAS } from '../schedule/isa.js';
import { layerText } from '../ir/conv.js';
import type { PassArgs, PassName } from '../ir/passes.js';
import { cacheKey } from './cache-key.js';
import { progress } from './progress.js';
import { getOrBuildArtifact, type CacheEvent } from './cache.js';
import { kernelBindingArchive } from './binding.js';
import { linkPrelude, preludePch } from './prelude.js';
import { type AddonFlags, addonFlags, asanRuntimeLoaded, buildAddon, compilerId } from './build.js';
import { MaskaccError } from '../errors.js';
import {
  GENERATOR_VERSION,
  type KernelUnit,
  renderCMakeLists,
  renderKernel,
  renderModule,
  templateSources,
} from './render.js';

const require = createRequire(import.meta.url);

/** The native side of one layer: `new ctor(threads)` gives the kernel object. */
export type ForwardArgs = PassArgs<'forward'>;
export type BackwardDataArgs = PassArgs<'backwardData'>;
export type BackwardWeightsArgs = PassArgs<'backwardWeights'>;
/**
 * One method per pass of the table (ir/passes.ts) with its argument tuple; `<pass>Async` is the
 * same call on the libuv thread pool, one call at a time per kernel (else "kernel is busy").
 */
export type NativeKernel = { [P in PassName]: (...args: PassArgs<P>) => void } & {
  [P in PassName as `${P}Async`]: (...args: PassArgs<P>) => Promise<void>;
} & {
  /** Free the packing workspace now; later calls throw. */
  dispose(): void;
};
/** The addon's binding class: `new Kernel(layerName, threads)`. */
export type NativeKernelClass = new (layer: string, threads: number) => NativeKernel;

export interface BuildOptions {
  cacheDir: string;
  /** Parallel compiler jobs (translation units build concurrently). */
  jobs: number;
  onEvent?: (e: CacheEvent) => void;
  /** Progress for long compiles on stderr (a live line on a terminal, plain lines otherwise); any function turns it on. */
  log?: (line: string) => void;
}

/**
 * Everything that changes the binary, in one place (see test/codegen: a template edit changes it).
 * The flags carry MASKACC_SANITIZE, so sanitized and normal binaries never share a key.
 */
export function addonKey(
  units: readonly KernelUnit[],
  templates = templateSources(),
  flags: AddonFlags = addonFlags(),
): string {
  return cacheKey({
    generator: GENERATOR_VERSION,
    templates,
    compiler: compilerId(),
    baseFlags: flags.cxx,
    linkFlags: flags.link,
    napiVersion: 8,
    units: units.map((u) => ({ ns: u.ns, layer: u.layer, plan: u.plan, flags: u.cxxFlags })),
  });
}

/** Build (or fetch from the cache) one addon holding `units`; `new Kernel(unit.ns, threads)` runs one. */
export async function compileUnits(
  units: readonly KernelUnit[],
  opts: BuildOptions,
): Promise<{
  Kernel: NativeKernelClass;
  key: string;
  path: string;
}> {
  const flags = addonFlags();
  if (flags.sanitize.includes('address') && !asanRuntimeLoaded()) {
    // Checked before building: dlopen of an ASan-instrumented addon into a plain node kills the
    // process (the runtime must come first), it does not throw.
    throw new MaskaccError(
      `MASKACC_SANITIZE=${process.env.MASKACC_SANITIZE} builds ASan-instrumented kernels, which load only into a process ` +
        'started with the ASan runtime preloaded: LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 node ... ' +
        '(npm run test:sanitize does this), or unset MASKACC_SANITIZE',
    );
  }
  const key = addonKey(units, templateSources(), flags);
  const target = `maskacc_${key.slice(0, 16)}`;
  const path = await getOrBuildArtifact({
    cacheDir: opts.cacheDir,
    key,
    meta: {
      generator: GENERATOR_VERSION,
      compiler: compilerId(),
      sanitize: flags.sanitize,
      units: units.map((u) => ({ ns: u.ns, layer: layerText(u.layer), plan: u.plan })),
    },
    onEvent: opts.onEvent,
    build: async (workDir) => {
      const started = Date.now();
      const bar = opts.log ? progress() : undefined;
      bar?.update(
        `maskacc: compiling ${units.length} kernel(s) [${[...new Set(units.map((u) => u.plan.isa))].join(', ')}] -> ${target}`,
      );
      try {
        // The binding and the precompiled preludes come from the cache (built there once). Either
        // may fail to build on its own: the addon then compiles binding.cpp, or parses prelude.hpp,
        // itself, and a real toolchain problem shows in its build.
        const isaFlags = [...new Map(units.map((u) => unitFlags(u)).map((f) => [f.join(' '), f])).values()];
        const [archive, ...pchs] = await Promise.all([
          kernelBindingArchive(opts.cacheDir, flags).catch(() => undefined),
          ...isaFlags.map((f) => preludePch(opts.cacheDir, flags, f)),
        ]);
        const preludes = new Map<string, string>();
        pchs.forEach((pch, i) => {
          if (pch) preludes.set(isaFlags[i].join(' '), linkPrelude(pch, join(workDir, `prelude-${i}`)));
        });
        const { layerFiles } = writeAddonSources(workDir, units, key, target, flags, { preludes, jobs: opts.jobs });
        const built = await buildAddon(workDir, target, layerFiles[0] ?? 'module.cpp', opts.jobs, {
          defines: archive ? { MASKACC_BINDING_ARCHIVE: archive } : {},
        });
        bar?.done(`maskacc: compiled ${target} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return built;
      } catch (e) {
        bar?.done(`maskacc: compiling ${target} failed`);
        throw e;
      }
    },
  });
  const addon = require(path) as { Kernel: NativeKernelClass };
  return { Kernel: addon.Kernel, key, path };
}

/**
 * Write an addon's sources into `dir`: one `<ns>.cpp` per unit, built a few to a translation unit
 * of the same ISA flags, module.cpp (the table of layers the binding reads) and CMakeLists.txt.
 * The headers they include and binding.cpp stay in the package (HEADER_DIR). Returns the layer
 * files and the files that group them. `flags` defaults to a normal build whatever the environment
 * says: ahead-of-time sources must not depend on it.
 */
export function writeAddonSources(
  dir: string,
  units: readonly KernelUnit[],
  key: string,
  target: string,
  flags: AddonFlags = addonFlags([]),
  /** The JIT's build: precompiled preludes by ISA flags (prelude.ts) and its parallel jobs. */
  jit: { preludes: ReadonlyMap<string, string>; jobs: number } = { preludes: new Map(), jobs: 1 },
): { layerFiles: string[]; unityFiles: string[] } {
  mkdirSync(dir, { recursive: true });
  const files = units.map((u) => ({ file: `${u.ns}.cpp`, flags: unitFlags(u) }));
  units.forEach((u, i) => writeFileSync(join(dir, files[i].file), renderKernel(u)));
  // A precompiled prelude for a unit's flags is force-included (prelude.ts); the layer's own include is then a no-op.
  const translationUnits = groupTranslationUnits(files, jit).map((tu) => {
    const prelude = jit.preludes.get(tu.flags.join(' '));
    return prelude ? { ...tu, flags: [...tu.flags, '-include', prelude] } : tu;
  });
  const unityFiles = translationUnits.filter((tu) => tu.layers.length > 1);
  for (const tu of unityFiles) writeFileSync(join(dir, tu.file), renderUnityFile(tu.layers));
  writeFileSync(join(dir, 'module.cpp'), renderModule(units, key));
  writeFileSync(
    join(dir, 'CMakeLists.txt'),
    renderCMakeLists({
      target,
      baseFlags: flags.cxx,
      linkFlags: flags.link,
      units: translationUnits,
      kernelBinding: true,
    }),
  );
  return { layerFiles: files.map((f) => f.file), unityFiles: unityFiles.map((tu) => tu.file) };
}

/** A layer's compile flags beyond the base ones: its ISA's and its own. */
function unitFlags(u: KernelUnit): string[] {
  return [...ISAS[u.plan.isa].cxxFlags, ...u.cxxFlags];
}

/**
 * Layers per translation unit. The std, OpenMP and intrinsics headers cost a third of a one-layer
 * kernel's compile (1.4 of 3.8 s at -O2 on a Zen 3), so a few layers with the same flags share one
 * unit, while enough units remain for parallel jobs: at least two for two layers or more (fixed
 * counts, so ahead-of-time sources do not depend on the machine that wrote them). With the
 * precompiled prelude (the JIT) a unit costs little more than its layers, and there are at least
 * two units per job, so the jobs spread evenly over the cores (9 layers as units of 3, 3 and 3 left
 * one of two cores idle for a third of the build); big builds keep units of four (one layer a unit
 * made the 165-layer build of the kernels test slower, 187 -> 202 s).
 */
const LAYERS_PER_TRANSLATION_UNIT = 4;
const MIN_TRANSLATION_UNITS = 2;

interface TranslationUnit {
  file: string;
  flags: readonly string[];
  layers: readonly string[];
}

/**
 * Same-flag layer files in runs of about LAYERS_PER_TRANSLATION_UNIT: two runs at least, or two a
 * job where the JIT precompiled their prelude; a run of one compiles as is.
 */
function groupTranslationUnits(
  files: readonly { file: string; flags: readonly string[] }[],
  jit: { preludes: ReadonlyMap<string, string>; jobs: number },
): TranslationUnit[] {
  const byFlags = new Map<string, { file: string; flags: readonly string[] }[]>();
  for (const f of files) {
    const k = f.flags.join(' ');
    if (!byFlags.has(k)) byFlags.set(k, []);
    byFlags.get(k)!.push(f);
  }
  const out: TranslationUnit[] = [];
  for (const [flags, group] of byFlags) {
    const least = jit.preludes.has(flags) ? 2 * jit.jobs : MIN_TRANSLATION_UNITS;
    const count = Math.max(Math.ceil(group.length / LAYERS_PER_TRANSLATION_UNIT), Math.min(group.length, least));
    for (let g = 0; g < count; g++) {
      // Equal runs: 9 layers make units of 3, 3 and 3, not 4, 4 and 1.
      const run = group.slice(Math.floor((g * group.length) / count), Math.floor(((g + 1) * group.length) / count));
      const file = run.length === 1 ? run[0].file : `unity_${out.length}.cpp`;
      out.push({ file, flags: run[0].flags, layers: run.map((f) => f.file) });
    }
  }
  return out;
}

function renderUnityFile(layers: readonly string[]): string {
  return [
    '// maskacc generated: these layer kernels compile as one translation unit (the headers they share',
    '// parse once); each stays in its own file and namespace. Do not edit.',
    ...layers.map((l) => `#include "${l}"`),
    '',
  ].join('\n');
}
