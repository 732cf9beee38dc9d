// The kernel cache on a full disk (ENOSPC): in the build (real ENOSPC from /dev/full) and in each
// step of publishing (injected into node:fs/promises, which cache.ts uses). Every case must fail
// fast with a clear error, leave no partial <key>.node / <key>.json, temp dir or lock behind, and
// a later call with a working disk must build and succeed.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { getOrBuildArtifact, type CacheEvent } from '../../src/codegen/cache.js';
import { cacheKey } from '../../src/codegen/cache-key.js';
import { MaskaccError } from '../../src/errors.js';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const K = (s: string) => cacheKey({ test: 'cache-faults', s });

let dir: string;
let cacheDir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'maskacc-faults-'));
  cacheDir = path.join(dir, 'cache');
});
afterEach(async () => {
  vi.restoreAllMocks();
  await fs.rm(dir, { recursive: true, force: true });
});

function enospc(syscall: string, target: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, ${syscall} '${target}'`), {
    code: 'ENOSPC',
    errno: -28,
    syscall,
    path: target,
  });
}

type FsMethod = 'copyFile' | 'writeFile' | 'rename' | 'mkdtemp';
/** Makes the first call of fs.<method> whose arguments match fail with ENOSPC; others run for real. */
function failOnce(method: FsMethod, matches: (args: unknown[]) => boolean) {
  const real = (fs[method] as (...a: unknown[]) => Promise<unknown>).bind(fs);
  const hit = { count: 0 };
  vi.spyOn(fs, method).mockImplementation((async (...args: unknown[]) => {
    if (hit.count === 0 && matches(args)) {
      hit.count++;
      throw enospc(method, String(args[0]));
    }
    return real(...args);
  }) as never);
  return hit;
}

/** ENOSPC from fsync of a matching file (where delayed allocation reports a full disk). */
function failSync(matches: (file: string) => boolean) {
  const realOpen = fs.open.bind(fs);
  const hit = { count: 0 };
  vi.spyOn(fs, 'open').mockImplementation((async (file: string, ...rest: unknown[]) => {
    const fh = await realOpen(file, ...(rest as [string]));
    if (hit.count > 0 || !matches(file)) return fh;
    hit.count++;
    return Object.assign(Object.create(fh) as typeof fh, {
      sync: async () => Promise.reject(enospc('fsync', file)),
      close: () => fh.close(),
    });
  }) as never);
  return hit;
}

const ends = (arg: unknown, suffix: string) => typeof arg === 'string' && arg.endsWith(suffix);

/** A build producing `content`; `outside` writes it next to (not inside) the cache, so publish copies it. */
function build(content: string, outside = false) {
  return async (workDir: string) => {
    const out = outside ? path.join(dir, 'elsewhere.node') : path.join(workDir, 'out', 'kernel.node');
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, content);
    return out;
  };
}

/** After a failure: nothing of the key is left, and a working disk builds it again (no wait: the lock is gone). */
async function expectCleanThenRecovers(key: string): Promise<void> {
  expect(await fs.readdir(cacheDir).catch(() => [])).toEqual([]);
  vi.restoreAllMocks();
  const events: CacheEvent['type'][] = [];
  const p = await getOrBuildArtifact({
    cacheDir,
    key,
    build: build('good addon'),
    onEvent: (e) => events.push(e.type),
  });
  expect(events).toEqual(['miss', 'built']);
  expect(await fs.readFile(p, 'utf8')).toBe('good addon');
  expect((await fs.readdir(cacheDir)).sort()).toEqual([`${key}.json`, `${key}.node`]);
}

describe('cache on a full disk', () => {
  it('a build that writes to a full disk (real ENOSPC from /dev/full) fails with that error', async () => {
    const key = K('build');
    const err = await getOrBuildArtifact({
      cacheDir,
      key,
      build: async (workDir) => {
        await fs.writeFile(path.join(workDir, 'half.o'), 'partial object');
        await fs.writeFile('/dev/full', 'the compiler output that does not fit');
        return path.join(workDir, 'never.node');
      },
    }).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect((err as Error).message).toMatch(/no space left on device/);
    await expectCleanThenRecovers(key);
  }, 15_000);

  // Each step of publish(): the artifact copy, its fsync, the metadata write, and the two renames
  // (the .json first, then the .node, the commit point).
  const steps: { step: string; outside?: boolean; inject: (key: string) => { count: number } }[] = [
    {
      step: 'copying the artifact into the cache',
      outside: true,
      inject: (key) => failOnce('copyFile', (a) => ends(a[1], `${key}.node.staged`)),
    },
    { step: 'syncing the staged artifact', inject: (key) => failSync((f) => f.endsWith(`${key}.node.staged`)) },
    { step: 'writing the metadata', inject: (key) => failOnce('writeFile', (a) => ends(a[0], `${key}.json.staged`)) },
    { step: 'renaming the metadata into place', inject: (key) => failOnce('rename', (a) => ends(a[1], `${key}.json`)) },
    {
      step: 'renaming the artifact into place (after the metadata)',
      inject: (key) => failOnce('rename', (a) => ends(a[1], `${key}.node`)),
    },
  ];
  it.each(steps)(
    'ENOSPC while $step: a MaskaccError naming the cache dir, nothing half-published',
    async ({ step, outside, inject }) => {
      const key = K(step);
      const injected = inject(key);
      const events: CacheEvent['type'][] = [];
      const err = await getOrBuildArtifact({
        cacheDir,
        key,
        build: build('addon', outside),
        onEvent: (e) => events.push(e.type),
      }).catch((e: unknown) => e);
      expect(injected.count, 'the fault was injected').toBe(1);
      expect(err).toBeInstanceOf(MaskaccError);
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      expect((err as Error).message).toContain(cacheDir);
      expect((err as Error).message).toMatch(/no space left on device.*free space.*MASKACC_CACHE_DIR/s);
      expect(events).toEqual(['miss']);
      await expectCleanThenRecovers(key);
    },
    15_000,
  );

  it('ENOSPC creating the work dir names the cache dir and MASKACC_CACHE_DIR, and builds nothing', async () => {
    const key = K('mkdtemp');
    failOnce('mkdtemp', (a) => ends(path.dirname(String(a[0])), 'cache'));
    let builds = 0;
    const err = await getOrBuildArtifact({ cacheDir, key, build: async (w) => (builds++, build('x')(w)) }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MaskaccError);
    expect((err as Error).message).toMatch(/no space left on device.*MASKACC_CACHE_DIR/s);
    expect((err as Error).message).toContain(cacheDir);
    expect(builds).toBe(0);
    await expectCleanThenRecovers(key);
  }, 15_000);

  it('a process waiting on the lock of a build that fails with ENOSPC takes over and builds once', async () => {
    const key = K('waiter');
    const counter = path.join(dir, 'counter.txt');
    let child: ChildProcess | undefined;
    let stdout = '',
      stderr = '';
    let childDone: Promise<number | null> | undefined;
    try {
      const err = await getOrBuildArtifact({
        cacheDir,
        key,
        build: async () => {
          // We hold the lock: start the other process, fail only once it waits on our lock.
          child = spawn(
            process.execPath,
            ['--import', 'tsx', path.join(import.meta.dirname, 'fixtures', 'wait-build.ts'), cacheDir, key, counter],
            { cwd: repoRoot },
          );
          child.stdout!.on('data', (d) => (stdout += d));
          child.stderr!.on('data', (d) => (stderr += d));
          childDone = new Promise((resolve) => child!.on('close', resolve));
          const t0 = Date.now();
          while (!stdout.includes('event wait')) {
            if (child.exitCode !== null || Date.now() - t0 > 15_000)
              throw new Error(`wait-build never waited: ${stdout} ${stderr}`);
            await new Promise((r) => setTimeout(r, 20));
          }
          await fs.writeFile('/dev/full', 'does not fit');
          throw new Error('unreachable: /dev/full accepted a write');
        },
      }).catch((e: unknown) => e);
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      expect(await childDone, stderr).toBe(0);
      expect(stdout.trim().split('\n')).toEqual([
        'event miss',
        'event wait',
        'event built',
        `result ${path.join(cacheDir, `${key}.node`)}`,
      ]);
      expect((await fs.readFile(counter, 'utf8')).trim().split('\n')).toHaveLength(1);
      expect((await fs.readdir(cacheDir)).sort()).toEqual([`${key}.json`, `${key}.node`]);
    } finally {
      if (child && child.exitCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});
