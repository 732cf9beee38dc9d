// Mask handling: validates a user mask and turns it into the sorted index list the kernels take.
// Index lists depend only on the mask, so they are built once per setMasks, not per call.

import { ArgumentError } from '../errors.js';

export type MaskLike = ArrayLike<number | boolean>;

/** Indices of kept entries (nonzero / true) of a mask of length `n`; all kept when undefined. */
export function keptIndices(mask: MaskLike | undefined, n: number, argument: string): Int32Array {
  if (mask === undefined) return Int32Array.from({ length: n }, (_, i) => i);
  if (mask === null || typeof mask !== 'object' || typeof (mask as ArrayLike<unknown>).length !== 'number') {
    throw new ArgumentError(argument, mask, `an array-like of ${n} numbers or booleans`);
  }
  if (mask.length !== n) throw new ArgumentError(argument, mask, `length ${n}, got length ${mask.length}`);
  const kept: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = mask[i];
    if (typeof v === 'boolean') {
      if (v) kept.push(i);
    } else if (typeof v === 'number' && !Number.isNaN(v)) {
      if (v !== 0) kept.push(i);
    } else {
      throw new ArgumentError(`${argument}[${i}]`, v, 'a number (nonzero = kept) or a boolean');
    }
  }
  return Int32Array.from(kept);
}

/**
 * `keep` of the indices 0..n-1 drawn uniformly at random (a partial Fisher-Yates shuffle over
 * `next`, uniform in [0, 1)), sorted: kept channels with the runs and gaps pruning leaves.
 */
export function drawKept(n: number, keep: number, next: () => number): Int32Array {
  const idx = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < keep; i++) {
    const j = i + Math.floor(next() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, keep).sort();
}
