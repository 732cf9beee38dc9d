import { execFileSync } from 'node:child_process';

// Median ms per call of several kernels run alternately in one process (the A/B tools'
// timing): 5 warm-up calls each, then `rounds` rounds of `reps` calls per kernel, the order
// rotated every round so no kernel always runs after the same one.
export function alternateMedians(calls: readonly (() => void)[], rounds = 40, reps = 5): number[] {
  for (let i = 0; i < 5; i++) for (const f of calls) f();
  const times: number[][] = calls.map(() => []);
  for (let round = 0; round < rounds; round++)
    for (let j = 0; j < calls.length; j++) {
      const k = (j + round) % calls.length;
      const t0 = performance.now();
      for (let n = 0; n < reps; n++) calls[k]();
      times[k].push((performance.now() - t0) / reps);
    }
  return times.map((t) => [...t].sort((p, q) => p - q)[t.length >> 1]);
}

/**
 * Where a kernel sits (built and created first or second in its process) moves it by itself on a
 * shared VM: two identical builds read 0.88-0.94x (see bench/ab.ts). So the A/B tools measure in
 * two child processes of this same script, one taking the versions in the given order and one in
 * reverse (`measure(reversed)`), and report both. Returns the two children's results; in a child
 * (AB_ORDER set) it measures, hands the result to the parent and returns null.
 */
export async function inBothOrders<T>(measure: (reversed: boolean) => Promise<T>): Promise<[T, T] | null> {
  const child = process.env.AB_ORDER;
  if (child) {
    process.stdout.write(`AB_RESULT ${JSON.stringify(await measure(child === 'reversed'))}\n`);
    return null;
  }
  const run = (order: string): T => {
    const out = execFileSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      env: { ...process.env, AB_ORDER: order },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = out.split('\n').find((l) => l.startsWith('AB_RESULT '));
    if (!line) throw new Error(`the ${order} child printed no result`);
    return JSON.parse(line.slice('AB_RESULT '.length)) as T;
  };
  return [run('given'), run('reversed')];
}
