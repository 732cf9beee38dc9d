// The maskacc CLI end to end (the compiled JS in dist/, as installed): explain (no compile), compile a
// spec file into a temp cache, list and clean the cache, doctor, exit codes, and errors that name the
// file and field.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './util.js';

const bin = join(import.meta.dirname, '..', 'bin', 'maskacc.mjs');
const work = tempDir('maskacc-cli');
const cacheDir = join(work, 'cache');
const run = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, MASKACC_CACHE_DIR: cacheDir },
  });

describe('maskacc CLI', () => {
  it('explain prints a plan per layer of a zoo model, as text or JSON', () => {
    const text = run('explain', 'resnet20-cifar', '--density', '0.5');
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^stem: N=64 C=3 K=16/m);
    const json = JSON.parse(run('explain', 'vgg16-cifar', '--json').stdout);
    expect(json).toHaveLength(13);
    expect(json[0].plan.isa).toBeTypeOf('string');
  });

  it('compile, cache ls and cache clean', () => {
    const spec = join(work, `spec-${process.pid}.json`);
    writeFileSync(
      spec,
      JSON.stringify({ batch: 1, inChannels: 3, outChannels: 5, inHeight: 6, inWidth: 6, kernel: 3, padding: 1 }),
    );
    const compiled = run('compile', spec, '--isa', 'scalar', '--json');
    expect(compiled.status, compiled.stderr).toBe(0);
    const { key } = JSON.parse(compiled.stdout);
    const ls = JSON.parse(run('cache', 'ls', '--json').stdout);
    expect(ls.entries.map((e: { key: string }) => e.key)).toContain(key);
    expect(run('cache', 'clean').stdout).toMatch(/removed \d+ entr/);
    expect(JSON.parse(run('cache', 'ls', '--json').stdout).entries).toEqual([]);
  });

  it('errors name the file and the field', () => {
    const bad = join(work, `bad-${process.pid}.json`);
    writeFileSync(
      bad,
      JSON.stringify([
        { batch: 1, inChannels: 3, outChannels: 4, inHeight: 6, inWidth: 6, kernel: 3 },
        { batch: 1, inChannels: 3, outChannels: 0, inHeight: 6, inWidth: 6, kernel: 3 },
      ]),
    );
    const r = run('compile', bad);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bad-\d+\.json \[1\]: conv spec: outChannels = 0; expected a positive integer/);
    expect(run('explain', 'resnet99').stderr).toMatch(/resnet99: neither a model/);
    expect(run('explain', 'vgg16-cifar', '--density', '2').stderr).toMatch(/kept fraction in \(0, 1\]/);
    expect(() => execFileSync(process.execPath, [bin, 'nonsense'], { stdio: 'pipe' })).toThrow();
  });

  it('exit codes: 2 for usage errors, 1 for failures, 0 for --version and --help', () => {
    expect(run('nonsense').status).toBe(2);
    expect(run('explain', 'vgg16-cifar', '--bogus').status).toBe(2);
    expect(run('explain', 'vgg16-cifar', '--density', '2').status).toBe(2);
    expect(run('explain').status).toBe(2);
    expect(run('explain', 'resnet99').status).toBe(1);
    const version = run('--version');
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toBe(
      JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')).version,
    );
    expect(run('--help').status).toBe(0);
  });

  it('doctor reports the toolchain, ISAs and the cache dir, as text or JSON', () => {
    const text = run('doctor');
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^ok +cmake \d+\.\d+/m);
    expect(text.stdout).toMatch(/maskacc can build kernels here/);
    const report = JSON.parse(run('doctor', '--json').stdout);
    expect(report.ok).toBe(true);
    expect(report.cacheDir).toBe(cacheDir);
    expect(report.cpu.isas).toContain('scalar');
    const broken = spawnSync(process.execPath, [bin, 'doctor', '--json'], {
      encoding: 'utf8',
      env: { ...process.env, MASKACC_CACHE_DIR: cacheDir, CXX: '/nonexistent/g++' },
    });
    expect(broken.status).toBe(1);
    expect(JSON.parse(broken.stdout).install).toContain('Debian/Ubuntu: apt-get install g++');
  });

  it('build writes progress to stderr and only the result to stdout', () => {
    const out = join(cacheDir, 'gen-resnet20');
    const r = run('build', 'resnet20-cifar', '--batch', '2', '--no-compile', '--out', out, '--json');
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ out, addon: null });
    expect(result.files).toContain('index.js');
    expect(r.stderr).toMatch(/wrote \d+ files/);
  });
});
