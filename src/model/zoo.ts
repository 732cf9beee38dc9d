// Model definitions as DSL code: VGG-16 and ResNet-20/56 for CIFAR-10, ResNet-18/50 for ImageNet
// (conv layers only; shapes from the papers). Batch and densities are parameters.

import type { ConvSpec } from '../ir/conv.js';
import { model, type Model, type ModelLayerDef } from './model.js';

export interface ZooOptions {
  batch?: number;
  /** Expected kept fraction of filters (and so of the next layers' input channels). */
  density?: number;
}

function conv(o: ZooOptions, c: number, k: number, size: number, kernel: number, stride = 1, first = false): ConvSpec {
  const d = o.density ?? 1;
  return {
    batch: o.batch ?? 64,
    inChannels: c,
    outChannels: k,
    inHeight: size,
    inWidth: size,
    kernel,
    stride,
    padding: Math.floor(kernel / 2),
    density: { out: d, in: first ? 1 : d },
    // Training never needs the gradient of the input image.
    ...(first ? { inputGrad: false } : {}),
  };
}

/** VGG-16 for CIFAR-10: 13 3x3 convs, max-pooling between stages (masks chain one to one). */
export function vgg16Cifar(o: ZooOptions = {}): Model {
  const stages: [number, number, number][] = [
    [64, 2, 32],
    [128, 2, 16],
    [256, 3, 8],
    [512, 3, 4],
    [512, 3, 2],
  ];
  const defs: ModelLayerDef[] = [];
  let c = 3,
    prev: string | null = null;
  stages.forEach(([k, n, size], s) => {
    for (let i = 0; i < n; i++) {
      const name = `conv${s + 1}_${i + 1}`;
      defs.push({ name, spec: conv(o, c, k, size, 3, 1, prev === null), input: prev });
      c = k;
      prev = name;
    }
  });
  return model('vgg16-cifar', defs);
}

/**
 * ResNet-(6n+2) for CIFAR-10 (He et al. 2016): stem, then 3 stages of n basic blocks at 16, 32, 64
 * channels; identity shortcuts add each block's output to its input, so every block's second
 * conv (and the stem, for stage 1) shares the stage's mask group.
 */
function resnetCifar(n: number, o: ZooOptions): Model {
  const defs: ModelLayerDef[] = [{ name: 'stem', spec: conv(o, 3, 16, 32, 3, 1, true), input: null, group: 'stage1' }];
  let c = 16,
    size = 32,
    prev = 'stem';
  [16, 32, 64].forEach((k, s) => {
    for (let b = 0; b < n; b++) {
      const stride = s > 0 && b === 0 ? 2 : 1;
      const a = `s${s + 1}b${b + 1}a`,
        bb = `s${s + 1}b${b + 1}b`;
      defs.push({ name: a, spec: conv(o, c, k, size, 3, stride), input: prev });
      size /= stride;
      defs.push({ name: bb, spec: conv(o, k, k, size, 3), input: a, group: `stage${s + 1}` });
      c = k;
      prev = bb;
    }
  });
  return model(`resnet${6 * n + 2}-cifar`, defs);
}

export const resnet20Cifar = (o: ZooOptions = {}) => resnetCifar(3, o);
export const resnet56Cifar = (o: ZooOptions = {}) => resnetCifar(9, o);

/**
 * ResNet-18 / ResNet-50 for ImageNet (224x224): 7x7 stem (stride 2) and max-pool, then 4 stages;
 * the first block of a stage changes size through a 1x1 projection conv that joins the block's
 * output group.
 */
function resnetImageNet(blocks: number[], bottleneck: boolean, o: ZooOptions): Model {
  const defs: ModelLayerDef[] = [{ name: 'stem', spec: conv(o, 3, 64, 224, 7, 2, true), input: null }];
  let c = 64,
    size = 56,
    prev = 'stem';
  [64, 128, 256, 512].forEach((width, s) => {
    const out = bottleneck ? width * 4 : width;
    for (let b = 0; b < blocks[s]; b++) {
      const stride = s > 0 && b === 0 ? 2 : 1;
      const group = `stage${s + 1}`;
      const p = `s${s + 1}b${b + 1}`;
      if (b === 0 && (stride !== 1 || c !== out)) {
        defs.push({ name: `${p}proj`, spec: conv(o, c, out, size, 1, stride), input: prev, group });
      } else if (b === 0) {
        defs[defs.length - 1] = { ...defs[defs.length - 1], group }; // identity join with the stage input
      }
      if (bottleneck) {
        defs.push({ name: `${p}a`, spec: conv(o, c, width, size, 1), input: prev });
        defs.push({ name: `${p}b`, spec: conv(o, width, width, size, 3, stride), input: `${p}a` });
        defs.push({ name: `${p}c`, spec: conv(o, width, out, size / stride, 1), input: `${p}b`, group });
      } else {
        defs.push({ name: `${p}a`, spec: conv(o, c, width, size, 3, stride), input: prev });
        defs.push({ name: `${p}b`, spec: conv(o, width, width, size / stride, 3), input: `${p}a`, group });
      }
      size /= stride;
      c = out;
      prev = bottleneck ? `${p}c` : `${p}b`;
    }
  });
  return model(bottleneck ? 'resnet50-imagenet' : 'resnet18-imagenet', defs);
}

export const resnet18ImageNet = (o: ZooOptions = {}) => resnetImageNet([2, 2, 2, 2], false, o);
export const resnet50ImageNet = (o: ZooOptions = {}) => resnetImageNet([3, 4, 6, 3], true, o);

export const MODEL_ZOO = {
  'vgg16-cifar': vgg16Cifar,
  'resnet20-cifar': resnet20Cifar,
  'resnet56-cifar': resnet56Cifar,
  'resnet18-imagenet': resnet18ImageNet,
  'resnet50-imagenet': resnet50ImageNet,
} as const;
