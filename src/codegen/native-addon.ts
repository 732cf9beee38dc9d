// Builds (or fetches from the kernel cache) a fixed native addon from a source folder under
// native/: not specialized per layer, keyed by its sources, flags, compiler and `extraKey`.
// Shared by the training ops (native/train-ops) and the runtime pool (native/runtime).

import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { addonFlags, buildAddon, compilerId } from './build.js';
import { getOrBuildArtifact } from './cache.js';
import { cacheKey } from './cache-key.js';
import { GENERATOR_VERSION, TEMPLATE_DIR, renderCMakeLists } from './render.js';

const require = createRequire(import.meta.url);
const loaded = new Map<string, Promise<unknown>>();

export interface NativeAddonSpec {
  /** Folder name under native/ (its module.cpp is the entry; every file is part of the key). */
  kind: string;
  cacheDir: string;
  /** Extra sources compiled with their own flags (e.g. ISA flags). */
  units: readonly { file: string; flags: readonly string[] }[];
  /** Files from elsewhere in the package copied into the build under another name (part of the key). */
  headers?: readonly { from: string; as: string }[];
  /** Extra compile flags for every source (e.g. include dirs). */
  cxxFlags?: readonly string[];
  /** Anything else that changes the binary (ISA, Node version). */
  extraKey: Record<string, string>;
  log?: (line: string) => void;
}

/** Load the addon, building it once per cache; concurrent callers share one promise. */
export function loadNativeAddon<T>(spec: NativeAddonSpec): Promise<T> {
  const dir = join(TEMPLATE_DIR, '..', 'native', spec.kind);
  const sources = Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
  );
  for (const h of spec.headers ?? []) sources[h.as] = readFileSync(join(TEMPLATE_DIR, '..', h.from), 'utf8');
  const flags = addonFlags(); // sanitized with the kernels under MASKACC_SANITIZE
  const cmake = (target: string) =>
    renderCMakeLists({
      target,
      baseFlags: [...flags.cxx, ...(spec.cxxFlags ?? [])],
      linkFlags: flags.link,
      units: spec.units,
    });
  const key = cacheKey({
    generator: GENERATOR_VERSION,
    kind: spec.kind,
    sources,
    cmake: cmake('TARGET'),
    compiler: compilerId(),
    ...spec.extraKey,
  });
  const id = `${spec.cacheDir}\0${key}`;
  let addon = loaded.get(id) as Promise<T> | undefined;
  if (!addon) {
    const target = `maskacc_${spec.kind.replace(/\W/g, '_')}_${key.slice(0, 16)}`;
    addon = getOrBuildArtifact({
      cacheDir: spec.cacheDir,
      key,
      meta: { generator: GENERATOR_VERSION, compiler: compilerId(), kind: spec.kind, ...spec.extraKey },
      build: async (buildDir) => {
        spec.log?.(`maskacc: compiling ${spec.kind} -> ${target}`);
        mkdirSync(buildDir, { recursive: true });
        for (const [file, text] of Object.entries(sources)) writeFileSync(join(buildDir, file), text);
        writeFileSync(join(buildDir, 'CMakeLists.txt'), cmake(target));
        return buildAddon(buildDir, target, 'module.cpp', availableParallelism());
      },
    }).then((path) => require(path) as T);
    loaded.set(id, addon);
    addon.catch(() => loaded.delete(id));
  }
  return addon;
}
