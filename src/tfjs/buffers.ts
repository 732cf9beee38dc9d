// Output arrays for the adapter's tensors, from maskacc's output pool (src/runtime/pool.ts). A
// training step allocates ~150 MB of activations and gradients; fresh arrays page-fault and zero
// that much memory every step, a cost comparable to the pruned convolutions themselves. A pooled
// array's memory goes back to the pool when the array is garbage-collected, i.e. once TF.js has
// released every tensor holding it: no TF.js internals are read to know when that is.
import { tf, type Tensor } from './tf.js';
import { takeArray as takePooled } from '../runtime/pool.js';

/**
 * A Float32Array of `size` elements with arbitrary contents: the caller writes every element
 * (all maskacc kernels and training ops write their whole outputs).
 */
export function takeArray(size: number): Float32Array {
  return takePooled(size);
}

/** A tensor over an array from takeArray (no copy on the cpu backend). */
export function adopt<T extends Tensor>(array: Float32Array, shape: readonly number[]): T {
  return tf.tensor(array, shape as number[], 'float32') as T;
}
