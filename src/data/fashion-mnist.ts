// Fashion-MNIST from the files of the Debian package dataset-fashion-mnist: 28x28 grey images of
// 10 clothing classes, 60000 for training and 10000 for testing. Nothing is downloaded: a
// missing file is an error that says which package to install.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ArgumentError, MaskaccError } from '../errors.js';
import { readIdxFile } from './idx.js';

/** Where the Debian package `dataset-fashion-mnist` installs the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Class names by label, as published with the data set. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** The file names of each split; a file is looked for as is and without its `.gz`. */
export const FASHION_MNIST_FILES = Object.freeze({
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
});

const HEIGHT = 28;
const WIDTH = 28;

/** One split: `count` images with one channel, NCHW, and their labels. */
export interface Split {
  /** count x 1 x height x width, NCHW, pixel values scaled from 0..255 to [0, 1]. */
  images: Float32Array;
  /** One class index (0..9) per image; see `classes`. */
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
}

export interface FashionMnist {
  train: Split;
  test: Split;
  /** Class names by label. */
  classes: readonly string[];
}

export interface LoadFashionMnistOptions {
  /** Folder holding the four files; default FASHION_MNIST_DIR. */
  dir?: string;
  /** At most this many images per split (the first ones, in file order); default all. */
  limit?: { train?: number; test?: number };
}

/**
 * Loads both splits of Fashion-MNIST as float tensors ready for a conv net.
 *
 * @throws MaskaccError naming the folder and the missing files (and the Debian package that
 *   provides them) when any file is absent, or naming the file whose contents are not the
 *   expected N x 28 x 28 uint8 images / N uint8 labels below 10 with matching counts.
 * @throws ArgumentError for a limit that is not a non-negative integer.
 */
export function loadFashionMnist(opts: LoadFashionMnistOptions = {}): FashionMnist {
  const dir = opts.dir ?? FASHION_MNIST_DIR;
  const limit = opts.limit ?? {};
  for (const split of ['train', 'test'] as const) {
    const n = limit[split];
    if (n !== undefined && !(Number.isInteger(n) && n >= 0)) {
      throw new ArgumentError(`opts.limit.${split}`, n, 'a non-negative integer (or undefined for all)');
    }
  }

  // Check all four files first so one error lists everything that is missing.
  const paths = { train: { images: '', labels: '' }, test: { images: '', labels: '' } };
  const missing: string[] = [];
  for (const split of ['train', 'test'] as const) {
    for (const kind of ['images', 'labels'] as const) {
      const name = FASHION_MNIST_FILES[split][kind];
      const found = [name, name.replace(/\.gz$/, '')].map((f) => join(dir, f)).find((p) => existsSync(p));
      if (found === undefined) missing.push(name);
      else paths[split][kind] = found;
    }
  }
  if (missing.length > 0) {
    throw new MaskaccError(
      `Fashion-MNIST not found: ${dir} lacks ${missing.join(', ')}. ` +
        `Install the Debian package dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist, ` +
        `or bash scripts/setup-system.sh --data), or pass opts.dir to a folder holding these files.`,
    );
  }

  return {
    train: loadSplit(paths.train.images, paths.train.labels, limit.train),
    test: loadSplit(paths.test.images, paths.test.labels, limit.test),
    classes: FASHION_MNIST_CLASSES,
  };
}

function loadSplit(imagesPath: string, labelsPath: string, limit: number | undefined): Split {
  const images = readIdxFile(imagesPath);
  const labels = readIdxFile(labelsPath);
  const [n, h, w] = images.dims;
  if (!(images.data instanceof Uint8Array) || images.dims.length !== 3 || h !== HEIGHT || w !== WIDTH) {
    throw new MaskaccError(
      `${imagesPath}: expected uint8 images of N x ${HEIGHT} x ${WIDTH}, ` +
        `got ${images.data.constructor.name} of ${images.dims.join(' x ') || 'a scalar'}`,
    );
  }
  if (!(labels.data instanceof Uint8Array) || labels.dims.length !== 1) {
    throw new MaskaccError(
      `${labelsPath}: expected a vector of uint8 labels, ` +
        `got ${labels.data.constructor.name} of ${labels.dims.join(' x ') || 'a scalar'}`,
    );
  }
  if (labels.dims[0] !== n) {
    throw new MaskaccError(`${imagesPath} holds ${n} images but ${labelsPath} holds ${labels.dims[0]} labels`);
  }
  const bad = labels.data.findIndex((l) => l >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) {
    throw new MaskaccError(
      `${labelsPath}: label ${bad} is ${labels.data[bad]}; expected 0..${FASHION_MNIST_CLASSES.length - 1}`,
    );
  }

  const count = Math.min(n, limit ?? n);
  const pixels = count * h * w;
  const out = new Float32Array(pixels); // N x 1 x H x W has the same order as the file's N x H x W
  const src = images.data;
  for (let i = 0; i < pixels; i++) out[i] = src[i] / 255;
  return { images: out, labels: labels.data.slice(0, count), count, height: h, width: w };
}
