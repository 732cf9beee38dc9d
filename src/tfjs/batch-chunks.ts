// Runs a kernel compiled for a batch of N images on any batch B: in chunks of at most N images.
// A kernel takes any 1..N images at run time, so a partial chunk (or a single image) just runs.

/** Per-image arrays of one pass: `size` floats per image. */
export interface Batched {
  data: Float32Array;
  size: number;
}

/**
 * Calls `pass(inputs, outputs, chunk)` once per chunk of at most `compiled` images of a
 * `batch`-image call, with views of each array.
 */
export function runInChunks(
  batch: number,
  compiled: number,
  inputs: readonly Batched[],
  outputs: readonly Batched[],
  pass: (inputs: Float32Array[], outputs: Float32Array[], chunk: number) => void,
): void {
  for (let start = 0, chunk = 0; start < batch; start += compiled, chunk++) {
    const n = Math.min(compiled, batch - start);
    const view = (a: Batched) => a.data.subarray(start * a.size, (start + n) * a.size);
    pass(inputs.map(view), outputs.map(view), chunk);
  }
}
