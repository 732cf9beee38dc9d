// The output pool's rules (src/runtime/pool.ts, native/runtime): collected outputs are reused,
// memory stays bounded in the obvious loop, held outputs are never written, and everything works
// with huge pages off, in both ways blocks come back (leased: the pool collects itself; counted:
// MASKACC_POOL_COLLECT=0, V8 decides). Each scenario runs in a child process (a fresh pool;
// --expose-gc unless a test says otherwise) with poisoned pool memory: every recycled output is
// NaN until a kernel writes all of it, and each child checks its outputs against the float64 reference.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function run(
  scenario: string,
  env: Record<string, string> = {},
  exposeGc = true,
): Record<string, number | boolean | string> {
  const child = spawnSync(
    process.execPath,
    [
      ...(exposeGc ? ['--expose-gc'] : []),
      '--import',
      'tsx',
      join(import.meta.dirname, 'fixtures', 'pool-child.ts'),
      scenario,
    ],
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

  // 3,000 outputs of 0.4-0.5 MiB each would be ~1.4 GB if none came back.
  it('RSS stays bounded over 1,000 synchronous calls of each pass with outputs allocated by the call', () => {
    const o = run('rss', {}, false); // the pool reaches V8's collector without --expose-gc
    expect(o.selfCollect).toBe(true);
    expect(o.minorCollections).toBeGreaterThan(0);
    expect((o.rss1000 as number) - (o.rss100 as number)).toBeLessThan(64 * 2 ** 20);
    expect(o.hits).toBeGreaterThan(2500);
    expect(o.keptBytes).toBeLessThanOrEqual(o.maxKeptBytes as number);
  });

  it('with collection left to V8 (counted blocks) the obvious loop stays bounded and outputs are reused', () => {
    const o = run('rss', { MASKACC_POOL_COLLECT: '0' }, false);
    expect(o.selfCollect).toBe(false);
    expect(o.minorCollections).toBe(0);
    // V8 picks when counted blocks come back, so RSS at the two samples depends on where its
    // scavenges fall: 2-30 MiB growth in 9 runs here (idle and with both cores busy), 66 MiB once
    // in a CI run. Without reuse it would be ~1.4 GB.
    expect((o.rss1000 as number) - (o.rss100 as number)).toBeLessThan(128 * 2 ** 20);
    expect(o.hits).toBeGreaterThan(2500);
    const r = run('reuse', { MASKACC_POOL_COLLECT: '0' });
    expect(r.keptAfterGc).toBeGreaterThanOrEqual(16 * 32 * 16 * 16 * 4);
    expect(r.hitsAfter).toBe((r.hitsBefore as number) + 1);
  });

  it('outputs that lived long enough to be old come back through full collections the pool runs', () => {
    const o = run('old', {}, false);
    // 12 steps x 400 held outputs of 512 KiB: 2.4 GiB handed out, 200 MiB held per step (past
    // two young collections, so most of it is old when dropped).
    expect(o.majorCollections).toBeGreaterThan(0);
    expect(o.peakLive).toBeLessThan(768 * 2 ** 20);
    expect(o.hits).toBeGreaterThan(o.misses as number);
  });

  it('at the bound, a block coming back makes room by releasing the size class used longest ago', () => {
    const y = 16 * 32 * 16 * 16 * 4,
      dx = 16 * 24 * 16 * 16 * 4; // 512 KiB and 384 KiB: two size classes
    const o = run('lru', { MASKACC_POOL_MAX_BYTES: String(3 * y) });
    expect(o.keptFull).toBe(3 * y); // the bound, all forward outputs
    expect(o.keptAfterReturn).toBe(2 * y + dx); // one released for the backward-data block
    expect(o.hitsAfter).toBe((o.hitsBefore as number) + 1);
  });

  it('a miss in a huge-page size class recycles a free block of another class (a smaller one topped up with fresh memory, a larger one split)', () => {
    const o = run('recycle', { MASKACC_POOL_POISON: '0' });
    expect(o.recycledAfterGrow).toBe((o.recycledBefore as number) + 1);
    expect(o.recycledAfterSplit).toBe((o.recycledBefore as number) + 2);
    expect(o.missesAfter).toBe(o.missesBefore); // no fresh block for either
    expect(o.kept).toBe(true); // the grown block's pages still hold what the old array wrote
    expect(o.zeros).toBe(true);
    expect(o.grownSum).toBe(o.grownLength);
    expect(o.headKept).toBe(true); // the split block's head is the grown block's memory
    expect(o.keptAfterSplit).toBe(4 * 2 ** 20); // its tail stays free
  });

  it('smaller free blocks of several classes are gathered into one block, and such a block can be gathered again', () => {
    const o = run('gather', { MASKACC_POOL_POISON: '0' });
    const MiB = 2 ** 18;
    expect(o.sixSum).toBe(1 * 2 * MiB + 2 * 4 * MiB); // both blocks' pages, none fresh
    expect(o.eightSum).toBe(3 * 6 * MiB); // the assembled block's pages, then 2 MiB fresh (zeros)
    expect(o.recycled).toBe(2);
    expect(o.misses).toBe(0);
  });

  it('transferring an output copies it: the block never moves away from the array that returns it', () => {
    const o = run('transfer');
    expect(o.intact).toBe(true); // not detached
    expect(o.clonedIsCopy).toBe(true);
    expect(o.postedIsCopy).toBe(true);
  });

  it('small outputs share slabs without overlapping, are written in full, and transfer as copies', () => {
    const o = run('small');
    expect(o.wrong).toBe(0);
    expect(o.shared).toBe(true); // they do come from shared slabs
    expect(o.overlaps).toBe(0);
    expect(o.postedIsCopy).toBe(true);
    expect(o.neighbourIntact).toBe(true);
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

  it('a worker thread that exits holding pooled outputs gives their blocks back and does not crash the process', () => {
    const o = run('worker');
    expect(o.exit).toBe(0);
    expect(o.workerLiveAfterExit).toBe(0);
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
