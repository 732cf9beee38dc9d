// Builds an addon from rendered sources with cmake-js (offline: Node-API headers come from the
// node-api-headers package). Throws CompileError with the compiler output on failure.

import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { ArgumentError, CompileError } from '../errors.js';
import { diagnoseToolchain, formatToolchain } from './toolchain.js';
import { HEADER_DIR } from './render.js';

const require = createRequire(import.meta.url);

export const NODE_ADDON_API_DIR = dirname(require.resolve('node-addon-api/package.json'));
const CMAKE_JS_BIN = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');

/**
 * Flags of every translation unit; per-ISA flags are added per kernel file. -fvisibility=hidden:
 * every addon names its layers layer0, layer1, ...; a symbol the compiler emits as STB_GNU_UNIQUE
 * (sanitized builds keep constants like layer1::ForwardView::DST_A) is shared by the dynamic linker
 * across all addons of a process, so a second addon would read the first one's shapes. Only the
 * Node-API entry point (explicitly default visibility) needs exporting. -O2, not -O3: the hot loops
 * are intrinsics unrolled by pragmas, so -O3 bought nothing (15 layer shapes x 3 passes on Zen 5,
 * AVX-512, AVX2 and scalar: every pass within +-1.5%, a 16-channel layer 6% faster at -O2) and
 * cost 37% more compile time per kernel. One exception: the direct engine's forward and
 * backward-data pass is built at -O3 by a pragma (templates/engine/direct.hpp says why).
 */
export const BASE_CXX_FLAGS: readonly string[] = [
  '-O2',
  '-fno-math-errno',
  '-fno-trapping-math',
  '-fvisibility=hidden',
  '-Wall',
  '-Wno-unused-function',
];

export const SANITIZERS = ['address', 'undefined'] as const;
export type Sanitizer = (typeof SANITIZERS)[number];

/** The compile and link flags of a JIT addon: the base flags plus the sanitizers, if any. */
export interface AddonFlags {
  readonly sanitize: readonly Sanitizer[];
  readonly cxx: readonly string[];
  readonly link: readonly string[];
}

/**
 * Parses MASKACC_SANITIZE ('address', 'undefined' or both, comma-separated; unset or empty = none)
 * into a sorted, duplicate-free list, so 'undefined,address' and 'address,undefined' share a cache key.
 */
export function parseSanitize(value: string | undefined = process.env.MASKACC_SANITIZE): Sanitizer[] {
  if (value === undefined || value.trim() === '') return [];
  const names = value.split(',').map((v) => v.trim());
  if (names.some((n) => !(SANITIZERS as readonly string[]).includes(n))) {
    throw new ArgumentError(
      'MASKACC_SANITIZE',
      value,
      `'address', 'undefined' or 'address,undefined' (or unset for a normal build)`,
    );
  }
  return SANITIZERS.filter((s) => names.includes(s));
}

/**
 * Flags for a build with `sanitize` (default: from MASKACC_SANITIZE). The optimization level
 * stays: the sanitizers then check the same code that ships (where GCC 12 -O3 bugs were found before).
 * -fno-sanitize-recover makes UBSan abort instead of printing and going on, so a finding fails
 * the test run whatever UBSAN_OPTIONS says.
 */
export function addonFlags(sanitize: readonly Sanitizer[] = parseSanitize()): AddonFlags {
  if (sanitize.length === 0) return { sanitize: [], cxx: BASE_CXX_FLAGS, link: [] };
  const fsan = `-fsanitize=${sanitize.join(',')}`;
  return {
    sanitize: [...sanitize],
    cxx: [...BASE_CXX_FLAGS, fsan, '-fno-sanitize-recover=all', '-fno-omit-frame-pointer', '-g'],
    link: [fsan],
  };
}

/** True when the ASan runtime is mapped into this process (LD_PRELOAD), so an ASan addon can load. */
export function asanRuntimeLoaded(): boolean {
  try {
    return /\blibasan\.so/.test(readFileSync('/proc/self/maps', 'utf8'));
  } catch {
    return false;
  }
}

let compilerIdCache: string | undefined;
/** The C++ compiler's identity (part of the cache key): a new g++ means a new binary. */
export function compilerId(): string {
  if (compilerIdCache === undefined) {
    const cxx = process.env.CXX ?? 'c++';
    try {
      compilerIdCache = execFileSync(cxx, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
    } catch {
      compilerIdCache = `${cxx} (not found)`;
    }
  }
  return compilerIdCache;
}

/**
 * Run cmake-js in `dir` (which holds CMakeLists.txt and the sources) and return the built
 * `<target>.node`. `mainSource` is named in the error so a person can open the generated code.
 * The include directories of this installed maskacc and its node-addon-api are passed as -D
 * definitions, so the sources (and generated/ in the repository) carry no machine paths.
 */
export async function buildAddon(
  buildDir: string,
  target: string,
  mainSource: string,
  jobs: number,
  more: {
    /** Further -D definitions for CMake (e.g. MASKACC_BINDING_ARCHIVE). */
    defines?: Readonly<Record<string, string>>;
    /** The produced file under build/Release (default `<target>.node`). */
    artifact?: string;
  } = {},
): Promise<string> {
  const dir = resolve(buildDir);
  // cmake-js reads napi_versions from the project's package.json: with it, no headers download.
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: target, private: true, binary: { napi_versions: [8] } }),
  );
  const args = [
    CMAKE_JS_BIN,
    'build',
    '--directory',
    dir,
    '--out',
    join(dir, 'build'),
    '--parallel',
    String(jobs),
    '--log-level',
    'error',
    `--CDMASKACC_INCLUDE_DIR=${HEADER_DIR}`,
    `--CDMASKACC_NODE_ADDON_API_DIR=${NODE_ADDON_API_DIR}`,
    ...Object.entries(more.defines ?? {}).map(([name, value]) => `--CD${name}=${value}`),
  ];
  const output = await run(process.execPath, args, dir);
  if (output.code !== 0) {
    // Probed only now that a build failed: the same findings as `maskacc doctor`.
    const doctor = formatToolchain(diagnoseToolchain())
      .map((l) => `  ${l}`)
      .join('\n');
    const message = `maskacc: building kernel addon ${target} failed (exit ${output.code})\n  toolchain (as \`maskacc doctor\` sees it):\n${doctor}`;
    throw new CompileError(message, output.text, join(dir, mainSource));
  }
  return join(dir, 'build', 'Release', more.artifact ?? `${target}.node`);
}

/** Runs a tool (no sanitizer preload) and resolves with its exit code and its output; never rejects. */
export function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; text: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: withoutSanitizerPreload(process.env),
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('error', (e) => resolve({ code: -1, text: `${text}\n${e.message}` }));
    child.on('close', (code) => resolve({ code: code ?? -1, text }));
  });
}

/**
 * The environment minus a sanitizer runtime in LD_PRELOAD (set so this process can load
 * sanitized addons): cmake and g++ are not instrumented, and under it they only run slower.
 */
export function withoutSanitizerPreload(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (!env.LD_PRELOAD) return env;
  const kept = env.LD_PRELOAD.split(/[:\s]+/).filter((lib) => lib !== '' && !/\blib(asan|ubsan)\.so/.test(lib));
  const out = { ...env };
  if (kept.length) out.LD_PRELOAD = kept.join(':');
  else delete out.LD_PRELOAD;
  return out;
}
