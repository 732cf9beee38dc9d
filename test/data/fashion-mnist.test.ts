// Fashion-MNIST loader: exact layout and scaling on small files made here, clear errors for
// missing or inconsistent files, and the real data of the Debian package dataset-fashion-mnist.
// The real-data test does not skip when the package is absent: it fails with the install hint.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST_DIR, FASHION_MNIST_FILES, loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { ArgumentError, MaskaccError } from '../../src/errors.js';
import { tempDir } from '../util.js';

const root = tempDir('maskacc-fmnist');
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Uint8 IDX bytes: magic, big-endian dims, data. */
function idxU8(dims: number[], values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + values.length);
  out.set([0, 0, 0x08, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(values, 4 + 4 * dims.length);
  return out;
}

/** A fake data set: n images whose pixel p of image i is (i * 7 + p) % 256, label i % 10. */
function fakeDir(
  name: string,
  n: { train: number; test: number },
  override: Partial<Record<string, Uint8Array>> = {},
): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const split of ['train', 'test'] as const) {
    const count = n[split];
    const pixels = Uint8Array.from({ length: count * 784 }, (_, j) => (Math.floor(j / 784) * 7 + (j % 784)) % 256);
    const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
    const files = FASHION_MNIST_FILES[split];
    const images = override[files.images] ?? idxU8([count, 28, 28], pixels);
    writeFileSync(join(dir, files.images), gzipSync(images));
    writeFileSync(join(dir, files.labels), gzipSync(override[files.labels] ?? idxU8([count], labels)));
  }
  return dir;
}

describe('loadFashionMnist on files made here', () => {
  it('NCHW float images scaled to [0,1], labels, counts and limits', () => {
    const dir = fakeDir('ok', { train: 5, test: 3 });
    const d = loadFashionMnist({ dir, limit: { train: 4 } });
    expect(d.classes).toHaveLength(10);
    expect(d.classes[9]).toBe('Ankle boot');
    expect([d.train.count, d.train.height, d.train.width]).toEqual([4, 28, 28]);
    expect(d.train.images).toHaveLength(4 * 1 * 28 * 28);
    expect(Array.from(d.train.labels)).toEqual([0, 1, 2, 3]);
    for (const i of [0, 3])
      for (const [y, x] of [
        [0, 0],
        [5, 17],
        [27, 27],
      ]) {
        const p = y * 28 + x;
        expect(d.train.images[((i * 1 + 0) * 28 + y) * 28 + x]).toBe(Math.fround(((i * 7 + p) % 256) / 255));
      }
    expect(d.test.count).toBe(3); // no limit: all of them
    expect(loadFashionMnist({ dir, limit: { test: 99 } }).test.count).toBe(3); // a limit is an upper bound
    expect(loadFashionMnist({ dir, limit: { train: 0 } }).train.images).toHaveLength(0);
  });

  it('missing files: names the folder, every missing file and the Debian package', () => {
    const dir = join(root, 'empty');
    mkdirSync(dir);
    writeFileSync(join(dir, FASHION_MNIST_FILES.test.labels), '');
    expect(() => loadFashionMnist({ dir })).toThrow(MaskaccError);
    expect(() => loadFashionMnist({ dir })).toThrow(
      `Fashion-MNIST not found: ${dir} lacks train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, ` +
        `t10k-images-idx3-ubyte.gz. Install the Debian package dataset-fashion-mnist ` +
        `(sudo apt-get install dataset-fashion-mnist, or bash scripts/setup-system.sh --data)`,
    );
  });

  it('counts that disagree', () => {
    const dir = fakeDir('count', { train: 4, test: 3 }, { 'train-labels-idx1-ubyte.gz': idxU8([3], [0, 1, 2]) });
    expect(() => loadFashionMnist({ dir })).toThrow(
      /train-images-idx3-ubyte\.gz holds 4 images but .*train-labels-idx1-ubyte\.gz holds 3 labels/,
    );
  });

  it('images of the wrong size and labels out of range', () => {
    const small = fakeDir(
      'dims',
      { train: 2, test: 2 },
      { 't10k-images-idx3-ubyte.gz': idxU8([2, 14, 14], new Uint8Array(392)) },
    );
    expect(() => loadFashionMnist({ dir: small })).toThrow(
      /t10k-images-idx3-ubyte\.gz: expected uint8 images of N x 28 x 28, got Uint8Array of 2 x 14 x 14/,
    );
    const label = fakeDir('label', { train: 2, test: 2 }, { 't10k-labels-idx1-ubyte.gz': idxU8([2], [3, 10]) });
    expect(() => loadFashionMnist({ dir: label })).toThrow(
      /t10k-labels-idx1-ubyte\.gz: label 1 is 10; expected 0\.\.9/,
    );
  });

  it('bad limits', () => {
    for (const bad of [-1, 1.5, NaN]) {
      expect(() => loadFashionMnist({ dir: root, limit: { test: bad } })).toThrow(ArgumentError);
      expect(() => loadFashionMnist({ dir: root, limit: { test: bad } })).toThrow(/^opts\.limit\.test: got /);
    }
  });
});

describe('Fashion-MNIST from the Debian package', () => {
  it(`loads from ${FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)`, () => {
    const d = loadFashionMnist({ limit: { train: 100, test: 50 } });
    for (const [split, n] of [
      [d.train, 100],
      [d.test, 50],
    ] as const) {
      expect([split.count, split.height, split.width]).toEqual([n, 28, 28]);
      expect(split.images).toBeInstanceOf(Float32Array);
      expect(split.images).toHaveLength(n * 1 * 28 * 28);
      expect(split.labels).toHaveLength(n);
      let min = Infinity;
      let max = -Infinity;
      for (const v of split.images) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect(min).toBe(0);
      expect(max).toBeLessThanOrEqual(1);
      expect(max).toBeGreaterThan(0.9); // real images, not an all-black file
      expect(Math.max(...split.labels)).toBeLessThan(10);
      expect(new Set(split.labels).size).toBeGreaterThan(5); // the classes are mixed
    }
    // The published first labels: images and labels are read in file order and stay aligned.
    expect(Array.from(d.train.labels.subarray(0, 5))).toEqual([9, 0, 0, 3, 0]);
    expect(Array.from(d.test.labels.subarray(0, 5)).map((l) => d.classes[l])).toEqual([
      'Ankle boot',
      'Pullover',
      'Trouser',
      'Trouser',
      'Shirt',
    ]);
  });
});
