// Mask groups traced from a TF.js model's graph. A group is a set of channels that must be pruned
// together: the filters of a conv (or of every conv feeding one residual `add`). Each group's mask
// is the filter mask of its convs, the channel mask of the batch norms on its path and the input
// mask of the convs it feeds; a flatten or global pooling turns it into the kept input rows of a
// dense layer. Anything the tracer cannot follow leaves the group unpruned, with the reason.
import type { LayersModel } from '@tensorflow/tfjs';
import { ArgumentError } from '../errors.js';
import type { tf } from '../tfjs/tf.js';

type Layer = InstanceType<typeof tf.layers.Layer>;

const CONVS = new Set(['Conv2D', 'MaskedConv2D']);
const NORMS = new Set(['BatchNormalization', 'MaskedBatchNormalization']);
/** Layers that act on each channel alone and keep a zero channel zero. */
const CHANNELWISE = new Set([
  'Dropout',
  'SpatialDropout2D',
  'MaxPooling2D',
  'MaskaccMaxPooling2D',
  'AveragePooling2D',
  'ZeroPadding2D',
  'Cropping2D',
  'UpSampling2D',
  'ReLU',
  'MaskaccReLU',
  'LeakyReLU',
  'ELU',
  'Activation',
]);
/**
 * Channel-wise layers that take a compact activation (the kept channels only) as it is: element-wise
 * ones, and poolings that read the channel count from the tensor.
 */
const COMPACT_READERS = new Set([
  'Dropout',
  'MaxPooling2D',
  'MaskaccMaxPooling2D',
  'AveragePooling2D',
  'ReLU',
  'MaskaccReLU',
  'LeakyReLU',
  'ELU',
  'Activation',
]);
const GLOBAL_POOLS = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D']);
/**
 * Layers TF.js runs on every input channel, linear in each: a pruned (zero) channel adds nothing
 * to their outputs, so stripping drops their weights for it. Their own outputs are not pruned.
 */
const READERS = new Set(['SeparableConv2D', 'Conv2DTranspose']);
/** Activations with f(0) = 0: a pruned (zero) channel stays zero. */
const ZERO_KEEPING = new Set(['linear', 'relu', 'relu6', 'elu', 'selu', 'tanh', 'softsign', 'swish', 'mish', 'gelu']);

/** How a dense layer's input features map to a group's channels. */
export interface FeatureMap {
  group: number;
  channels: number;
  /** Features per channel (H * W after a flatten, 1 after global pooling). */
  plane: number;
  /** Feature index c * plane + p (NCHW flattened), else p * channels + c. */
  channelMajor: boolean;
}

export interface MaskGroup {
  id: number;
  /** Convs whose filters are the group's channels. */
  convs: string[];
  /** Convs that read the group's channels as inputs. */
  consumers: string[];
  norms: string[];
  /** Depthwise convs on the group's channels: each channel filtered alone, so they shrink with it. */
  depthwise: string[];
  /** Convs and batch norms that read the group's channels as part of a concatenation. */
  slices: ChannelSlice[];
  /** Separable and transposed convs that read the group's channels (READERS). */
  readers: string[];
  /**
   * Dense layers whose units scale the group's channels (squeeze-and-excite: x * reshape(dense)),
   * with the reshape between: stripping keeps their units of the kept channels.
   */
  scales: { dense: string; reshape: string; axis: number }[];
  denses: { layer: string; features: FeatureMap }[];
  /** Why the group stays unpruned (undefined: it can be pruned). */
  unprunable?: string;
  /**
   * Why its activations keep every channel (undefined: they may be compact, the kept channels only,
   * channels-last: every layer reading them takes that).
   */
  fullChannels?: string;
  /**
   * Why its pruned filters can get a nonzero gradient (a dense layer reads them with no ReLU or
   * masked batch norm between): under soft masks that gradient trains them, so the activations stay
   * full (a compact one has no pruned channels to carry it).
   */
  prunedGradient?: string;
}

/**
 * A group's channels inside a concatenation a layer reads: channels [offset, offset + filters) of
 * its `total`. A dense layer reads them as features (after a flatten or global pooling).
 */
