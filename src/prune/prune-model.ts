// prune(model, options): the tfmot-style entry. Returns a new model whose Conv2D layers are
// MaskedConv2D (and whose batch norms on pruned channels are MaskedBatchNormalization), weights
// copied, kernels compiled, and the mask groups traced from the graph. applyPruning (called by
// PruningCallback at each epoch) ranks the filters, sets the linked masks and zeroes the pruned.
import type { LayersModel } from '@tensorflow/tfjs';
import { ArgumentError } from '../errors.js';
import { compileLayers, maskedLayers, type CompileLayersOptions } from '../tfjs/compile-layers.js';
import { hwioToOihw } from '../tfjs/layout.js';
import { MaskedBatchNormalization } from '../tfjs/masked-batch-norm.js';
import { MaskedConv2D } from '../tfjs/masked-conv2d.js';
import { MaskaccDense } from '../tfjs/dense.js';
import { tf } from '../tfjs/tf.js';
import { FILTER_CRITERIA, filterScores, selectFilters, selectFiltersGlobal, type FilterCriterion } from './criteria.js';
import { featureMask, sliceMasks, traceMaskGroups, type MaskGroup } from './graph.js';
import {
  BASE_KEYS,
  CONV_KEYS,
  DENSE_KEYS,
  NORM_KEYS,
  POOL_KEYS,
  pick,
  rebuildModel,
  type LayerJson,
} from './rebuild.js';
import { isSoft, pruningSchedule, rateAt, selectsAt, type PruningSchedule, type ScheduleKind } from './schedule.js';

export interface PruneOptions extends Omit<CompileLayersOptions, 'gradOfPrunedFilters' | 'density'> {
  /** Fraction of filters pruned, in [0, 1). */
  rate: number;
  /** Default 'l1'. */
  criterion?: FilterCriterion;
  /** 'layer' (default): the rate applies to each group; 'global': filters ranked over all groups. */
  scope?: 'layer' | 'global';
  /** Default 'hard' (select once at startEpoch). */
  schedule?: ScheduleKind;
  startEpoch?: number;
  rampEpochs?: number;
  /** Conv layers (by name) to leave unpruned. */
  skip?: readonly string[];
  /** 'masked' (default) or 'dense': full-mask kernels on masked weights, the baseline. */
  mode?: 'masked' | 'dense';
  /**
   * Masked mode, channelsLast: the activations between masked layers hold the kept channels only,
   * in order (default true), so batch norm, ReLU and pooling shrink with the masks. A sub-model
   * reading such a tensor sees [N, H, W, kept]; false keeps every tensor at its declared shape.
   */
  compactActivations?: boolean;
}

/** Per layer: kept and total filters after an epoch's selection. */
export interface PruningStep {
  epoch: number;
  rate: number;
  kept: Record<string, { kept: number; total: number }>;
}

interface PruningState {
  groups: MaskGroup[];
  criterion: FilterCriterion;
  scope: 'layer' | 'global';
  schedule: Required<PruningSchedule>;
  lastEpoch?: number;
}

/**
 * Keyed by the model's first masked layer: fit hands callbacks a Sequential's inner model, which
 * shares the Sequential's layers but is another object.
 */
type Layer = InstanceType<typeof tf.layers.Layer>;

const states = new WeakMap<object, PruningState>();

