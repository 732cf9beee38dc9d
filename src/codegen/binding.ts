// The Node binding of kernel addons (templates/binding.cpp) is the same source in every addon, and
// node-addon-api makes it the slowest file of a small build (~3 s, as long as a layer kernel). The
// JIT builds it once per compiler and flags into a static archive in the kernel cache and links that
// into each addon, so an addon compiles only its layers and a tiny table of them (module.cpp).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AddonFlags, buildAddon, compilerId, NODE_ADDON_API_DIR } from './build.js';
import { getOrBuildArtifact } from './cache.js';
import { cacheKey } from './cache-key.js';
import { GENERATOR_VERSION, TEMPLATE_DIR, renderBindingCMakeLists } from './render.js';

const cmake = (target: string, flags: AddonFlags) => renderBindingCMakeLists({ target, baseFlags: flags.cxx });

/** The binding archive's cache key: its sources, build file, compiler, flags and node-addon-api. */
export function kernelBindingKey(flags: AddonFlags): string {
  return cacheKey({
    generator: GENERATOR_VERSION,
    kind: 'kernel-binding',
    sources: ['binding.cpp', 'layer-abi.hpp'].map((f) => readFileSync(join(TEMPLATE_DIR, f), 'utf8')),
    cmake: cmake('TARGET', flags),
    compiler: compilerId(),
    nodeAddonApi: JSON.parse(readFileSync(join(NODE_ADDON_API_DIR, 'package.json'), 'utf8')).version,
    napiVersion: 8,
  });
}

/** The archive's path in `cacheDir`, built on the first call for these flags and compiler. */
export function kernelBindingArchive(cacheDir: string, flags: AddonFlags): Promise<string> {
  const key = kernelBindingKey(flags);
  const target = `maskacc_binding_${key.slice(0, 16)}`;
  return getOrBuildArtifact({
    cacheDir,
    key,
    extension: 'a',
    meta: { generator: GENERATOR_VERSION, compiler: compilerId(), kind: 'kernel-binding', sanitize: flags.sanitize },
    build: async (workDir) => {
      writeFileSync(join(workDir, 'CMakeLists.txt'), cmake(target, flags));
      return buildAddon(workDir, target, join(TEMPLATE_DIR, 'binding.cpp'), 2, { artifact: `${target}.a` });
    },
  });
}
