// The benchmark's workloads as data: the conv layers of VGG-16 and ResNet-56 for CIFAR-10 and of
// ResNet-50 for ImageNet, with a count per unique layer so model totals weight each timed layer
// by how often the network runs it.
import { resnet50ImageNet, resnet56Cifar, vgg16Cifar, type ConvLayer, type ConvSpec } from '../src/index.js';

export type ModelKey = 'vgg16' | 'resnet56' | 'resnet50';

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

/**
 * A zoo layer as the benchmark's density-free spec (the zoo's models are the single definition of
 * the shapes; every conv there is followed by batch norm, so none carries a bias).
 */
function benchSpec(l: ConvLayer): ConvSpec {
  return {
    batch: l.batch,
    inChannels: l.inChannels,
    outChannels: l.outChannels,
    inHeight: l.inHeight,
    inWidth: l.inWidth,
    kernel: l.kernel[0],
    stride: l.stride[0],
    padding: l.padding[0],
    // A first layer has no backward-data pass in training, for maskacc or any baseline.
    ...(l.inputGrad ? {} : { inputGrad: false }),
  };
}

/** Merges entries with identical specs (in first-seen order), summing counts and joining distinct names. */
export function dedupe(layers: readonly ModelLayer[]): ModelLayer[] {
  const byKey = new Map<string, ModelLayer>();
  for (const l of layers) {
    const key = JSON.stringify(l.spec);
    const seen = byKey.get(key);
    if (seen) {
      seen.count += l.count;
      if (!seen.name.split('+').includes(l.name)) seen.name = `${seen.name}+${l.name}`;
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
  layers: dedupe(vgg16Cifar().layers.map((l) => ({ name: l.name, spec: benchSpec(l.layer), count: 1 }))),
};

/**
 * ResNet-56: stem + 3 stages of 9 basic blocks (2 convs each). The first conv of stages 2 and 3
 * downsamples with stride 2; shortcuts are parameter-free (option A), so they add no convs.
 * Entries are named by stage: `s2_down` for a stage's strided conv, `s2` for the rest.
 */
const resnet56: Model = {
  name: 'ResNet-56 (CIFAR-10)',
  maskLinking: 'independent',
  layers: dedupe(
    resnet56Cifar().layers.map((l) => {
      const stage = /^s(\d)/.exec(l.name)?.[1];
      const name = !stage ? l.name : l.layer.stride[0] > 1 ? `s${stage}_down` : `s${stage}`;
      return { name, spec: benchSpec(l.layer), count: 1 };
    }),
  ),
};

/**
 * ResNet-50 for ImageNet (224x224): the 7x7 stem and 16 bottlenecks (1x1, 3x3, 1x1, plus a 1x1
 * projection in each stage's first block), 53 convs in 23 unique shapes. Batch 8 by default so the
 * whole benchmark stays within its time budget (--batch overrides every model's batch). Entries
 * are named by stage and shape, e.g. `s1 64-64 3x3`, `s2 256-512 1x1/2`.
 */
const RESNET50_BATCH = 8;
const resnet50: Model = {
  name: `ResNet-50 (ImageNet, batch ${RESNET50_BATCH})`,
  maskLinking: 'independent',
  layers: dedupe(
    resnet50ImageNet({ batch: RESNET50_BATCH }).layers.map((l) => {
      const L = l.layer,
        stage = /^s(\d)/.exec(l.name)?.[1];
      const name = !stage
        ? l.name
        : `s${stage} ${L.inChannels}-${L.outChannels} ${L.kernel.join('x')}${L.stride[0] > 1 ? `/${L.stride[0]}` : ''}`;
      return { name, spec: benchSpec(L), count: 1 };
    }),
  ),
};

export const MODELS: Record<ModelKey, Model> = { vgg16, resnet56, resnet50 };

/** The model with every layer's batch replaced (for quick runs; counts and links unchanged). */
export function withBatch(model: Model, batch: number): Model {
  return { ...model, layers: model.layers.map((l) => ({ ...l, spec: { ...l.spec, batch } })) };
}

/** Total number of convs the entries stand for (13 for VGG-16, 55 for ResNet-56, 53 for ResNet-50). */
export function convCount(model: Model): number {
  return model.layers.reduce((s, l) => s + l.count, 0);
}
