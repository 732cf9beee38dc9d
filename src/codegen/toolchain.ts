// What building kernels needs from the machine, checked for real: a C++ compiler that compiles and
// runs a C++17 + OpenMP program, cmake >= 3.15, make, the CPU's ISAs and a writable cache directory.
// `maskacc doctor` prints it; a failed build appends the same findings (probed only on failure).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuModel, supportedIsas, type IsaName } from '../schedule/isa.js';
import { defaultCacheDir } from './cache.js';
import { TEMPLATE_DIR } from './render.js';

export const MIN_CMAKE = [3, 15] as const;

export interface ToolCheck {
  readonly name: 'compiler' | 'cmake' | 'make' | 'cache';
  readonly ok: boolean;
  /** One line: the version found, or what is wrong. */
  readonly detail: string;
}

export interface ToolchainReport {
  readonly ok: boolean;
  readonly checks: readonly ToolCheck[];
  readonly cpu: { readonly model: string; readonly isas: readonly IsaName[] };
  readonly cacheDir: string;
  /** What to run to fix what is missing (empty when nothing is). */
  readonly install: readonly string[];
}

const OMP_PROBE = `#include <omp.h>
#include <optional>
int main() {
  std::optional<int> one = 1;
  int sum = 0;
#pragma omp parallel for reduction(+ : sum)
  for (int i = 0; i < 4; i++) sum += i;
  return sum == 6 && *one == 1 && omp_get_max_threads() > 0 ? 0 : 1;
}
`;

function runTool(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): { ok: boolean; text: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, cwd, timeout: 120_000 });
  if (r.error)
    return { ok: false, text: (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : r.error.message };
  return { ok: r.status === 0, text: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

const firstLine = (text: string) => text.split('\n')[0].trim();

/** The compiler cmake uses (CXX, else c++): compile and run a C++17 program with OpenMP. */
function checkCompiler(env: NodeJS.ProcessEnv): ToolCheck {
  const cxx = env.CXX || 'c++';
  const version = runTool(cxx, ['--version'], env);
  if (!version.ok)
    return {
      name: 'compiler',
      ok: false,
      detail: `C++ compiler '${cxx}': ${firstLine(version.text) || 'does not run'}`,
    };
  const dir = mkdtempSync(join(tmpdir(), 'maskacc-doctor-'));
  try {
    writeFileSync(join(dir, 'probe.cpp'), OMP_PROBE);
    const built = runTool(cxx, ['-std=c++17', '-fopenmp', '-O1', 'probe.cpp', '-o', 'probe'], env, dir);
    if (!built.ok) {
      return {
        name: 'compiler',
        ok: false,
        detail: `${firstLine(version.text)}: cannot compile C++17 with OpenMP (-std=c++17 -fopenmp): ${firstLine(built.text)}`,
      };
    }
    const ran = runTool(join(dir, 'probe'), [], env, dir);
    if (!ran.ok)
      return {
        name: 'compiler',
        ok: false,
        detail: `${firstLine(version.text)}: the C++17 + OpenMP test program fails to run: ${firstLine(ran.text)}`,
      };
    return {
      name: 'compiler',
      ok: true,
      detail: `${firstLine(version.text)} ('${cxx}'): C++17 and OpenMP compile and run`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function checkCmake(env: NodeJS.ProcessEnv): ToolCheck {
  const r = runTool('cmake', ['--version'], env);
  if (!r.ok) return { name: 'cmake', ok: false, detail: `cmake: ${firstLine(r.text) || 'does not run'}` };
  const m = /version (\d+)\.(\d+)(\.\d+)?/.exec(r.text);
  if (!m) return { name: 'cmake', ok: false, detail: `cmake: cannot read its version from '${firstLine(r.text)}'` };
  const [major, minor] = [Number(m[1]), Number(m[2])];
  const recent = major > MIN_CMAKE[0] || (major === MIN_CMAKE[0] && minor >= MIN_CMAKE[1]);
  return {
    name: 'cmake',
    ok: recent,
    detail: `cmake ${m[0].slice('version '.length)}${recent ? '' : `: too old, needs >= ${MIN_CMAKE.join('.')}`}`,
  };
}

function checkMake(env: NodeJS.ProcessEnv): ToolCheck {
  const r = runTool('make', ['--version'], env);
  return { name: 'make', ok: r.ok, detail: r.ok ? firstLine(r.text) : `make: ${firstLine(r.text) || 'does not run'}` };
}

/** Creates the cache directory if needed and writes (then removes) a probe file in it. */
function checkCache(dir: string, env: NodeJS.ProcessEnv): ToolCheck {
  const from = env.MASKACC_CACHE_DIR ? ' (MASKACC_CACHE_DIR)' : '';
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.doctor-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
    return { name: 'cache', ok: true, detail: `cache directory ${dir}${from}: writable` };
  } catch (e) {
    return {
      name: 'cache',
      ok: false,
      detail: `cache directory ${dir}${from}: not writable (${(e as Error).message}); set MASKACC_CACHE_DIR to a writable folder`,
    };
  }
}

/** Runs every check (about a second: one small compile). `env` is for tests (e.g. a missing CXX). */
export function diagnoseToolchain(env: NodeJS.ProcessEnv = process.env): ToolchainReport {
  const cacheDir = defaultCacheDir();
  const checks = [checkCompiler(env), checkCmake(env), checkMake(env), checkCache(cacheDir, env)];
  const packages = { compiler: 'g++', cmake: 'cmake', make: 'make' } as Record<string, string>;
  const missing = checks.filter((c) => !c.ok && c.name in packages).map((c) => packages[c.name]);
  const install: string[] = [];
  if (missing.length) {
    install.push(`Debian/Ubuntu: apt-get install ${missing.join(' ')}`);
    // The setup script exists only in a checkout of the repository (it is not in the package).
    const script = join(TEMPLATE_DIR, '..', 'scripts', 'setup-system.sh');
    if (existsSync(script)) install.push(`in the maskacc repository: bash scripts/setup-system.sh`);
  }
  return {
    ok: checks.every((c) => c.ok),
    checks,
    cpu: { model: cpuModel(), isas: supportedIsas() },
    cacheDir,
    install,
  };
}

/** The report as text lines: every check, the CPU, and what to install. */
export function formatToolchain(report: ToolchainReport): string[] {
  const lines = report.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.detail}`);
  lines.push(`ok   CPU: ${report.cpu.model}; runs ${report.cpu.isas.join(', ')}`);
  if (report.install.length) lines.push('to install what is missing:', ...report.install.map((l) => `  ${l}`));
  return lines;
}
