// stripPruning(model): the compact model of a masked one, in standard TF.js layers only (Conv2D,
// BatchNormalization, DepthwiseConv2D, Dense, ...): pruned filters, their batch-norm and depthwise
// channels, the input channels of the convs (separable and transposed ones too) that read them,
// directly or in a concatenation, and the dense rows of dead features are removed. It computes
// what the masked model computes, saves with model.save and loads and runs without maskacc.
import type { LayersModel } from '@tensorflow/tfjs';
import { MaskedBatchNormalization } from '../tfjs/masked-batch-norm.js';
import { MaskedConv2D } from '../tfjs/masked-conv2d.js';
import { MaskaccMaxPooling2D } from '../tfjs/max-pool.js';
import { MaskaccReLU } from '../tfjs/relu.js';
import { MaskaccDense } from '../tfjs/dense.js';
import { tf, type Tensor } from '../tfjs/tf.js';
import { sliceMasks, traceMaskGroups, type FeatureMap, type MaskGroup } from './graph.js';
import { BASE_KEYS, CONV_KEYS, DENSE_KEYS, NORM_KEYS, POOL_KEYS, pick, rebuildModel } from './rebuild.js';

type Layer = InstanceType<typeof tf.layers.Layer>;

const indices = (mask: Uint8Array) => [...mask.keys()].filter((i) => mask[i]);

/** The channels a group keeps: any its convs keep (all, for a group that cannot be pruned). */
function keptChannels(group: MaskGroup, convs: Map<string, MaskedConv2D>): Uint8Array {
  const masks = group.convs.map((n) => convs.get(n)!.getMasks().out);
  if (group.unprunable) return new Uint8Array(masks[0].length).fill(1);
  return masks.reduce((a, m) => a.map((v, i) => v | m[i]));
}

/** Dense input rows of the kept features, in the compact model's order. */
function featureRows(f: Pick<FeatureMap, 'channels' | 'plane' | 'channelMajor'>, kept: number[]): number[] {
  const plane = Array.from({ length: f.plane }, (_, p) => p);
  return f.channelMajor
    ? kept.flatMap((c) => plane.map((p) => c * f.plane + p))
    : plane.flatMap((p) => kept.map((c) => p * f.channels + c));
}

export async function stripPruning(model: LayersModel): Promise<LayersModel> {
  const groups = traceMaskGroups(model);
  const convs = new Map(
    model.layers.filter((l): l is MaskedConv2D => l instanceof MaskedConv2D).map((l) => [l.name, l]),
  );
  const kept = new Map(groups.map((g) => [g.id, indices(keptChannels(g, convs))]));
  const outOf = new Map<string, number[]>(), // conv or batch norm -> its kept channels
    inOf = new Map<string, number[]>(), // conv -> its kept input channels
    rowsOf = new Map<string, number[]>(), // dense -> its kept input rows
    unitsOf = new Map<string, number[]>(), // dense scaling a group's channels -> its kept units
    reshapeOf = new Map<string, { axis: number; kept: number }>(); // the reshape after it -> its channel axis, kept count
  for (const g of groups) {
    const k = kept.get(g.id)!;
    // (An unprunable group keeps its depthwise convs whole: one may have a depth multiplier.)
    [...g.convs, ...g.norms, ...(g.unprunable ? [] : g.depthwise)].forEach((n) => outOf.set(n, k));
    [...g.consumers, ...g.readers].forEach((n) => inOf.set(n, k));
    g.denses.forEach((d) => rowsOf.set(d.layer, featureRows(d.features, k)));
    if (g.unprunable) continue;
    for (const sc of g.scales) {
      unitsOf.set(sc.dense, k);
      reshapeOf.set(sc.reshape, { axis: sc.axis, kept: k.length });
    }
  }
  // Layers reading a concatenation: the kept channels of each part, side by side.
  for (const [name, { mask, features }] of sliceMasks(groups, (g) =>
    g.unprunable ? undefined : keptChannels(g, convs),
  )) {
    if (features) rowsOf.set(name, featureRows({ ...features, channels: mask.length }, indices(mask)));
    else (convs.has(name) ? inOf : outOf).set(name, indices(mask));
  }
  return rebuildModel(
    model,
    (layer, json) => {
      if (layer instanceof MaskedConv2D)
        return {
          class_name: 'Conv2D',
          config: { ...pick(json.config, CONV_KEYS), filters: outOf.get(layer.name)!.length },
        };
      if (layer instanceof MaskedBatchNormalization)
        return { class_name: 'BatchNormalization', config: pick(json.config, NORM_KEYS) };
      if (layer instanceof MaskaccMaxPooling2D)
        return { class_name: 'MaxPooling2D', config: pick(json.config, POOL_KEYS) };
      const units = unitsOf.get(layer.name)?.length;
      if (layer instanceof MaskaccDense)
        return { class_name: 'Dense', config: { ...pick(json.config, DENSE_KEYS), ...(units ? { units } : {}) } };
      if (units) return { ...json, config: { ...json.config, units } };
      const reshape = reshapeOf.get(layer.name);
      if (reshape) {
        // (target_shape has no batch axis: the channel axis is one less in it)
        const target = (json.config.target_shape as number[]).map((v, i) =>
          i === reshape.axis - 1 ? reshape.kept : v,
        );
        return { ...json, config: { ...json.config, target_shape: target } };
      }
      if (layer instanceof MaskaccReLU)
        return { class_name: 'Activation', config: { ...pick(json.config, BASE_KEYS), activation: 'relu' } };
      return undefined;
    },
    (old) => compactWeights(old, outOf.get(old.name), inOf.get(old.name), rowsOf.get(old.name), unitsOf.get(old.name)),
  );
}

