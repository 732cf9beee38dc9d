// The maskacc CLI end to end: explain (no compile), compile a spec file into a temp cache, list and
// clean the cache, and errors that name the file and field.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const bin = join(import.meta.dirname, '..', 'bin', 'maskacc.mjs');
const cacheDir = mkdtempSync(join(tmpdir(), 'maskacc-cli-'));
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, MASKACC_CACHE_DIR: cacheDir } });

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
    const spec = join(cacheDir, '..', `spec-${process.pid}.json`);
    writeFileSync(spec, JSON.stringify({ batch: 1, inChannels: 3, outChannels: 5, inHeight: 6, inWidth: 6, kernel: 3, padding: 1 }));
    const compiled = run('compile', spec, '--isa', 'scalar', '--json');
    expect(compiled.status, compiled.stderr).toBe(0);
    const { key } = JSON.parse(compiled.stdout);
    const ls = JSON.parse(run('cache', 'ls', '--json').stdout);
    expect(ls.entries.map((e: { key: string }) => e.key)).toContain(key);
    expect(run('cache', 'clean').stdout).toMatch(/removed \d+ entr/);
    expect(JSON.parse(run('cache', 'ls', '--json').stdout).entries).toEqual([]);
  });

  it('errors name the file and the field', () => {
    const bad = join(cacheDir, '..', `bad-${process.pid}.json`);
    writeFileSync(bad, JSON.stringify([{ batch: 1, inChannels: 3, outChannels: 4, inHeight: 6, inWidth: 6, kernel: 3 }, { batch: 1, inChannels: 3, outChannels: 0, inHeight: 6, inWidth: 6, kernel: 3 }]));
    const r = run('compile', bad);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bad-\d+\.json \[1\]: conv spec: outChannels = 0; expected a positive integer/);
    expect(run('explain', 'resnet99').stderr).toMatch(/resnet99: neither a model/);
    expect(run('explain', 'vgg16-cifar', '--density', '2').stderr).toMatch(/kept fraction in \(0, 1\]/);
    expect(() => execFileSync(process.execPath, [bin, 'nonsense'], { stdio: 'pipe' })).toThrow();
  });
});
