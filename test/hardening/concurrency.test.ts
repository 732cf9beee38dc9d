// Many processes, many concurrent calls, one cache dir: 4 child processes start together (a file
// barrier), each with 3 concurrent calls for a key they all share, 1 for a key of its own, and 3
// concurrent compileMaskedConv calls of one real layer. Every key must build exactly once and
// every caller must get a working artifact (the real kernel: checked against the reference).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { conv2d } from '../../src/index.js';
import { cacheKey } from '../../src/codegen/cache-key.js';
import { refBackwardData, refBackwardWeights, refForward } from '../reference.js';
import { expectClose } from '../util.js';
import { CONCURRENT_SPEC, concurrentInputs } from './fixtures/concurrent-spec.js';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const PROCESSES = 4;
const K = (s: string) => cacheKey({ test: 'concurrency', s });

interface ClientResult {
  pid: number;
  fakes: { key: string; path: string; content: string; events: string[] }[];
  reals: { cacheKey: string; events: string[]; y: number[]; dx: number[]; dw: number[]; dbias: number[] }[];
}

let dir: string;
const children: ChildProcess[] = [];
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'maskacc-concurrency-'));
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fs.rm(dir, { recursive: true, force: true });
});

describe('concurrent processes on one cache dir', () => {
  it(`${PROCESSES} processes x concurrent calls: one build per key, every caller gets a working result`, async () => {
    const cacheDir = path.join(dir, 'cache');
    const marker = path.join(dir, 'builds.txt');
    const go = path.join(dir, 'go');
    const shared = K('shared');
    const own = Array.from({ length: PROCESSES }, (_, i) => K(`own-${i}`));

    const runs = own.map((ownKey) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(import.meta.dirname, 'fixtures', 'concurrent-client.ts'),
          cacheDir,
          shared,
          ownKey,
          marker,
          go,
          '1000',
        ],
        { cwd: repoRoot },
      );
      children.push(child);
      let stdout = '',
        stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        child.on('close', (code) => resolve({ code, stdout, stderr })),
      );
      return { child, done, ready: () => stdout.startsWith('ready\n') };
    });
    // The barrier: nobody starts before all have imported everything (tsx startup varies by seconds).
    const t0 = Date.now();
    while (!runs.every((r) => r.ready())) {
      const dead = runs.find((r) => r.child.exitCode !== null);
      if (dead) throw new Error(`a client exited before the start: ${(await dead.done).stderr}`);
      if (Date.now() - t0 > 30_000) throw new Error('clients did not get ready within 30 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    await fs.writeFile(go, '');

    const outs = await Promise.all(runs.map((r) => r.done));
    for (const o of outs) expect(o.code, o.stderr).toBe(0);
    const results = outs.map((o) => JSON.parse(o.stdout.split('\n')[1]!) as ClientResult);

    // One build per key, across processes and the concurrent calls inside each.
    const builds = (await fs.readFile(marker, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0]);
    expect(builds.filter((k) => k === shared)).toHaveLength(1);
    for (const k of own)
      expect(
        builds.filter((b) => b === k),
        `own key ${k.slice(0, 8)}`,
      ).toHaveLength(1);
    expect(builds).toHaveLength(1 + PROCESSES);

    // Every caller got the published artifact of its key.
    results.forEach((r, i) => {
      expect(r.fakes.map((f) => f.key)).toEqual([shared, shared, shared, own[i]]);
      for (const f of r.fakes) {
        expect(f.path).toBe(path.join(cacheDir, `${f.key}.node`));
        expect(f.content).toBe(`artifact of ${f.key}\n`);
      }
    });
    // The shared key: one process built it, the others waited for it or found it.
    const sharedBuilders = results.filter((r) => r.fakes.slice(0, 3).some((f) => f.events.includes('built')));
    expect(sharedBuilders).toHaveLength(1);

    // The real kernel: one key, one build among the 12 calls, and every copy computes correctly.
    const reals = results.flatMap((r) => r.reals);
    expect(reals).toHaveLength(3 * PROCESSES);
    expect(new Set(reals.map((r) => r.cacheKey)).size).toBe(1);
    expect(results.filter((r) => r.reals.some((c) => c.events.includes('built')))).toHaveLength(1);
    const l = conv2d(CONCURRENT_SPEC);
    const { x, w, bias, dy, masks } = concurrentInputs();
    const y = refForward(l, x, w, bias, masks.out, masks.in);
    const dx = refBackwardData(l, dy, w, masks.out, masks.in);
    const g = refBackwardWeights(l, dy, x, masks.out, masks.in, false);
    reals.forEach((r, i) => {
      expectClose(r.y, y, 1e-5, `call ${i} forward`);
      expectClose(r.dx, dx, 1e-5, `call ${i} backwardData`);
      expectClose(r.dw, g.dw, 1e-5, `call ${i} backwardWeights dw`);
      expectClose(r.dbias, g.dbias, 1e-5, `call ${i} backwardWeights dbias`);
    });

    // Nothing left behind: no temp dirs, no locks; one .node + .json per key, plus the runtime's
    // output-pool addon (native/runtime), which the first compile of each process loads from the
    // same cache, the kernel binding's archive (codegen/binding.ts) and the precompiled prelude of
    // the kernels' ISA (codegen/prelude.ts), each built once for all of them.
    const keys = [shared, ...own, reals[0]!.cacheKey];
    const entries = (await fs.readdir(cacheDir)).sort();
    const others = entries.filter((f) => !keys.some((k) => f.startsWith(k)));
    expect(entries.filter((f) => !others.includes(f))).toEqual(keys.flatMap((k) => [`${k}.json`, `${k}.node`]).sort());
    expect(others.map((f) => path.extname(f)).sort()).toEqual(['.a', '.gch', '.json', '.json', '.json', '.node']);
    const kinds = await Promise.all(
      others
        .filter((f) => f.endsWith('.json'))
        .map(async (f) => JSON.parse(await fs.readFile(path.join(cacheDir, f), 'utf8')).kind as string),
    );
    expect(kinds.sort()).toEqual(['kernel-binding', 'prelude-pch', 'runtime']);
  }, 120_000);
});