/** The old layer's weights restricted to the kept channels (masks applied, then gathered). */
function compactWeights(layer: Layer, out?: number[], inn?: number[], rows?: number[], units?: number[]): Tensor[] {
  if (layer instanceof MaskedConv2D) {
    const m = layer.getMasks();
    const kernel = tf.mul(
      tf.mul(layer.kernelVariable.read(), tf.tensor1d(m.out, 'float32')),
      tf.reshape(tf.tensor1d(m.in, 'float32'), [-1, 1]),
    );
    const k = tf.gather(inn ? tf.gather(kernel, inn, 2) : kernel, out!, 3);
    const bias =
      layer.biasVariable && tf.gather(tf.mul(layer.biasVariable.read(), tf.tensor1d(m.out, 'float32')), out!);
    return bias ? [k, bias] : [k];
  }
  if (layer instanceof MaskedBatchNormalization) {
    const mask = tf.tensor1d(layer.getMask(), 'float32');
    const weights = layer.getWeights().slice(0, -1); // [gamma], [beta], moving mean, moving variance
    const affine = Number(layer.scale) + Number(layer.center);
    const masked = weights.map((w, i) => (i < affine ? tf.mul(w, mask) : w));
    return out ? masked.map((w) => tf.gather(w, out)) : masked; // no group: after no conv
  }
  // A traced depthwise conv: its kernel [R][S][C][1] and bias on the kept channels.
  if (layer.getClassName() === 'DepthwiseConv2D' && out) {
    const [kernel, ...bias] = layer.getWeights();
    return [tf.gather(kernel, out, 2), ...bias.map((b) => tf.gather(b, out))];
  }
  // Readers: the weights of the kept input channels. A separable conv's depthwise kernel is
  // [R][S][C][M] and its pointwise one [1][1][C*M][F] (rows c*M .. c*M + M - 1 for channel c); a
  // transposed conv's kernel is [R][S][F][C].
  if (layer.getClassName() === 'SeparableConv2D' && inn) {
    const [depthwise, pointwise, ...bias] = layer.getWeights();
    const M = depthwise.shape[3]!;
    const rows = inn.flatMap((c) => Array.from({ length: M }, (_, j) => c * M + j));
    return [tf.gather(depthwise, inn, 2), tf.gather(pointwise, rows, 2), ...bias];
  }
  if (layer.getClassName() === 'Conv2DTranspose' && inn) {
    const [kernel, ...bias] = layer.getWeights();
    return [tf.gather(kernel, inn, 3), ...bias];
  }
  // A MaskaccDense's input mask (compact inputs) is not a Dense weight.
  const weights =
    layer instanceof MaskaccDense ? layer.getWeights().slice(0, layer.useBias ? 2 : 1) : layer.getWeights();
  const [kernel, ...bias] = weights;
  if (!rows && !units) return weights;
  // A dense layer: its input rows, and its units (kernel columns, bias) when they scale channels.
  const k = rows ? tf.gather(kernel, rows, 0) : kernel;
  return units ? [tf.gather(k, units, 1), ...bias.map((b) => tf.gather(b, units))] : [k, ...bias];
}
