// One kernel at a time per process for async calls: each kernel already runs `threads` OpenMP
// threads (default: every core), so two overlapping kernels would only oversubscribe the cores.

let tail: Promise<unknown> = Promise.resolve();

/** Run `job` after every async kernel call queued before it has settled. */
export function runExclusive<T>(job: () => Promise<T>): Promise<T> {
  const result = tail.then(job, job);
  tail = result.catch(() => undefined);
  return result;
}