/** A model with masked convolutions, ready to fit (kernels compiled), masks of epoch 0 applied. */
export async function prune(model: LayersModel, options: PruneOptions): Promise<LayersModel> {
  const criterion = options.criterion ?? 'l1';
  if (!FILTER_CRITERIA.includes(criterion)) throw new ArgumentError('criterion', criterion, "'l1', 'l2' or 'fpgm'");
  const scope = options.scope ?? 'layer';
  if (scope !== 'layer' && scope !== 'global') throw new ArgumentError('scope', scope, "'layer' or 'global'");
  const schedule = pruningSchedule({
    kind: options.schedule ?? 'hard',
    rate: options.rate,
    startEpoch: options.startEpoch,
    rampEpochs: options.rampEpochs,
  });
  const mode = options.mode ?? 'masked';
  // A model used as a layer is not traced: its convs would silently stay dense.
  const nested = model.layers.find((l) => 'layers' in l);
  if (nested)
    throw new ArgumentError(
      `layer '${nested.name}'`,
      nested.getClassName(),
      'no nested model (prune() does not trace inside one): build the model from its layers, e.g. ' +
        'tf.model({ inputs, outputs }) over base.layers, or tf.sequential({ layers: [...base.layers, ...] })',
    );
  if (!model.layers.some((l) => l.getClassName() === 'Conv2D'))
    throw new ArgumentError('model', model.name, 'a model with Conv2D layers to prune');
  const groups = traceMaskGroups(model, options.skip);
  // Filters that stay whole for the model's topology, not by the caller's skip list, are said once.
  const stuck = groups.filter((g) => g.unprunable && !g.convs.some((c) => options.skip?.includes(c)));
  if (stuck.length)
    process.emitWarning(
      `${stuck.length} of ${groups.length} mask groups stay unpruned: ` +
        stuck.map((g) => `${g.convs.join(', ')}: ${g.unprunable}`).join('; '),
      { code: 'MASKACC_UNPRUNED' },
    );
  // (slices name convs too: only batch norms are looked up here)
  const normsToMask = new Set(groups.flatMap((g) => [...g.norms, ...g.slices.map((s) => s.layer)]));
  // Masked mode keeps a group's activations compact (the kept channels only) where its readers allow.
  const plainDenses = new Set(
    layerJsons(model)
      .filter((j) => j.class_name === 'Dense' && isPlainDense(model.getLayer(j.config.name as string), j.config))
      .map((j) => j.config.name as string),
  );
  const compactable = mode === 'masked' && (options.compactActivations ?? true);
  // Soft masks train pruned filters by their gradient, which a compact activation cannot carry.
  const soft = isSoft(schedule);
  const compact = groups.filter(
    (g) =>
      compactable &&
      !g.unprunable &&
      !g.fullChannels &&
      !(soft && g.prunedGradient) &&
      g.denses.every((d) => plainDenses.has(d.layer)),
  );
  const compactOut = new Set(compact.flatMap((g) => [...g.convs, ...g.norms]));
  const compactIn = new Set(compact.flatMap((g) => [...g.consumers, ...g.denses.map((d) => d.layer)]));
  const pruned = await rebuildModel(
    model,
    (layer, json) => {
      if (json.class_name === 'Conv2D') {
        for (const k of ['kernel_regularizer', 'bias_regularizer', 'kernel_constraint', 'bias_constraint'])
          if (json.config[k] != null)
            throw new ArgumentError(`layer '${layer.name}'`, k, 'a Conv2D without one (not supported)');
        const config: Record<string, unknown> = { ...pick(json.config, CONV_KEYS), mode };
        if (compactOut.has(layer.name)) config.compact_output = true;
        if (compactIn.has(layer.name)) config.compact_input = true;
        return { class_name: 'MaskedConv2D', config };
      }
      // TF.js's cpu max-pool and ReLU gradients are slow; the same ops, native.
      if (json.class_name === 'MaxPooling2D')
        return { class_name: 'MaskaccMaxPooling2D', config: pick(json.config, POOL_KEYS) };
      if (json.class_name === 'Dense' && plainDenses.has(layer.name))
        return {
          class_name: 'MaskaccDense',
          config: { ...pick(json.config, DENSE_KEYS), ...(compactIn.has(layer.name) ? { compact_input: true } : {}) },
        };
      if (json.class_name === 'Activation' && json.config.activation === 'relu')
        return { class_name: 'MaskaccReLU', config: pick(json.config, BASE_KEYS) };
      if (json.class_name === 'BatchNormalization' && normsToMask.has(layer.name))
        return {
          class_name: 'MaskedBatchNormalization',
          config: { ...pick(json.config, NORM_KEYS), ...(compactOut.has(layer.name) ? { compact: true } : {}) },
        };
      return undefined;
    },
    (old, fresh) => {
      const w = old.getWeights();
      const extra = fresh.weights.slice(w.length).map((v) => tf.ones(v.shape as number[])); // the masks
      return [...w, ...extra];
    },
  );
  await compileLayers(pruned, {
    ...options,
    gradOfPrunedFilters: isSoft(schedule),
    density: mode === 'masked' ? 1 - schedule.rate : 1,
  });
  const state = { groups, criterion, scope, schedule };
  states.set(maskedLayers(pruned)[0], state);
  applyPruning(pruned, 0);
  return pruned;
}

/** The layers' JSON (class name, snake_case config), as model.toJSON writes them. */
function layerJsons(model: LayersModel): LayerJson[] {
  return (model.toJSON(null, false) as unknown as { config: { layers: LayerJson[] } }).config.layers;
}

