// The process-wide output pool, JavaScript side: every output array maskacc allocates comes from
// here. Arrays of 16 KiB and more are blocks of the native pool (native/runtime: aligned, huge-page
// advised, back in the pool once the array is garbage-collected); smaller ones are views into
// shared slabs, and without the runtime addon the larger ones are plain Float32Arrays.
//
// Blocks come back when V8 collects their arrays. Left to itself, V8 counts them as external
// memory and answers every ~64 MB of it with a full mark-compact (2-5 ms of pause, plus concurrent
// marking that takes a core from the kernel): in the obvious loop over 50 MB outputs, one per call.
// Most outputs die young, so where the pool can reach V8's collector (`gc`, which Node hands to a
// fresh vm context while --expose-gc is on for a moment) it collects itself: its blocks are leased
// (not counted by V8; a weak handle returns each one from inside the collection that frees its
// array), and after every 64 MiB to 1 GiB handed out (adapted so that collecting takes ~4% of the
// time) it runs a young-generation collection, plus a full one when the live bytes outgrow
// MAJOR_GROWTH x what the last full one left. Without `gc`, or with MASKACC_POOL_COLLECT=0, blocks
// are counted and V8 decides. Leased arrays are marked untransferable: postMessage and
// structuredClone copy them.
//
// Controls (read when the pool loads; configurePool changes them later):
//   MASKACC_HUGEPAGES=0           no MADV_HUGEPAGE (pool blocks and the kernels' packing buffers)
//   MASKACC_POOL_MAX_BYTES=n      bound on the free memory the pool keeps (default 1 GiB)
//   MASKACC_POOL_POISON=1         fill every array handed out with NaN (tests: kernels must write it all)
//   MASKACC_POOL_COLLECT=0        leave collection to V8's own heuristics

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { markAsUntransferable } from 'node:worker_threads';
import { compileRuntime, type PoolStats as NativePoolStats, type RuntimeAddon } from '../codegen/compile-runtime.js';

export interface PoolStats extends NativePoolStats {
  /** Whether the pool runs collections itself (else its blocks are V8's external memory and V8 decides). */
  selfCollect: boolean;
  /** Collections the pool ran: young generation, and full. */
  minorCollections: number;
  majorCollections: number;
  /** Milliseconds spent in those collections. */
  collectionMs: number;
  /** Pooled bytes handed out between the pool's young-generation collections (it adapts). */
  collectAfterBytes: number;
}

/** Arrays below this many bytes are not pool blocks: malloc'ed memory is warm. */
export const MIN_POOLED_BYTES = 16 * 1024;
/**
 * Arrays under MIN_POOLED_BYTES are views into shared 256 KiB slabs, carved at 64-byte steps (as
 * Node's Buffer pool serves small Buffers). `new Float32Array(n)` costs 2-4 µs here from 64 bytes
 * on (a zeroed off-heap store, external-memory accounting and the collections it brings); below
 * that V8 keeps it on its heap and moves it out at the first native call (+0.5 µs). A view costs
 * 0.1-0.7 µs: most of a call on a tiny layer. A slab is freed once every view into it was
 * collected, so a small output kept alive can hold up to 256 KiB.
 */
const SLAB_FLOATS = 2 ** 16;
const SLAB_STEP_FLOATS = 16;
export const DEFAULT_POOL_MAX_BYTES = 1 << 30;
/** The native pool's limit (2 GiB blocks); larger arrays are plain ones. */
const MAX_POOLED_LENGTH = 2 ** 29 - 1;
/**
 * Pooled bytes handed out between young-generation collections. A collection costs 0.1-0.9 ms on
 * a small heap, and several ms on a large one right after a kernel left the caches cold, whatever
 * the outputs' sizes: the interval (64 MiB to 1 GiB) adapts so that collecting takes about
 * GC_SHARE of the time. It is never under two arrays of the size being taken.
 */
const MIN_COLLECT_BYTES = 64 * 2 ** 20;
const MAX_COLLECT_BYTES = 2 ** 30;
const GC_SHARE = 0.04;
/** Collections whose pauses' median sets the interval (one stalled collection must not move it). */
const PAUSE_WINDOW = 5;
/**
 * Blocks under 2 MiB get no huge pages, so fresh ones fault in 4 KiB pages (~0.7 ms per MB on this
 * VM): once SMALL_COLLECT_BYTES of them went out since the last collection, a miss collects first.
 */