export interface ChannelSlice {
  layer: string;
  offset: number;
  total: number;
  features?: { plane: number; channelMajor: boolean };
}

/** Channels of a concatenation: one group's filters, or channels no conv prunes (group undefined). */
interface Segment {
  group?: number;
  channels: number;
}

/** Layers whose gradient is zero where their input is zero (a pruned channel): ReLU, masked batch norm. */
const ZERO_GRADIENT_ACTIVATIONS = new Set(['relu', 'relu6']);

interface TensorInfo {
  /**
   * Every path from the group's convs to this tensor passes a layer that zeroes a pruned channel's
   * gradient (a ReLU, a masked batch norm): what arrives here never reaches the pruned filters.
   */
  gradientStops?: boolean;
  /**
   * Why the pruned channels may hold something other than zero here (a depthwise conv's bias):
   * only a layer that masks them (a batch norm, a conv's input mask) may read them.
   */
  biased?: string;
  group?: number;
  /** Channel axis of a rank-4 tensor (1 or 3), or the features of a rank-2 one. */
  axis?: number;
  features?: FeatureMap;
  /** A concatenation along the channels (axis): its parts in order. */
  segments?: Segment[];
  /** A concatenation's channels as the features of a rank-2 tensor (flattened or pooled). */
  featureSegments?: { segments: Segment[]; plane: number; channelMajor: boolean };
  /** A dense layer's units (count), as they are or reshaped to one per channel of axis `axis`. */
  units?: { dense: string; count: number; reshape?: string; axis?: number };
}

/** The groups whose channels a tensor carries. */
function groupsOf(t: TensorInfo): number[] {
  if (t.group !== undefined) return [t.group];
  if (t.features) return [t.features.group];
  return (t.segments ?? t.featureSegments?.segments ?? []).flatMap((s) => (s.group === undefined ? [] : [s.group]));
}

/**
 * The mask of each layer that reads a concatenation: each group's mask (`maskOf`; undefined = all
 * kept) at its offset, ones over the channels no conv prunes.
 */
export function sliceMasks(
  groups: readonly MaskGroup[],
  maskOf: (g: MaskGroup) => Uint8Array | undefined,
): Map<string, { mask: Uint8Array; features?: ChannelSlice['features'] }> {
  const masks = new Map<string, { mask: Uint8Array; features?: ChannelSlice['features'] }>();
  for (const g of groups)
    for (const s of g.slices) {
      const m = masks.get(s.layer) ?? { mask: new Uint8Array(s.total).fill(1), features: s.features };
      const own = maskOf(g);
      if (own) m.mask.set(own, s.offset);
      masks.set(s.layer, m);
    }
  return masks;
}

/** Which of a dense layer's input features are kept (1), given its group's channel mask. */
export function featureMask(f: FeatureMap, channels: ArrayLike<number>): Uint8Array {
  const mask = new Uint8Array(f.channels * f.plane);
  for (let c = 0; c < f.channels; c++) {
    if (!channels[c]) continue;
    for (let p = 0; p < f.plane; p++) mask[f.channelMajor ? c * f.plane + p : p * f.channels + c] = 1;
  }
  return mask;
}

/** The model's layers in topological order with the names of the layers they read (input layers too). */
export function layerInputs(model: LayersModel): { layer: Layer; inputs: string[] }[] {
  return model.layers.map((layer) => {
    if (layer.inboundNodes.length !== 1)
      throw new ArgumentError(
        `layer '${layer.name}'`,
        `${layer.inboundNodes.length} calls`,
        'a layer called once (shared layers cannot be traced)',
      );
    return { layer, inputs: layer.inboundNodes[0].inboundLayers.map((l) => l.name) };
  });
}

/** The shape of the layer's (first) input. */
function inputShape(layer: Layer): number[] {
  const shapes = layer.inboundNodes[0].inputShapes;
  return (Array.isArray(shapes[0]) ? shapes[0] : shapes) as number[];
}

const channelAxis = (layer: Layer) => (layer.getConfig().dataFormat === 'channelsFirst' ? 1 : 3);

