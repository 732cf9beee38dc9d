// The benchmark's workloads as data: the conv layers of VGG-16 and ResNet-56 for CIFAR-10, with a
// count per unique layer so model totals weight each timed layer by how often the network runs it.
import type { ConvSpec } from '../src/index.js';

export type ModelKey = 'vgg16' | 'resnet56';

export interface ModelLayer {
  name: string;
  /** Density-free spec: the benchmark adds `density` per run from the masks it draws. */
  spec: ConvSpec;
  /** How many identical convs of the network this entry stands for. */
  count: number;
}

export interface Model {
  name: string;
  /**
   * How input masks relate to the previous layer's output mask. 'chain': channels map one-to-one
   * (plain sequential net), so layer i reads what layer i-1 kept. 'independent': residual adds
   * mix channels, so each layer draws its own mask (the simplification the brief allows).
   */
  maskLinking: 'chain' | 'independent';
  layers: ModelLayer[];
}

// Every conv is followed by batch norm, so none carries a bias (as in the usual CIFAR models).
const BATCH = 64;

function conv3x3(inChannels: number, outChannels: number, size: number, stride = 1): ConvSpec {
  return { batch: BATCH, inChannels, outChannels, inHeight: size, inWidth: size, kernel: 3, stride, padding: 1 };
}

/** Merges entries with identical specs (in first-seen order), summing counts and joining names. */
export function dedupe(layers: readonly ModelLayer[]): ModelLayer[] {
  const byKey = new Map<string, ModelLayer>();
  for (const l of layers) {
    const key = JSON.stringify(l.spec);
    const seen = byKey.get(key);
    if (seen) {
      seen.count += l.count;
      seen.name = `${seen.name}+${l.name}`;
    } else {
      byKey.set(key, { ...l, spec: { ...l.spec } });
    }
  }
  return [...byKey.values()];
}

/** VGG-16 (CIFAR variant): 13 convs, maxpool between stages halves the input size. */
const vgg16: Model = {
  name: 'VGG-16 (CIFAR-10)',
  maskLinking: 'chain',
  layers: dedupe([
    { name: 'conv1_1', spec: conv3x3(3, 64, 32), count: 1 },
    { name: 'conv1_2', spec: conv3x3(64, 64, 32), count: 1 },
    { name: 'conv2_1', spec: conv3x3(64, 128, 16), count: 1 },
    { name: 'conv2_2', spec: conv3x3(128, 128, 16), count: 1 },
    { name: 'conv3_1', spec: conv3x3(128, 256, 8), count: 1 },
    { name: 'conv3_2', spec: conv3x3(256, 256, 8), count: 1 },
    { name: 'conv3_3', spec: conv3x3(256, 256, 8), count: 1 },
    { name: 'conv4_1', spec: conv3x3(256, 512, 4), count: 1 },
    { name: 'conv4_2', spec: conv3x3(512, 512, 4), count: 1 },
    { name: 'conv4_3', spec: conv3x3(512, 512, 4), count: 1 },
    { name: 'conv5_1', spec: conv3x3(512, 512, 2), count: 1 },
    { name: 'conv5_2', spec: conv3x3(512, 512, 2), count: 1 },
    { name: 'conv5_3', spec: conv3x3(512, 512, 2), count: 1 },
  ]),
};

/**
 * ResNet-56: stem + 3 stages of 9 basic blocks (2 convs each). The first conv of stages 2 and 3
 * downsamples with stride 2; shortcuts are parameter-free (option A), so they add no convs.
 */
const resnet56: Model = {
  name: 'ResNet-56 (CIFAR-10)',
  maskLinking: 'independent',
  layers: dedupe([
    { name: 'stem', spec: conv3x3(3, 16, 32), count: 1 },
    { name: 's1', spec: conv3x3(16, 16, 32), count: 18 },
    { name: 's2_down', spec: conv3x3(16, 32, 32, 2), count: 1 },
    { name: 's2', spec: conv3x3(32, 32, 16), count: 17 },
    { name: 's3_down', spec: conv3x3(32, 64, 16, 2), count: 1 },
    { name: 's3', spec: conv3x3(64, 64, 8), count: 17 },
  ]),
};

export const MODELS: Record<ModelKey, Model> = { vgg16, resnet56 };

/** The model with every layer's batch replaced (for quick runs; counts and links unchanged). */
export function withBatch(model: Model, batch: number): Model {
  return { ...model, layers: model.layers.map((l) => ({ ...l, spec: { ...l.spec, batch } })) };
}

/** Total number of convs the entries stand for (13 for VGG-16, 55 for ResNet-56). */
export function convCount(model: Model): number {
  return model.layers.reduce((s, l) => s + l.count, 0);
}
