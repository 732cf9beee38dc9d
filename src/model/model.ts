// The model DSL: an ordered list of conv layers whose masks are linked. A layer's input-channel
// mask is the filter mask of the layer feeding it; layers joined by a residual add share one
// filter mask (a `group`). Builders validate and return frozen nodes.

import { conv2d, type ConvLayer, type ConvSpec } from '../ir/conv.js';
import { SpecError } from '../errors.js';

export interface ModelLayerDef {
  name: string;
  spec: ConvSpec;
  /** The layer whose output feeds this one (its filter mask is our input mask); null: the network input. */
  input: string | null;
  /** Layers in one group add their outputs (residual joins) and therefore share one filter mask. */
  group?: string;
}

export interface ModelLayer {
  readonly name: string;
  readonly layer: ConvLayer;
  readonly input: string | null;
  /** The mask this layer's filters follow: its group, or its own name. */
  readonly maskGroup: string;
}

export interface Model {
  readonly kind: 'model';
  readonly name: string;
  readonly layers: readonly ModelLayer[];
}

/** Validate a layer list into a Model: unique names, inputs defined earlier, channels that match. */
export function model(name: string, defs: readonly ModelLayerDef[]): Model {
  const byName = new Map<string, ModelLayer>();
  const groupChannels = new Map<string, number>();
  const layers = defs.map((d, i) => {
    const where = `model ${name}, layer ${i} (${d.name})`;
    if (typeof d.name !== 'string' || d.name === '' || byName.has(d.name)) {
      throw new SpecError(`${where}: name`, d.name, 'a unique non-empty name');
    }
    let layer: ConvLayer;
    try {
      layer = conv2d(d.spec);
    } catch (e) {
      if (e instanceof Error) e.message = `${where}: ${e.message}`;
      throw e;
    }
    if (d.input !== null) {
      const from = byName.get(d.input);
      if (!from)
        throw new SpecError(`${where}: input`, d.input, 'the name of an earlier layer, or null for the network input');
      if (from.layer.outChannels !== layer.inChannels) {
        throw new SpecError(
          `${where}: spec.inChannels`,
          layer.inChannels,
          `${from.layer.outChannels}, the filters of its input layer ${d.input}`,
        );
      }
    }
    const maskGroup = d.group ?? d.name;
    const seen = groupChannels.get(maskGroup);
    if (seen !== undefined && seen !== layer.outChannels) {
      throw new SpecError(
        `${where}: spec.outChannels`,
        layer.outChannels,
        `${seen}, like the rest of group ${maskGroup}`,
      );
    }
    groupChannels.set(maskGroup, layer.outChannels);
    const node = Object.freeze({ name: d.name, layer, input: d.input, maskGroup });
    byName.set(d.name, node);
    return node;
  });
  return Object.freeze({ kind: 'model' as const, name, layers: Object.freeze(layers) });
}
