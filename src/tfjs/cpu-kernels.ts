// A faster GatherV2 for TF.js's cpu backend, installed by compileLayers (so by prune()). The cpu
// backend gathers element by element, allocating index arrays for each one: model.fit's shuffled
// batches (128 Fashion-MNIST images, 100k floats) took ~6 ms of every step, plus the garbage
// collections it caused. This one copies contiguous runs. Same results: it serves a numeric gather
// with batchDims 0 and in-range indices, and hands anything else to the kernel it replaces (which
// also raises TF.js's own errors). Public API only: getKernel / registerKernel and the backend's
// readSync / write.
import type { KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { tf } from './tf.js';

type Values = Float32Array | Int32Array | Uint8Array;

let replaced: KernelConfig | undefined;

/** Install the fast GatherV2 on the cpu backend (once per process; later calls do nothing). */
export function installCpuKernels(): void {
  if (replaced) return;
  const original = tf.getKernel('GatherV2', 'cpu');
  if (!original) return; // no cpu backend registered: nothing to speed up
  replaced = original;
  tf.unregisterKernel('GatherV2', 'cpu');
  tf.registerKernel({ ...original, kernelFunc: gatherRuns(original.kernelFunc) });
}

/** The gather as contiguous runs: out[o][i][inner] = x[o][indices[i]][inner]. */
function gatherRuns(fallback: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, attrs } = args;
    const backend = args.backend as KernelBackend;
    const { x, indices } = inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = attrs as unknown as { axis: number; batchDims: number };
    const numeric = (d: string) => d === 'float32' || d === 'int32' || d === 'bool';
    const rank = x.shape.length;
    const ax = axis < 0 ? axis + rank : axis;
    if (batchDims !== 0 || !numeric(x.dtype) || indices.dtype !== 'int32' || !(ax >= 0 && ax < rank))
      return fallback(args);
    const xs = backend.readSync(x.dataId) as Values,
      idx = backend.readSync(indices.dataId) as Int32Array;
    const size = (dims: number[]) => dims.reduce((p, d) => p * d, 1);
    const outer = size(x.shape.slice(0, ax)),
      n = x.shape[ax],
      inner = size(x.shape.slice(ax + 1));
    if (!idx.every((i) => i >= 0 && i < n)) return fallback(args); // TF.js says which index is out of range
    const out = new (xs.constructor as new (length: number) => Values)(outer * idx.length * inner);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < idx.length; j++) {
        const from = (o * n + idx[j]) * inner;
        out.set(xs.subarray(from, from + inner), (o * idx.length + j) * inner);
      }
    const shape = [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)];
    return { dataId: backend.write(out, shape, x.dtype), shape, dtype: x.dtype };
  };
}
