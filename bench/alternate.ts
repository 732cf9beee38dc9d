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
