// The cpu GatherV2 that compileLayers installs, against a plain reference on flat arrays: every
// axis, float32 / int32 / bool, repeated and multi-dimensional indices, no indices; batchDims and
// out-of-range indices go to TF.js's own kernel (its error included).
import { beforeAll, describe, expect, it } from 'vitest';
import { installCpuKernels } from '../../src/tfjs/cpu-kernels.js';
import { tf, type Tensor } from '../../src/tfjs/tf.js';
import { rng } from '../util.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  installCpuKernels();
  installCpuKernels(); // idempotent
});

/** out[o][j][i] = x[o][idx[j]][i] over the flat arrays. */
function gatherRef(x: ArrayLike<number>, shape: number[], idx: ArrayLike<number>, axis: number): number[] {
  const size = (d: number[]) => d.reduce((p, v) => p * v, 1);
  const outer = size(shape.slice(0, axis)),
    n = shape[axis],
    inner = size(shape.slice(axis + 1));
  const out: number[] = [];
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < idx.length; j++) for (let i = 0; i < inner; i++) out.push(x[(o * n + idx[j]) * inner + i]);
  return out;
}

describe('installCpuKernels: GatherV2 as contiguous runs', () => {
  it('matches the reference on every axis, dtype and index shape', () => {
    const r = rng(3);
    const shape = [5, 4, 3, 2];
    const values = r.uniformArray(5 * 4 * 3 * 2, -4, 4);
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      const data = dtype === 'float32' ? values : Int32Array.from(values, (v) => (dtype === 'bool' ? +(v > 0) : v));
      const x = tf.tensor(data, shape, dtype);
      for (let axis = 0; axis < 4; axis++)
        for (const idx of [[0], [3, 1, 1, 0], [], [1, 0, 1, 1, 0, 0]]) {
          const take = idx.map((i) => i % shape[axis]);
          const indexShape = take.length === 6 ? [2, 3] : [take.length];
          const got = tf.gather(x, tf.tensor(take, indexShape, 'int32'), axis - (axis === 3 ? 4 : 0)) as Tensor;
          expect(got.dtype).toBe(dtype);
          expect(got.shape).toEqual([...shape.slice(0, axis), ...indexShape, ...shape.slice(axis + 1)]);
          expect(Array.from(got.dataSync()), `${dtype} axis ${axis} [${take}]`).toEqual(
            gatherRef(data, shape, take, axis),
          );
        }
    }
  });

  it("hands batchDims and out-of-range indices to TF.js's kernel", () => {
    const x = tf.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const byRow = tf.gather(
      x,
      tf.tensor(
        [
          [2, 0],
          [1, 1],
        ],
        [2, 2],
        'int32',
      ),
      1,
      1,
    );
    expect(Array.from(byRow.dataSync())).toEqual([3, 1, 5, 5]);
    expect(() => tf.gather(x, tf.tensor([3], [1], 'int32'), 1).dataSync()).toThrow(/3/);
  });
});
