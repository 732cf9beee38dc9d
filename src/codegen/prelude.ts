// The precompiled prelude: templates/prelude.hpp (immintrin.h and the std headers, a third of a
// one-layer compile) built once per compiler, base flags and ISA flags into a GCC precompiled
// header in the kernel cache. A kernel build links it into its folder as `<dir>/prelude.hpp.gch`
// next to a copy of prelude.hpp and compiles each translation unit of those flags with
// `-include <dir>/prelude.hpp`; GCC takes the .gch when it was built with the same options and
// otherwise parses the header (slower, never wrong).

import { copyFileSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { type AddonFlags, compilerId, run } from './build.js';
import { getOrBuildArtifact } from './cache.js';
import { cacheKey } from './cache-key.js';
import { GENERATOR_VERSION, TEMPLATE_DIR } from './render.js';

const PRELUDE = join(TEMPLATE_DIR, 'prelude.hpp');

/**
 * What CMake passes when it compiles a kernel translation unit (templates/CMakeLists.txt.hbs): the
 * definitions, cmake-js' BUILDING_NODE_EXTENSION, the Release flags, -fPIC of a shared library, our
 * base flags, OpenMP, the C++ standard, then the unit's ISA flags. A PCH is used only by compiles
 * with the same options; test/codegen/prelude.test.ts compares this list with CMake's commands.
 */
export function preludeCompileFlags(flags: AddonFlags, isaFlags: readonly string[]): string[] {
  return [
    '-DNAPI_CPP_EXCEPTIONS',
    '-DNAPI_VERSION=8',
    '-DNODE_ADDON_API_CPP_EXCEPTIONS_ALL',
    '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    '-DBUILDING_NODE_EXTENSION',
    '-O3',
    '-DNDEBUG',
    '-fPIC',
    ...flags.cxx,
    '-fopenmp',
    '-std=gnu++17',
    ...isaFlags,
  ];
}

/**
 * The cached precompiled prelude for these flags, or undefined when the compiler cannot build one
 * (the kernels then parse prelude.hpp as a header: a slower build, the same binary).
 */
export async function preludePch(
  cacheDir: string,
  flags: AddonFlags,
  isaFlags: readonly string[],
): Promise<string | undefined> {
  const args = preludeCompileFlags(flags, isaFlags);
  const cxx = process.env.CXX ?? 'c++';
  const key = cacheKey({
    generator: GENERATOR_VERSION,
    kind: 'prelude-pch',
    prelude: readFileSync(PRELUDE, 'utf8'),
    compiler: compilerId(),
    cxx,
    args,
  });
  try {
    return await getOrBuildArtifact({
      cacheDir,
      key,
      extension: 'gch',
      meta: { generator: GENERATOR_VERSION, compiler: compilerId(), kind: 'prelude-pch', args },
      build: async (workDir) => {
        const out = join(workDir, 'prelude.hpp.gch');
        const result = await run(cxx, [...args, '-x', 'c++-header', PRELUDE, '-o', out], workDir);
        if (result.code !== 0) throw new Error(`${cxx} exited with ${result.code}: ${result.text}`);
        return out;
      },
    });
  } catch {
    return undefined;
  }
}

/**
 * Puts `pch` into `dir` as prelude.hpp.gch (a link into the cache) with prelude.hpp beside it and
 * returns the -include argument for the translation units compiled with the PCH's flags.
 */
export function linkPrelude(pch: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  copyFileSync(PRELUDE, join(dir, 'prelude.hpp'));
  symlinkSync(pch, join(dir, 'prelude.hpp.gch'));
  return join(dir, 'prelude.hpp');
}
