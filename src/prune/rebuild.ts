// A new model from an old one's topology: each layer's JSON (class name and config, snake_case
// as model.toJSON writes them) may be rewritten, then its weights are set from the old layer.
// prune() turns Conv2D / BatchNormalization into their masked layers this way, and stripPruning
// turns them back, fewer channels. Layer names are kept, so the two models map by name.
import type { LayersModel } from '@tensorflow/tfjs';
import { tf, type Tensor } from '../tfjs/tf.js';
// Registers the classes modelFromJSON builds.
import '../tfjs/masked-conv2d.js';
import '../tfjs/masked-batch-norm.js';
import '../tfjs/max-pool.js';
import '../tfjs/relu.js';
import '../tfjs/dense.js';

type Layer = InstanceType<typeof tf.layers.Layer>;
export type LayerJson = { class_name: string; config: Record<string, unknown> };

/** Config keys kept when a layer changes class (initializers, regularizers and the like are not). */
export const BASE_KEYS = ['name', 'trainable', 'dtype', 'batch_input_shape'];
export const CONV_KEYS = [
  ...BASE_KEYS,
  'filters',
  'kernel_size',
  'strides',
  'padding',
  'data_format',
  'dilation_rate',
  'activation',
  'use_bias',
];
export const POOL_KEYS = [...BASE_KEYS, 'pool_size', 'strides', 'padding', 'data_format'];
export const DENSE_KEYS = [...BASE_KEYS, 'units', 'activation', 'use_bias'];
export const NORM_KEYS = [...BASE_KEYS, 'axis', 'momentum', 'epsilon', 'center', 'scale'];

export function pick(config: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => config[k] !== undefined).map((k) => [k, config[k]]));
}

/**
 * Rebuilds `model` with `rewrite` applied to each layer's JSON (undefined: unchanged); `weights`
 * gives each new layer its weights from the old layer of the same name.
 */
export async function rebuildModel(
  model: LayersModel,
  rewrite: (layer: Layer, json: LayerJson) => LayerJson | undefined,
  weights: (old: Layer, fresh: Layer) => Tensor[],
): Promise<LayersModel> {
  const topology = model.toJSON(null, false) as { config: { layers: (LayerJson & { name?: string })[] } };
  topology.config.layers = topology.config.layers.map((json) => {
    const name = json.config.name as string;
    const old = model.layers.find((l) => l.name === name);
    // TF.js leaves a separable conv's depth multiplier out of its JSON (it would come back as 1).
    if (json.class_name === 'SeparableConv2D' && old && json.config.depth_multiplier === undefined)
      json.config.depth_multiplier = (old as unknown as { depthMultiplier: number }).depthMultiplier;
    const next = old && rewrite(old, json);
    return next ? { ...json, ...next } : json;
  });
  const rebuilt = await tf.models.modelFromJSON({ modelTopology: topology } as never);
  for (const fresh of rebuilt.layers) {
    const old = model.layers.find((l) => l.name === fresh.name);
    if (!old || fresh.weights.length === 0) continue;
    // Clones: getWeights() returns the old model's variables themselves, which must stay alive.
    const w = tf.tidy(() => weights(old, fresh).map((t) => t.clone()));
    fresh.setWeights(w);
    tf.dispose(w);
  }
  return rebuilt;
}