const HUGE_BLOCK_BYTES = 2 * 2 ** 20;
const SMALL_COLLECT_BYTES = 16 * 2 ** 20;
/** A full collection runs once the live pooled bytes pass max(MAJOR_FLOOR, MAJOR_GROWTH x what the last one left). */
const MAJOR_FLOOR = 256 * 2 ** 20;
const MAJOR_GROWTH = 2;

/**
 * V8 shrinks its young generation after a scavenge when JavaScript allocated under 1,000 bytes per
 * ms (Heap::ShouldResizeNewSpace), and commits it again at the next one: page faults, and TLB
 * shootdowns that interrupt the kernel's other thread when it is released. On this VM that is
 * 0.3-0.5 ms per collection, for a scavenge of 0.05-0.1 ms. A loop of kernel calls allocates
 * almost nothing in JavaScript, so before collecting, the pool allocates (and drops at once)
 * YOUNG_BYTES_PER_MS per ms since the last collection, in arrays that stay small objects.
 */
const YOUNG_BYTES_PER_MS = 2000;
const YOUNG_CHUNK_SLOTS = 4096; // 32 KiB: well under V8's large-object size
const YOUNG_MAX_CHUNKS = 64;

type Collector = (o?: { type: 'minor' }) => void;

let addon: RuntimeAddon | undefined;
let loading: Promise<void> | undefined;
let unavailable: string | undefined;
let poisonSmall = false;
let users = 0;
let collector: Collector | undefined;
let handedOutBytes = 0; // since the last collection
let smallHandedOutBytes = 0; // of blocks under HUGE_BLOCK_BYTES, since the last collection
let collectAfterBytes = MIN_COLLECT_BYTES;
let lastCollectionEnd = 0; // performance.now()
const recentPauses: number[] = []; // ms of the last PAUSE_WINDOW young collections
let majorAt = MAJOR_FLOOR;
let minorCollections = 0;
let majorCollections = 0;
let collectionMs = 0;
let slab = new Float32Array(0);
let slabUsed = SLAB_FLOATS; // full: the first small array makes a slab

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

/**
 * V8's collector: the global `gc` under --expose-gc, else the one a fresh vm context gets while
 * the flag is on for a moment (off again at once, so no other context sees it); undefined if
 * this Node refuses.
 */
