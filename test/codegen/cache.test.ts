// Tests of the artifact cache and its key: hits skip the build, one build per key in-process and across processes.
// Uses fake builds (no C++) and real child processes for the lock, including one killed with SIGKILL mid-build.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { getOrBuildArtifact, defaultCacheDir, type CacheEvent } from '../../src/codegen/cache.js';
import { cacheKey, canonicalJson } from '../../src/codegen/cache-key.js';
import { MaskaccError } from '../../src/errors.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = path.join(repoRoot, 'test/codegen/fixtures');

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'maskacc-cache-test-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A fake build that counts its runs and writes `content` as the produced addon. */
function fakeBuild(content = 'fake addon', delayMs = 0) {
  const calls: string[] = [];
  const build = async (workDir: string): Promise<string> => {
    calls.push(workDir);
    if (delayMs) await sleep(delayMs);
    const out = path.join(workDir, 'out', 'kernel.node');
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, content);
    return out;
  };
  return { build, calls };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const K = (s: string) => cacheKey({ test: s });

describe('cacheKey', () => {
  it('is a deterministic sha256 hex independent of key order', () => {
    const a = cacheKey({ gen: 1, spec: { cin: 3, cout: 8, k: [3, 3] }, isa: 'avx2', flags: ['-O3'] });
    const b = cacheKey({ flags: ['-O3'], isa: 'avx2', spec: { k: [3, 3], cout: 8, cin: 3 }, gen: 1 });
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toBe(a);
    expect(canonicalJson({ b: { d: 1, c: [2, { f: 0, e: null }] }, a: 'x' })).toBe(
      '{"a":"x","b":{"c":[2,{"e":null,"f":0}],"d":1}}',
    );
  });

  it('changes with any value change, array order, or type', () => {
    const base = { gen: 1, spec: { cin: 3, k: [3, 5] }, isa: 'avx2', flags: ['-O3', '-march=native'], tpl: 'a' };
    const k0 = cacheKey(base);
    const variants = [
      { ...base, gen: 2 },
      { ...base, spec: { cin: 4, k: [3, 5] } },
      { ...base, spec: { cin: 3, k: [5, 3] } },
      { ...base, isa: 'avx512' },
      { ...base, flags: ['-march=native', '-O3'] },
      { ...base, tpl: 'a ' },
      { ...base, gen: '1' },
      { ...base, extra: null },
    ];
    const keys = variants.map((v) => cacheKey(v));
    for (const k of keys) expect(k).not.toBe(k0);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('rejects undefined, functions, NaN, non-plain objects and cycles with the offending path', () => {
    expect(() => cacheKey({ spec: { stride: undefined } })).toThrow(/parts\.spec\.stride is undefined/);
    expect(() => cacheKey({ f: () => 1 })).toThrow(/parts\.f is a function/);
    expect(() => cacheKey({ plan: { tiles: [1, Number.NaN] } })).toThrow(/parts\.plan\.tiles\[1\] is NaN/);
    expect(() => cacheKey({ x: Infinity })).toThrow(/Infinity/);
    expect(() => cacheKey({ m: new Uint8Array(2) })).toThrow(/Uint8Array.*Array\.from/);
    expect(() => cacheKey({ m: new Map() })).toThrow(/Map/);
    // eslint-disable-next-line no-sparse-arrays
    expect(() => cacheKey({ a: [1, , 3] })).toThrow(/parts\.a\[1\] is undefined/);
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    expect(() => cacheKey({ cyc })).toThrow(/circular/);
  });
});

describe('getOrBuildArtifact', () => {
  it('misses, builds and publishes; the second call is a hit without building', async () => {
    const key = K('hit');
    const { build, calls } = fakeBuild('addon bytes');
    const events: CacheEvent[] = [];
    const p1 = await getOrBuildArtifact({
      cacheDir: dir,
      key,
      build,
      meta: { spec: 'conv3x3', key: 'evil' },
      onEvent: (e) => events.push(e),
    });
    expect(p1).toBe(path.join(dir, `${key}.node`));
    expect(path.isAbsolute(p1)).toBe(true);
    expect(await fs.readFile(p1, 'utf8')).toBe('addon bytes');
    const meta = JSON.parse(await fs.readFile(path.join(dir, `${key}.json`), 'utf8'));
    expect(meta).toMatchObject({ key, spec: 'conv3x3', artifactBytes: 11 });
    expect(Date.parse(meta.createdAt)).not.toBeNaN();
    expect(calls).toHaveLength(1);
    expect(events.map((e) => e.type)).toEqual(['miss', 'built']);
    // Temp dir and lock are gone after the build.
    expect((await fs.readdir(dir)).sort()).toEqual([`${key}.json`, `${key}.node`]);

    const events2: CacheEvent[] = [];
    const p2 = await getOrBuildArtifact({ cacheDir: dir, key, build, onEvent: (e) => events2.push(e) });
    expect(p2).toBe(p1);
    expect(calls).toHaveLength(1);
    expect(events2.map((e) => e.type)).toEqual(['hit']);
  });

  it('builds in a fresh empty temp dir inside cacheDir and never exposes the final name early', async () => {
    const key = K('tmp');
    const seen: { workDir: string; entries: string[]; finalExists: boolean }[] = [];
    await getOrBuildArtifact({
      cacheDir: dir,
      key,
      build: async (workDir) => {
        seen.push({
          workDir,
          entries: await fs.readdir(workDir),
          finalExists: existsSync(path.join(dir, `${key}.node`)),
        });
        await fs.writeFile(path.join(workDir, 'k.node'), 'x');
        return 'k.node'; // relative to workDir is accepted
      },
    });
    expect(seen).toHaveLength(1);
    expect(path.dirname(seen[0]!.workDir)).toBe(dir);
    expect(path.basename(seen[0]!.workDir)).toMatch(new RegExp(`^tmp-${key.slice(0, 16)}-${process.pid}-`));
    expect(seen[0]!.entries).toEqual([]);
    expect(seen[0]!.finalExists).toBe(false);
    expect(existsSync(seen[0]!.workDir)).toBe(false);
  });

  it('copies an artifact produced outside the work dir', async () => {
    const key = K('outside');
    const elsewhere = path.join(dir, 'elsewhere.node');
    const cacheDir = path.join(dir, 'nested', 'cache'); // also exercises mkdir -p
    const p = await getOrBuildArtifact({
      cacheDir,
      key,
      build: async () => {
        await fs.writeFile(elsewhere, 'from elsewhere');
        return elsewhere;
      },
    });
    expect(await fs.readFile(p, 'utf8')).toBe('from elsewhere');
  });

  it('shares one build among concurrent in-process callers; different keys build independently', async () => {
    const { build, calls } = fakeBuild('x', 100);
    const events: string[] = [];
    const key = K('concurrent');
    const paths = await Promise.all(
      Array.from({ length: 6 }, () =>
        getOrBuildArtifact({ cacheDir: dir, key, build, onEvent: (e) => events.push(e.type) }),
      ),
    );
    expect(new Set(paths).size).toBe(1);
    expect(calls).toHaveLength(1);
    expect(events.filter((t) => t === 'built').length).toBeGreaterThanOrEqual(1);

    // Two keys overlap: both builds start before either ends (neither waits for the other).
    const order: string[] = [];
    const timed = (name: string) => async (workDir: string) => {
      order.push(`start ${name}`);
      await sleep(200);
      await fs.writeFile(path.join(workDir, 'k.node'), name);
      order.push(`end ${name}`);
      return path.join(workDir, 'k.node');
    };
    const [pa, pb] = await Promise.all([
      getOrBuildArtifact({ cacheDir: dir, key: K('a'), build: timed('a') }),
      getOrBuildArtifact({ cacheDir: dir, key: K('b'), build: timed('b') }),
    ]);
    expect(pa).not.toBe(pb);
    expect(order.slice(0, 2).sort()).toEqual(['start a', 'start b']);
  });

  it('propagates a build failure unchanged, leaves nothing behind, and rebuilds next time', async () => {
    class FakeCompileError extends Error {}
    const key = K('fail');
    const boom = new FakeCompileError('compiler exploded');
    let workDir = '';
    const err = await getOrBuildArtifact({
      cacheDir: dir,
      key,
      build: async (w) => {
        workDir = w;
        await fs.writeFile(path.join(w, 'half.node'), 'partial');
        throw boom;
      },
    }).catch((e: unknown) => e);
    expect(err).toBe(boom);
    expect(existsSync(workDir)).toBe(false);
    expect(await fs.readdir(dir)).toEqual([]); // no artifact, json, temp dir or lock

    const { build, calls } = fakeBuild('second try');
    const p = await getOrBuildArtifact({ cacheDir: dir, key, build });
    expect(calls).toHaveLength(1);
    expect(await fs.readFile(p, 'utf8')).toBe('second try');
  });

  it('rejects a build that returns a missing or empty file', async () => {
    await expect(
      getOrBuildArtifact({ cacheDir: dir, key: K('missing'), build: async (w) => path.join(w, 'nope.node') }),
    ).rejects.toThrow(/nope\.node.*missing/);
    await expect(
      getOrBuildArtifact({
        cacheDir: dir,
        key: K('empty'),
        build: async (w) => {
          await fs.writeFile(path.join(w, 'e.node'), '');
          return path.join(w, 'e.node');
        },
      }),
    ).rejects.toThrow(/empty/);
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('rebuilds corrupt entries: empty .node, missing json, mismatched key, truncated .node', async () => {
    const key = K('corrupt');
    const art = path.join(dir, `${key}.node`);
    const metaPath = path.join(dir, `${key}.json`);
    const { build, calls } = fakeBuild('good addon');
    await getOrBuildArtifact({ cacheDir: dir, key, build });

    const damage: (() => Promise<void>)[] = [
      () => fs.truncate(art, 0),
      () => fs.rm(metaPath),
      () => fs.writeFile(metaPath, JSON.stringify({ key: K('other'), createdAt: 'x' })),
      () => fs.writeFile(metaPath, '{ not json'),
      () => fs.truncate(art, 4),
    ];
    for (const [i, hurt] of damage.entries()) {
      await hurt();
      const events: string[] = [];
      await getOrBuildArtifact({ cacheDir: dir, key, build, onEvent: (e) => events.push(e.type) });
      expect(events, `damage #${i}`).toEqual(['corrupt', 'built']);
      expect(calls).toHaveLength(i + 2);
      expect(await fs.readFile(art, 'utf8')).toBe('good addon');
      expect(JSON.parse(await fs.readFile(metaPath, 'utf8')).key).toBe(key);
    }
  });

  it('names the directory and MASKACC_CACHE_DIR when the cache dir cannot be created', async () => {
    const file = path.join(dir, 'a-file');
    await fs.writeFile(file, '');
    const bad = path.join(file, 'cache');
    const { build, calls } = fakeBuild();
    const err = await getOrBuildArtifact({ cacheDir: bad, key: K('bad'), build }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MaskaccError);
    expect((err as Error).message).toContain(bad);
    expect((err as Error).message).toContain('MASKACC_CACHE_DIR');
    expect(calls).toHaveLength(0);
  });

  it('rejects keys that are not hex digests', async () => {
    const { build } = fakeBuild();
    await expect(getOrBuildArtifact({ cacheDir: dir, key: '../../etc/passwd', build })).rejects.toThrow(/key/);
  });

  it('defaultCacheDir honours MASKACC_CACHE_DIR', () => {
    const saved = process.env.MASKACC_CACHE_DIR;
    try {
      process.env.MASKACC_CACHE_DIR = path.join(dir, 'env-cache');
      expect(defaultCacheDir()).toBe(path.join(dir, 'env-cache'));
      delete process.env.MASKACC_CACHE_DIR;
      expect(defaultCacheDir()).toMatch(/maskacc$/);
      expect(path.isAbsolute(defaultCacheDir())).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.MASKACC_CACHE_DIR;
      else process.env.MASKACC_CACHE_DIR = saved;
    }
  });
});

describe('getOrBuildArtifact across processes', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  function runFixture(
    script: string,
    args: string[],
  ): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(fixtures, script), ...args], { cwd: repoRoot });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      child.on('close', (code) => resolve({ code, stdout, stderr })),
    );
    return { child, done };
  }

  it('two processes compiling one key yield one build', async () => {
    const key = K('two-processes');
    const counter = path.join(dir, 'counter.txt');
    const cacheDir = path.join(dir, 'cache');
    const runs = [0, 1].map(() => runFixture('build-once.ts', [cacheDir, key, counter, '1500']).done);
    const results = await Promise.all(runs);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const outs = results.map((r) => JSON.parse(r.stdout) as { path: string; events: string[] });
    expect(outs[0]!.path).toBe(path.join(cacheDir, `${key}.node`));
    expect(outs[1]!.path).toBe(outs[0]!.path);
    expect((await fs.readFile(counter, 'utf8')).trim().split('\n')).toHaveLength(1);
    expect(outs.filter((o) => o.events.includes('built'))).toHaveLength(1);
    expect(outs.filter((o) => o.events.includes('hit'))).toHaveLength(1);
  }, 20_000);

  it('a lock left by a build killed with SIGKILL does not hang the next build', async () => {
    const key = K('killed');
    const cacheDir = path.join(dir, 'cache');
    const started = path.join(dir, 'started.txt');
    const { child, done } = runFixture('hang-build.ts', [cacheDir, key, started]);
    const t0 = Date.now();
    while (!existsSync(started)) {
      if (child.exitCode !== null) throw new Error(`hang-build exited early: ${(await done).stderr}`);
      if (Date.now() - t0 > 10_000) throw new Error('hang-build did not start its build');
      await sleep(50);
    }
    const deadWorkDir = await fs.readFile(started, 'utf8');
    expect(existsSync(path.join(cacheDir, `${key}.lock`))).toBe(true);
    child.kill('SIGKILL');
    await done;
    expect(existsSync(path.join(cacheDir, `${key}.lock`))).toBe(true); // SIGKILL skips the exit-time unlock
    // A dead holder stops refreshing its lock, which turns stale 15 s after the last refresh: date
    // that refresh 13.5 s back, so the next build still waits for the lock, but 1.5 s instead of 15.
    const lastRefresh = new Date(Date.now() - 13_500);
    await fs.utimes(path.join(cacheDir, `${key}.lock`), lastRefresh, lastRefresh);

    const events: string[] = [];
    const { build, calls } = fakeBuild('after the crash');
    const p = await getOrBuildArtifact({ cacheDir, key, build, onEvent: (e) => events.push(e.type) });
    expect(calls).toHaveLength(1);
    expect(await fs.readFile(p, 'utf8')).toBe('after the crash');
    expect(events).toContain('wait');
    expect(events).toContain('stale-lock');
    expect(events.at(-1)).toBe('built');
    // The dead build's half-written temp dir is swept; the lock is released.
    expect(existsSync(deadWorkDir)).toBe(false);
    expect((await fs.readdir(cacheDir)).sort()).toEqual([`${key}.json`, `${key}.node`]);
  }, 30_000);
});