/** A Dense layer MaskaccDense computes alike: one rank-2 input, no regularizer or constraint. */
function isPlainDense(layer: Layer, config: Record<string, unknown>): boolean {
  // A node's inputShapes is one shape, or a list of one per input.
  const shapes = layer.inboundNodes.map((n) => n.inputShapes as (number | null)[] | (number | null)[][]);
  const only = shapes.length === 1 ? (Array.isArray(shapes[0][0]) ? shapes[0] : [shapes[0]]) : [];
  const rank2 = only.length === 1 && (only[0] as unknown[]).length === 2;
  const extras = [
    'kernel_regularizer',
    'bias_regularizer',
    'activity_regularizer',
    'kernel_constraint',
    'bias_constraint',
  ];
  return rank2 && extras.every((k) => config[k] == null);
}

/** The mask groups of a model made by prune() (which convs prune together, which cannot and why). */
export function maskGroups(model: LayersModel): readonly MaskGroup[] {
  return stateOf(model).groups;
}

function stateOf(model: LayersModel): PruningState {
  const state = states.get(maskedLayers(model)[0] ?? {});
  if (!state) throw new ArgumentError('model', model.name, 'a model returned by prune()');
  return state;
}

/**
 * At the start of `epoch`: if the schedule selects then, rank the filters of the current weights,
 * set the linked masks and zero the pruned filters. Undefined when the masks stay as they are.
 */
export function applyPruning(model: LayersModel, epoch: number): PruningStep | undefined {
  const state = stateOf(model);
  if (!selectsAt(state.schedule, epoch) || state.lastEpoch === epoch) return undefined;
  state.lastEpoch = epoch;
  const rate = rateAt(state.schedule, epoch);
  const byName = new Map(maskedLayers(model).map((l) => [l.name, l]));
  const conv = (name: string) => byName.get(name)!;
  const norm = (name: string) => model.getLayer(name) as MaskedBatchNormalization;
  const prunable = state.groups.filter((g) => !g.unprunable);
  const scores = prunable.map((g) => groupScores(g.convs.map(conv), state.criterion));
  const masks =
    state.scope === 'global'
      ? selectFiltersGlobal(
          scores.map((s) => ({ scores: s })),
          rate,
        )
      : scores.map((s) => selectFilters(s, rate));
  prunable.forEach((g, i) => {
    const mask = masks[i];
    for (const name of g.convs) conv(name).setMasks({ out: mask });
    for (const name of g.consumers) conv(name).setMasks({ in: mask });
    for (const name of g.norms) norm(name).setMask(mask);
    for (const d of g.denses) {
      const dense = model.getLayer(d.layer);
      if (dense instanceof MaskaccDense && dense.compactInput) dense.setInputMask(featureMask(d.features, mask));
    }
    g.convs.forEach((name) => zeroPrunedFilters(conv(name), mask));
    g.norms.forEach((name) => norm(name).zeroPruned());
  });
  // Layers reading a concatenation: their groups' masks side by side. (A dense layer reads full
  // activations there, whose pruned features are zero: it needs no mask.)
  const maskOf = new Map(prunable.map((g, i) => [g, masks[i]]));
  for (const [name, { mask }] of sliceMasks(state.groups, (g) => maskOf.get(g))) {
    const layer = model.getLayer(name);
    if (layer instanceof MaskedConv2D) layer.setMasks({ in: mask });
    else if (layer instanceof MaskedBatchNormalization) {
      layer.setMask(mask);
      layer.zeroPruned();
    }
  }
  const kept: PruningStep['kept'] = {};
  for (const l of byName.values()) {
    const out = l.getMasks().out;
    kept[l.name] = { kept: out.reduce((a, b) => a + b, 0), total: out.length };
  }
  return { epoch, rate, kept };
}

/** The filter scores of a group: the sum over its convs (a residual group ranks filters jointly). */
function groupScores(convs: MaskedConv2D[], criterion: FilterCriterion): Float64Array {
  let sum: Float64Array | undefined;
  for (const c of convs) {
    const [R, S] = c.kernelSize;
    const hwio = c.kernelVariable.read().dataSync() as Float32Array;
    const C = hwio.length / (R * S * c.filters);
    const s = filterScores(hwioToOihw(hwio, R, S, C, c.filters), c.filters, criterion);
    if (!sum) sum = s;
    else s.forEach((v, i) => (sum![i] += v));
  }
  return sum!;
}

/** Zero the kernel columns (HWIO: the last axis) and bias of pruned filters. */
function zeroPrunedFilters(layer: MaskedConv2D, mask: Uint8Array): void {
  tf.tidy(() => {
    const m = tf.tensor1d(mask, 'float32');
    layer.kernelVariable.write(tf.mul(layer.kernelVariable.read(), m));
    layer.biasVariable?.write(tf.mul(layer.biasVariable.read(), m));
  });
}
