// The output pool's rules (src/runtime/pool.ts, native/runtime): collected outputs are reused,
// memory stays bounded in the obvious loop, held outputs are never written, and everything works
// with huge pages off. Each scenario runs in a child process (--expose-gc, a fresh pool) with
// poisoned pool memory: every recycled output is NaN until a kernel writes all of it, and each
// child checks its outputs against the float64 reference.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function run(scenario: string, env: Record<string, string> = {}): Record<string, number | boolean | string> {
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', join(import.meta.dirname, 'fixtures', 'pool-child.ts'), scenario],
    {
      env: { ...process.env, MASKACC_POOL_POISON: '1', ...env },
      encoding: 'utf8',
      timeout: 300_000,
    },
  );
  if (child.status !== 0)
    throw new Error(`pool-child ${scenario} exited ${child.status}:\n${child.stderr}\n${child.stdout}`);
  return JSON.parse(child.stdout.trim().split('\n').pop()!);
}

describe('output pool', () => {
  it("a collected output's memory serves the next output of its size, written in full", () => {
    const o = run('reuse');
    expect(o.liveBefore).toBeGreaterThanOrEqual(16 * 32 * 16 * 16 * 4);
    expect(o.keptAfterGc).toBeGreaterThanOrEqual(16 * 32 * 16 * 16 * 4); // back in the pool
    expect(o.hitsAfter).toBe((o.hitsBefore as number) + 1); // the next forward took it
    expect(o.missesAfter).toBe(o.missesBefore); // and mapped nothing new
  });

  it('RSS stays bounded over 1,000 synchronous calls of each pass with outputs allocated by the call', () => {
    const o = run('rss');
    // 3,000 outputs of 0.4-0.5 MiB each would be ~1.4 GB if none came back.
    expect((o.rss1000 as number) - (o.rss100 as number)).toBeLessThan(64 * 2 ** 20);
    expect(o.hits).toBeGreaterThan(2500);
    expect(o.keptBytes).toBeLessThanOrEqual(o.maxKeptBytes as number);
  });

  it('outputs the user holds are never written by later calls', () => {
    const o = run('hold');
    expect(o.hits).toBeGreaterThan(0); // the pool did recycle meanwhile
    expect(o.changed).toBe(0);
  });

  it('with huge pages off every pass still matches the reference on recycled memory', () => {
    const o = run('check', { MASKACC_HUGEPAGES: '0' });
    expect(o.hugePages).toBe(false);
    expect(o.poison).toBe(true);
    expect(o.hits).toBeGreaterThan(0);
    expect(o.explain).toMatch(/output pool: .*huge pages off/);
  });

  it('with huge pages on (the default) every pass matches the reference on recycled memory', () => {
    const o = run('check');
    expect(o.hugePages).toBe(true);
    expect(o.hits).toBeGreaterThan(0);
    expect(o.explain).toMatch(/output pool: .*huge pages advised/);
  });

  it('a worker thread that exits holding pooled outputs does not crash the process', () => {
    expect(run('worker').exit).toBe(0);
  });

  it('the bound limits what the pool keeps, and disposing the last kernel gives the free blocks back', () => {
    const d = run('dispose');
    expect(d.keptBeforeDispose).toBeGreaterThan(0);
    expect(d.keptAfterDispose).toBe(0);
    const o = run('reuse', { MASKACC_POOL_MAX_BYTES: String(2 ** 18) }); // below one output's 512 KiB
    expect(o.keptAfterGc).toBe(0);
    expect(o.missesAfter).toBe((o.missesBefore as number) + 1);
  });
});
