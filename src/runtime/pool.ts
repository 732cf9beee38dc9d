// The process-wide output pool, JavaScript side: every output array maskacc allocates comes from
// here. Arrays of 16 KiB and more are blocks of the native pool (native/runtime: aligned, huge-page
// advised, back in the pool once the array is garbage-collected); smaller ones, or all of them
// when the runtime addon is unavailable, are plain Float32Arrays (malloc'ed memory: no fresh pages).
//
// Controls (read when the pool loads; configurePool changes them later):
//   MASKACC_HUGEPAGES=0           no MADV_HUGEPAGE (pool blocks and the kernels' packing buffers)
//   MASKACC_POOL_MAX_BYTES=n      bound on the free memory the pool keeps (default 1 GiB)
//   MASKACC_POOL_POISON=1         fill every array handed out with NaN (tests: kernels must write it all)

import { compileRuntime, type PoolStats, type RuntimeAddon } from '../codegen/compile-runtime.js';

export type { PoolStats };

/** Arrays below this many bytes are plain Float32Arrays: malloc serves them from warm memory. */
export const MIN_POOLED_BYTES = 16 * 1024;
export const DEFAULT_POOL_MAX_BYTES = 1 << 30;
/** The native pool's limit (2 GiB blocks); larger arrays are plain ones. */
const MAX_POOLED_LENGTH = 2 ** 29 - 1;

let addon: RuntimeAddon | undefined;
let loading: Promise<void> | undefined;
let unavailable: string | undefined;
let poisonSmall = false;
let users = 0;

function envFlag(name: string, dflt: boolean): boolean {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return dflt;
  return !['0', 'false', 'off', 'no'].includes(v.trim().toLowerCase());
}

function envBytes(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`${name}: expected a byte count >= 0, got '${v}'`);
  return n;
}

/** Load the native pool once per process (a no-op after the first call; never throws). */
export function loadPool(cacheDir: string, log?: (line: string) => void): Promise<void> {
  // Through a promise so a synchronous throw (e.g. a bad MASKACC_SANITIZE) is a rejection handled below.
  loading ??= Promise.resolve()
    .then(() => compileRuntime({ cacheDir, log }))
    .then(
      (a) => {
        a.configure({
          hugePages: envFlag('MASKACC_HUGEPAGES', true),
          maxKeptBytes: envBytes('MASKACC_POOL_MAX_BYTES', DEFAULT_POOL_MAX_BYTES),
          poison: envFlag('MASKACC_POOL_POISON', false),
        });
        poisonSmall = envFlag('MASKACC_POOL_POISON', false);
        addon = a;
      },
      (e: unknown) => {
        unavailable = String(e instanceof Error ? e.message : e).split('\n')[0];
      },
    );
  return loading;
}

/**
 * A Float32Array of `n` elements with arbitrary contents (NaN in poison mode): the caller writes
 * every element. Its memory is never handed out again while the array can be reached.
 */
export function takeArray(n: number): Float32Array {
  if (addon && n * 4 >= MIN_POOLED_BYTES && n <= MAX_POOLED_LENGTH) return addon.take(n);
  const a = new Float32Array(n);
  if (poisonSmall) a.fill(NaN);
  return a;
}

/** Change the pool's controls for the rest of the process (a lower bound trims at once). */
export function configurePool(o: { hugePages?: boolean; maxKeptBytes?: number; poison?: boolean }): void {
  if (o.poison !== undefined) poisonSmall = o.poison;
  addon?.configure(o);
}

/** Give every free block back to the system. */
export function trimPool(): void {
  addon?.trim();
}

/** The pool's state, or why there is none. */
export function poolStats(): (PoolStats & { native: true }) | { native: false; reason: string } {
  return addon ? { native: true, ...addon.stats() } : { native: false, reason: unavailable ?? 'not loaded' };
}

/** One line for explain() and diagnostics. */
export function poolText(): string {
  const s = poolStats();
  if (!s.native) return `output pool: none (${s.reason}); outputs are plain Float32Arrays`;
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return (
    `output pool: ${mb(s.keptBytes)} free kept (bound ${mb(s.maxKeptBytes)}), ${mb(s.liveBytes)} in live arrays, ` +
    `huge pages ${s.hugePages ? 'advised' : 'off'}, ${s.hits} reuses / ${s.misses} fresh blocks`
  );
}

/** Kernel objects count as users; when the last one is disposed the free blocks go back to the system. */
export function retainPool(): void {
  users++;
}
export function releasePool(): void {
  if (users > 0 && --users === 0) trimPool();
}