function findCollector(): Collector | undefined {
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return exposed as Collector;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as Collector) : undefined;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/** Load the native pool once per process (a no-op after the first call; never throws). */
export function loadPool(cacheDir: string, log?: (line: string) => void): Promise<void> {
  // Through a promise so a synchronous throw (e.g. a bad MASKACC_SANITIZE) is a rejection handled below.
  loading ??= Promise.resolve()
    .then(() => compileRuntime({ cacheDir, log }))
    .then(
      (a) => {
        collector = envFlag('MASKACC_POOL_COLLECT', true) ? findCollector() : undefined;
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
  if (addon && n * 4 >= MIN_POOLED_BYTES && n <= MAX_POOLED_LENGTH) {
    if (!collector) return addon.take(n, false)!;
    const bytes = n * 4;
    if ((handedOutBytes += bytes) > Math.max(collectAfterBytes, 2 * bytes)) collect(addon, collector);
    if (bytes < HUGE_BLOCK_BYTES) smallHandedOutBytes += bytes;
    let a = addon.take(n, true, smallHandedOutBytes > SMALL_COLLECT_BYTES);
    if (!a) {
      collect(addon, collector);
      a = addon.take(n, true)!;
    }
    markAsUntransferable(a.buffer); // postMessage copies it (its detach key would abort Node 20 there)
    return a;
  }
  const a = n * 4 < MIN_POOLED_BYTES ? slabView(n) : new Float32Array(n);
  if (poisonSmall) a.fill(NaN);
  return a;
}

/** See SLAB_FLOATS. */
function slabView(n: number): Float32Array {
  if (slabUsed + n > SLAB_FLOATS) {
    slab = new Float32Array(SLAB_FLOATS);
    markAsUntransferable(slab.buffer); // transferring one output would detach its neighbours: copy instead
    slabUsed = 0;
  }
  const a = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += Math.ceil(n / SLAB_STEP_FLOATS) * SLAB_STEP_FLOATS;
  return a;
}

/**
 * A young-generation collection (leased blocks come back inside it, synchronously), the next
 * interval, and a full collection when the live pooled bytes outgrew majorAt.
 */
function collect(a: RuntimeAddon, gc: Collector): void {
  const start = performance.now(),
    handed = handedOutBytes;
  handedOutBytes = smallHandedOutBytes = 0;
  keepYoungGenerationBusy(start - lastCollectionEnd);
  gc({ type: 'minor' });
  minorCollections++;
  // The interval at which collecting takes GC_SHARE of the time, at the rate outputs went out since
  // the last collection, with the median of the last pauses (one VM stall must not move it).
  // Growing costs fresh blocks, whose first touch (~1 ms per MB where the host backs new guest
  // memory lazily) outweighs the pauses it saves unless they are well over budget: the interval
  // doubles only when the target is twice it, at most once per collection, and halves when the
  // target is under a quarter of it, so bursty callers do not make it swing.
  const end = performance.now();
  recentPauses.push(end - start);
  if (recentPauses.length > PAUSE_WINDOW) recentPauses.shift();
  const pause = [...recentPauses].sort((p, q) => p - q)[recentPauses.length >> 1];
  const rate = handed / Math.max(start - lastCollectionEnd, 1e-3),
    target = (rate * pause) / GC_SHARE;
  lastCollectionEnd = end;
  if (target > 2 * collectAfterBytes) collectAfterBytes = Math.min(MAX_COLLECT_BYTES, 2 * collectAfterBytes);
  else if (target < collectAfterBytes / 4) collectAfterBytes = Math.max(MIN_COLLECT_BYTES, collectAfterBytes / 2);
  collectionMs += end - start;
  if (a.stats().liveBytes <= majorAt) return;
  gc(); // full (in Node 20, { type: 'major' } leaves weak handles of old objects alone)
  majorCollections++;
  majorAt = Math.max(MAJOR_FLOOR, MAJOR_GROWTH * a.stats().liveBytes);
  collectionMs += performance.now() - end;
}

/** See YOUNG_BYTES_PER_MS. */
function keepYoungGenerationBusy(ms: number): void {
  const chunks = Math.min(YOUNG_MAX_CHUNKS, Math.ceil((ms * YOUNG_BYTES_PER_MS) / (8 * YOUNG_CHUNK_SLOTS)));
  for (let i = 0; i < chunks; i++) _youngSink = new Array<number>(YOUNG_CHUNK_SLOTS);
}
let _youngSink: unknown; // a store the optimizer cannot elide

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
  return addon
    ? {
        native: true,
        ...addon.stats(),
        selfCollect: collector !== undefined,
        minorCollections,
        majorCollections,
        collectionMs,
        collectAfterBytes,
      }
    : { native: false, reason: unavailable ?? 'not loaded' };
}

/** One line for explain() and diagnostics. */
export function poolText(): string {
  const s = poolStats();
  if (!s.native) return `output pool: none (${s.reason}); outputs are plain Float32Arrays`;
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  return (
    `output pool: ${mb(s.keptBytes)} free kept (bound ${mb(s.maxKeptBytes)}), ${mb(s.liveBytes)} in live arrays, ` +
    `huge pages ${s.hugePages ? 'advised' : 'off'}, ${s.hits} reuses / ${s.recycled} recycled from other sizes / ${s.misses} fresh blocks, ` +
    (s.selfCollect
      ? `${s.minorCollections} young (every ${mb(s.collectAfterBytes)} handed out) / ${s.majorCollections} full collections by the pool (${s.collectionMs.toFixed(0)} ms)`
      : 'collected by V8')
  );
}

/** Kernel objects count as users; when the last one is disposed the free blocks go back to the system. */
export function retainPool(): void {
  users++;
}
export function releasePool(): void {
  if (users > 0 && --users === 0) trimPool();
}
