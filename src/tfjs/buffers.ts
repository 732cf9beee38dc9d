// Output arrays for the adapter's tensors, recycled once TF.js has released the tensor holding
// them. A training step allocates ~150 MB of activations and gradients; fresh arrays page-fault
// and zero that much memory every step, a cost comparable to the pruned convolutions themselves.
// Only on the cpu backend, whose tensors hold our arrays without copying: an array is free again
// when the backend's reference count of its data id is 0 (every tensor and view of it disposed),
// asked through the backend interface's refCount (KernelBackend.refCount, public API). New arrays
// come from the runtime's output pool (64-byte aligned, huge-page advised); recycling them here,
// as soon as TF.js releases their tensors, rather than when V8 collects them, is what keeps a
// pruning epoch fast (returning them only through collections made one 52.4 s instead of 29.0 s).
import { takeArray as takePooled } from '../runtime/pool.js';
import { tf, type Tensor } from './tf.js';

interface Lent {
  array: Float32Array;
  dataId: object | undefined;
}

const pools = new Map<number, Lent[]>();
/**
 * Bytes of released arrays kept for reuse, at most: past it, a miss lets go of the other sizes'
 * released arrays first (they return to the output pool, which has its own bound, when collected).
 */
const FREE_BUDGET = 1 << 30;

/** Whether a data id is still held by some tensor, or undefined off the cpu backend. */
function heldBy(): ((dataId: object) => boolean) | undefined {
  if (tf.getBackend() !== 'cpu') return undefined;
  const backend = tf.backend();
  return (dataId) => backend.refCount(dataId) > 0;
}

/** Whether an entry's tensor was adopted and has since been released (its array is free again). */
function isReleased(e: Lent, held: (dataId: object) => boolean): boolean {
  return e.dataId !== undefined && !held(e.dataId);
}

/**
 * A Float32Array of `size` elements with arbitrary contents: the caller writes every element
 * (all maskacc kernels and training ops write their whole outputs).
 */
export function takeArray(size: number): Float32Array {
  const held = heldBy();
  if (!held) return takePooled(size);
  let pool = pools.get(size);
  if (!pool) pools.set(size, (pool = []));
  let entry = pool.find((e) => isReleased(e, held));
  if (!entry) {
    if (bufferStats().freeBytes + size * 4 > FREE_BUDGET) release(held, size);
    pool.push((entry = { array: takePooled(size), dataId: undefined }));
  }
  entry.dataId = undefined; // taken: not free until a tensor adopts it and is released
  return entry.array;
}

/** A tensor over an array from takeArray (no copy on the cpu backend). */
export function adopt<T extends Tensor>(array: Float32Array, shape: readonly number[]): T {
  const t = tf.tensor(array, shape as number[], 'float32') as T;
  const entry = pools.get(array.length)?.find((e) => e.array === array);
  if (entry) entry.dataId = t.dataId;
  return t;
}

/** Drop the released arrays (their tensors gone) of every size but `keep`. */
function release(held: (dataId: object) => boolean, keep?: number): void {
  for (const [size, list] of pools) {
    if (size === keep) continue;
    const kept = list.filter((e) => !isReleased(e, held));
    if (kept.length) pools.set(size, kept);
    else pools.delete(size);
  }
}

/**
 * Let go of every array whose tensor TF.js released: called when a masked layer is disposed, so a
 * disposed model's memory goes back to the output pool (and from there to the system).
 */
export function releaseFreeArrays(): void {
  const held = heldBy();
  if (held) release(held);
}

/** Bytes of the adapter's arrays: released ones kept for reuse, and ones a tensor still holds (or in flight). */
export function bufferStats(): { freeBytes: number; heldBytes: number } {
  const held = heldBy();
  let freeBytes = 0,
    heldBytes = 0;
  for (const [size, list] of pools)
    for (const e of list) {
      if (held && isReleased(e, held)) freeBytes += size * 4;
      else heldBytes += size * 4;
    }
  return { freeBytes, heldBytes };
}
