// Builds an addon from rendered sources with cmake-js (offline: Node-API headers come from the
// node-api-headers package). Throws CompileError with the compiler output on failure.

import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { CompileError } from '../errors.js';

const require = createRequire(import.meta.url);

export const NODE_ADDON_API_DIR = dirname(require.resolve('node-addon-api/package.json'));
const CMAKE_JS_BIN = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');

/** Flags of every translation unit; per-ISA flags are added per kernel file. */
export const BASE_CXX_FLAGS: readonly string[] = ['-O3', '-fno-math-errno', '-fno-trapping-math', '-Wall', '-Wno-unused-function'];

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
 */
export async function buildAddon(buildDir: string, target: string, mainSource: string, jobs: number): Promise<string> {
  const dir = resolve(buildDir);
  // cmake-js reads napi_versions from the project's package.json: with it, no headers download.
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: target, private: true, binary: { napi_versions: [8] } }));
  const args = [CMAKE_JS_BIN, 'build', '--directory', dir, '--out', join(dir, 'build'), '--parallel', String(jobs), '--log-level', 'error'];
  const output = await run(process.execPath, args, dir);
  if (output.code !== 0) {
    throw new CompileError(`maskacc: building kernel addon ${target} failed (exit ${output.code})`, output.text, join(dir, mainSource));
  }
  return join(dir, 'build', 'Release', `${target}.node`);
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; text: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('error', (e) => resolve({ code: -1, text: `${text}\n${e.message}` }));
    child.on('close', (code) => resolve({ code: code ?? -1, text }));
  });
}
