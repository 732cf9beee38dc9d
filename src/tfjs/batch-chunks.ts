// Runs a kernel compiled for a batch of N images on any batch B: B > N in chunks of N, and a
// partial chunk padded with zero images into a full-batch buffer (its extra outputs dropped).
// The one place to change once MaskedConv takes a run-time batch (then a partial chunk just runs).

/** Per-image arrays of one pass: `size` floats per image. */
export interface Batched {
  data: Float32Array;
  size: number;
}

/**
 * Calls `pass(inputs, outputs, chunk)` once per chunk of `compiled` images of a `batch`-image
 * call, with views (or, for a partial chunk, zero-padded copies) of each array.
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
    if (n === compiled) {
      pass(inputs.map(view), outputs.map(view), chunk);
      continue;
    }
    const padded = (a: Batched) => new Float32Array(compiled * a.size);
    const ins = inputs.map((a) => {
      const p = padded(a);
      p.set(view(a));
      return p;
    });
    const outs = outputs.map(padded);
    pass(ins, outs, chunk);
    outputs.forEach((a, i) => view(a).set(outs[i].subarray(0, n * a.size)));
  }
}
