// A compiled model: one MaskedConv per layer (identical layers share compiled code) and the mask
// links of the DSL. Setting a layer's filter mask updates its residual group and the input masks
// of every layer it feeds.

import { compileMaskedConvs, type CompileOptions } from '../api/compile.js';
import type { MaskedConv } from '../runtime/masked-conv.js';
import { keptIndices, type MaskLike } from '../runtime/masks.js';
import { ArgumentError } from '../errors.js';
import type { Model, ModelLayer } from './model.js';

export class CompiledModel {
  private readonly groupMasks = new Map<string, Uint8Array>();

  constructor(
    readonly model: Model,
    readonly convs: ReadonlyMap<string, MaskedConv>,
  ) {
    for (const l of model.layers) this.groupMasks.set(l.maskGroup, new Uint8Array(l.layer.outChannels).fill(1));
  }

  /** Set the filter mask of `layer` (and of its residual group); dependent input masks follow. */
  setFilterMask(layer: string, mask: MaskLike): void {
    const l = this.layer(layer);
    const kept = keptIndices(mask, l.layer.outChannels, `masks of ${layer}`); // validates before anything changes
    const m = new Uint8Array(l.layer.outChannels);
    kept.forEach((i) => (m[i] = 1));
    this.groupMasks.set(l.maskGroup, m);
    for (const other of this.model.layers) {
      const input = other.input === null ? undefined : this.layer(other.input);
      if (other.maskGroup === l.maskGroup || input?.maskGroup === l.maskGroup) this.apply(other);
    }
  }

  /** The masks a layer runs with now: its group's filter mask and its input layer's. */
  masksOf(layer: string): { out: Uint8Array; in: Uint8Array } {
    const l = this.layer(layer);
    const input = l.input === null ? undefined : this.layer(l.input);
    return {
      out: this.groupMasks.get(l.maskGroup)!,
      in: input ? this.groupMasks.get(input.maskGroup)! : new Uint8Array(l.layer.inChannels).fill(1),
    };
  }

  private apply(l: ModelLayer): void {
    this.convs.get(l.name)!.setMasks(this.masksOf(l.name));
  }

  private layer(name: string): ModelLayer {
    const l = this.model.layers.find((x) => x.name === name);
    if (!l)
      throw new ArgumentError(
        'layer',
        name,
        `a layer of ${this.model.name}: ${this.model.layers.map((x) => x.name).join(', ')}`,
      );
    return l;
  }
}

/** Compile every layer of a model into one addon. */
export async function compileModel(m: Model, options: CompileOptions = {}): Promise<CompiledModel> {
  const convs = await compileMaskedConvs(
    m.layers.map((l) => l.layer),
    options,
  );
  return new CompiledModel(m, new Map(m.layers.map((l, i) => [l.name, convs[i]])));
}