/** Mask groups of `model`; convs named in `skip` keep all their filters. */
export function traceMaskGroups(model: LayersModel, skip: readonly string[] = []): MaskGroup[] {
  const parent: number[] = [];
  const groups: MaskGroup[] = [];
  const find = (g: number): number => (parent[g] === g ? g : (parent[g] = find(parent[g])));
  const block = (g: number | undefined, reason: string) => {
    if (g !== undefined) groups[find(g)].unprunable ??= reason;
  };
  const full = (g: number | undefined, reason: string) => {
    if (g !== undefined) groups[find(g)].fullChannels ??= reason;
  };
  const blockAll = (t: TensorInfo, reason: string) => groupsOf(t).forEach((g) => block(g, reason));
  const fullAll = (t: TensorInfo, reason: string) => groupsOf(t).forEach((g) => full(g, reason));
  // A layer reading a concatenation: each group's channels at their offset (compact activations
  // would need that layer to know the offsets of the kept channels: they stay full).
  const slice = (segments: Segment[], layer: string, features?: ChannelSlice['features']) => {
    const total = segments.reduce((n, s) => n + s.channels, 0);
    let offset = 0;
    for (const s of segments) {
      if (s.group !== undefined) {
        groups[find(s.group)].slices.push({ layer, offset, total, ...(features ? { features } : {}) });
        full(s.group, `'${layer}' reads it in a concatenation`);
      }
      offset += s.channels;
    }
  };
  const tensors = new Map<string, TensorInfo>();
  const names = new Set(model.layers.map((l) => l.name));
  for (const s of skip) if (!names.has(s)) throw new ArgumentError('skip', s, 'the name of a layer of the model');

  for (const { layer, inputs } of layerInputs(model)) {
    const kind = layer.getClassName();
    const config = layer.getConfig();
    const ins = inputs.map((n) => tensors.get(n) ?? {});
    const x = ins[0] ?? {};
    const activation = (config.activation as string | undefined) ?? 'linear';
    let out: TensorInfo = {};
    // Pruned channels that are not zero: only layers that mask them, or pass them on to one, may read them.
    const passes =
      CONVS.has(kind) ||
      NORMS.has(kind) ||
      CHANNELWISE.has(kind) ||
      kind === 'DepthwiseConv2D' ||
      kind === 'Concatenate';
    for (const t of ins) if (t.biased && !passes) blockAll(t, `${t.biased}, and '${layer.name}' reads them`);
    if (CONVS.has(kind)) {
      if (x.group !== undefined) {
        groups[find(x.group)].consumers.push(layer.name);
        if (channelAxis(layer) !== 3) full(x.group, `'${layer.name}' is channelsFirst`);
      }
      if (x.segments) slice(x.segments, layer.name);
      const id = groups.length;
      parent.push(id);
      groups.push({
        id,
        convs: [layer.name],
        consumers: [],
        norms: [],
        depthwise: [],
        slices: [],
        readers: [],
        scales: [],
        denses: [],
      });
      if (skip.includes(layer.name)) block(id, `'${layer.name}' is in the skip list`);
      if (!ZERO_KEEPING.has(activation)) block(id, `'${layer.name}' has activation '${activation}' (f(0) != 0)`);
      if (channelAxis(layer) !== 3) full(id, `'${layer.name}' is channelsFirst`);
      out = { group: id, axis: channelAxis(layer), gradientStops: ZERO_GRADIENT_ACTIVATIONS.has(activation) };
    } else if (NORMS.has(kind) && (x.group !== undefined || x.segments)) {
      const axis = config.axis as number;
      if (axis !== x.axis && axis !== x.axis! - 4)
        blockAll(x, `'${layer.name}' normalizes axis ${axis}, not the channels`);
      if (x.group !== undefined) groups[find(x.group)].norms.push(layer.name);
      else slice(x.segments!, layer.name);
      out = { ...x, gradientStops: true, biased: undefined }; // (a masked batch norm zeroes the pruned channels)
    } else if (kind === 'DepthwiseConv2D' && x.group !== undefined) {
      // A pruned (zero) channel stays zero through its own filter; a bias makes it the bias (`biased`).
      if (config.depthMultiplier !== 1)
        block(x.group, `'${layer.name}' has depthMultiplier ${String(config.depthMultiplier)} (1 is traced)`);
      if (!ZERO_KEEPING.has(activation)) block(x.group, `'${layer.name}' has activation '${activation}' (f(0) != 0)`);
      if (channelAxis(layer) !== x.axis) block(x.group, `'${layer.name}' filters another axis than the channels`);
      groups[find(x.group)].depthwise.push(layer.name);
      full(x.group, `'${layer.name}' (${kind}) reads every channel`);
      out = ZERO_GRADIENT_ACTIVATIONS.has(activation) ? { ...x, gradientStops: true } : { ...x };
      if (config.useBias) out.biased ??= `'${layer.name}' adds its bias to the pruned channels`;
    } else if (READERS.has(kind) && x.group !== undefined) {
      if (channelAxis(layer) !== x.axis) block(x.group, `'${layer.name}' reads another axis than the channels`);
      groups[find(x.group)].readers.push(layer.name);
      full(x.group, `'${layer.name}' (${kind}) reads every channel`);
    } else if (CHANNELWISE.has(kind) || NORMS.has(kind)) {
      if (kind === 'Activation' && !ZERO_KEEPING.has(activation))
        blockAll(x, `'${layer.name}' has activation '${activation}' (f(0) != 0)`);
      if (!COMPACT_READERS.has(kind)) fullAll(x, `'${layer.name}' (${kind}) reads every channel`);
      const relu =
        ['ReLU', 'MaskaccReLU'].includes(kind) || (kind === 'Activation' && ZERO_GRADIENT_ACTIVATIONS.has(activation));
      out = relu ? { ...x, gradientStops: true } : x;
    } else if (kind === 'Concatenate' && ins.some((t) => groupsOf(t).length)) {
      // Along the channels of rank-4 tensors: the groups' channels side by side.
      const shapes = layer.inboundNodes[0].inputShapes as number[][];
      const rank = shapes[0].length,
        axis = ((config.axis as number) + rank) % rank;
      if (rank !== 4 || ins.some((t) => t.features || (groupsOf(t).length && t.axis !== axis))) {
        ins.forEach((t) => blockAll(t, `'${layer.name}' concatenates along another axis than the channels`));
      } else {
        const segments = ins.flatMap(
          (t, i): Segment[] =>
            t.segments ?? [
              t.group !== undefined ? { group: t.group, channels: shapes[i][axis] } : { channels: shapes[i][axis] },
            ],
        );
        out = {
          segments,
          axis,
          gradientStops: ins.every((t) => t.gradientStops),
          biased: ins.find((t) => t.biased)?.biased,
        };
      }
    } else if (kind === 'Add') {
      if (ins.some((t) => t.segments))
        ins.forEach((t) => blockAll(t, `'${layer.name}' adds a concatenation (not traced)`));
      const grouped = ins.filter((t) => t.group !== undefined);
      if (grouped.length < ins.length) grouped.forEach((t) => block(t.group, `'${layer.name}' adds unpruned channels`));
      else for (const t of grouped.slice(1)) parent[find(t.group!)] = find(grouped[0].group!);
      // The sum's gradient goes to every input: it stops only if it stops on each input's path.
      out = grouped.length ? { ...grouped[0], gradientStops: grouped.every((t) => t.gradientStops) } : {};
    } else if ((kind === 'Flatten' || GLOBAL_POOLS.has(kind)) && (x.group !== undefined || x.segments)) {
      // The channels become features: c * plane + p (channel-major) or p * C + c.
      const shape = inputShape(layer);
      let C: number, plane: number, channelMajor: boolean;
      if (kind === 'Flatten') {
        [C, plane] = x.axis === 1 ? [shape[1], shape[2] * shape[3]] : [shape[3], shape[1] * shape[2]];
        channelMajor = x.axis === 1 && config.dataFormat !== 'channelsFirst';
        if (x.axis === 3 && config.dataFormat === 'channelsFirst')
          blockAll(x, `'${layer.name}' flattens channelsLast data as channelsFirst`);
      } else {
        if (channelAxis(layer) !== x.axis) blockAll(x, `'${layer.name}' pools another axis than the channels`);
        [C, plane, channelMajor] = [shape[x.axis!], 1, true];
      }
      out = x.segments
        ? { featureSegments: { segments: x.segments, plane, channelMajor }, gradientStops: x.gradientStops }
        : { features: { group: x.group!, channels: C, plane, channelMajor }, gradientStops: x.gradientStops };
    } else if ((kind === 'Dense' || kind === 'MaskaccDense') && (x.features || x.featureSegments)) {
      if (x.features) groups[find(x.features.group)].denses.push({ layer: layer.name, features: x.features });
      else {
        const { segments, plane, channelMajor } = x.featureSegments!;
        slice(segments, layer.name, { plane, channelMajor });
      }
      if (!x.gradientStops)
        for (const g of groupsOf(x))
          groups[find(g)].prunedGradient ??=
            `'${layer.name}' reads the pruned channels with no ReLU or batch norm between`;
      out = { units: { dense: layer.name, count: config.units as number } };
    } else if ((kind === 'Dense' || kind === 'MaskaccDense') && !groupsOf(x).length) {
      out = { units: { dense: layer.name, count: config.units as number } };
    } else if (kind === 'Reshape' && x.units && !x.units.reshape) {
      // [units] -> [1, 1, units] or [units, 1, 1]: one unit per channel, broadcast over the plane.
      const target = config.targetShape as number[];
      const at = target.indexOf(x.units.count);
      if (target.length === 3 && at >= 0 && target.every((v, i) => i === at || v === 1))
        out = { units: { ...x.units, reshape: layer.name, axis: at + 1 } };
    } else if (kind === 'Multiply' && ins.some((t) => groupsOf(t).length)) {
      // x * scale: a pruned (zero) channel stays zero, whatever its scale.
      const at = ins.findIndex((t) => t.group !== undefined);
      const grouped = ins[at] ?? {},
        rest = ins.filter((_, i) => i !== at);
      const C = at >= 0 ? (layer.inboundNodes[0].inputShapes as number[][])[at][grouped.axis!] : 0;
      const scales = rest.every((t) => t.units?.reshape && t.units.axis === grouped.axis && t.units.count === C);
      if (grouped.group === undefined || !scales) {
        ins.forEach((t) =>
          blockAll(t, `'${layer.name}' multiplies the channels by something else than a dense layer's units`),
        );
      } else {
        for (const t of rest)
          groups[find(grouped.group)].scales.push({
            dense: t.units!.dense,
            reshape: t.units!.reshape!,
            axis: t.units!.axis!,
          });
        full(grouped.group, `'${layer.name}' (${kind}) reads every channel`);
        out = grouped;
      }
    } else {
      // Anything else reading grouped channels: the channels must stay.
      for (const t of ins) blockAll(t, `'${layer.name}' (${kind}) reads the channels`);
    }
    tensors.set(layer.name, out);
  }
  for (const o of model.outputLayers) {
    const t = tensors.get(o.name);
    if (t) fullAll(t, `'${o.name}' is an output of the model`);
    if (t?.biased) blockAll(t, `${t.biased}, and '${o.name}' is an output of the model`);
  }
  // Merge the groups joined by residual adds.
  const merged = new Map<number, MaskGroup>();
  for (const g of groups) {
    const root = find(g.id);
    const m = merged.get(root);
    if (!m) merged.set(root, { ...g, id: root });
    else {
      m.convs.push(...g.convs);
      m.consumers.push(...g.consumers);
      m.norms.push(...g.norms);
      m.depthwise.push(...g.depthwise);
      m.slices.push(...g.slices);
      m.readers.push(...g.readers);
      m.scales.push(...g.scales);
      m.denses.push(...g.denses);
      m.unprunable ??= g.unprunable;
      m.fullChannels ??= g.fullChannels;
      m.prunedGradient ??= g.prunedGradient;
    }
  }
  return [...merged.values()];
}
