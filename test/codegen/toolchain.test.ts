// The toolchain check behind `maskacc doctor` and failed builds: it finds this machine's tools, names
// a missing compiler with what to install, and a failed build carries the same findings.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompileError } from '../../src/index.js';
import { buildAddon } from '../../src/codegen/build.js';
import { diagnoseToolchain, formatToolchain } from '../../src/codegen/toolchain.js';
import { tempDir } from '../util.js';

describe('toolchain check', () => {
  it('finds the compiler (C++17 + OpenMP), cmake >= 3.15, make, the ISAs and a writable cache', () => {
    const report = diagnoseToolchain();
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ['compiler', true],
      ['cmake', true],
      ['make', true],
      ['cache', true],
    ]);
    expect(report.ok).toBe(true);
    expect(report.install).toEqual([]);
    expect(report.cpu.isas).toContain('scalar');
    expect(report.cacheDir).toBe(process.env.MASKACC_CACHE_DIR);
    expect(formatToolchain(report).join('\n')).toMatch(/^ok +cmake \d+\.\d+/m);
  });

  it('names a missing compiler and what to install', () => {
    const report = diagnoseToolchain({ ...process.env, CXX: '/nonexistent/g++' });
    expect(report.ok).toBe(false);
    expect(report.checks[0]).toMatchObject({ name: 'compiler', ok: false });
    expect(report.install[0]).toBe('Debian/Ubuntu: apt-get install g++');
    expect(formatToolchain(report).join('\n')).toMatch(/FAIL C\+\+ compiler '\/nonexistent\/g\+\+': not found/);
  });

  it('a failed build says what the doctor says', async () => {
    const dir = tempDir('maskacc-nocxx');
    writeFileSync(
      join(dir, 'CMakeLists.txt'),
      'cmake_minimum_required(VERSION 3.15)\nproject(nocxx CXX)\nadd_library(nocxx SHARED a.cpp)\n',
    );
    writeFileSync(join(dir, 'a.cpp'), 'int f() { return 0; }\n');
    const saved = process.env.CXX;
    process.env.CXX = '/nonexistent/g++';
    let err: unknown;
    try {
      err = await buildAddon(dir, 'nocxx', 'a.cpp', 1).catch((e) => e);
    } finally {
      if (saved === undefined) delete process.env.CXX;
      else process.env.CXX = saved;
    }
    expect(err).toBeInstanceOf(CompileError);
    const message = (err as Error).message;
    expect(message).toMatch(/toolchain \(as `maskacc doctor` sees it\)/);
    expect(message).toMatch(/FAIL C\+\+ compiler '\/nonexistent\/g\+\+': not found/);
    expect(message).toMatch(/apt-get install g\+\+/);
  });
});
