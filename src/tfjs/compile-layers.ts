// compileLayers(model): the async step before a model with maskacc layers runs. Layer.call is
// sync and a kernel build is not, so every masked conv of the model is compiled here, in one addon
// (one C++ build, or none when the cache has it), and the native ops of the other layers (batch
// norm, ReLU, pooling) are loaded. It also installs the faster cpu GatherV2 (cpu-kernels.ts) that
// model.fit's shuffled batches go through.
import type { LayersModel } from '@tensorflow/tfjs';
import { compileMaskedConvs, type CompileOptions } from '../api/compile.js';
import { ArgumentError } from '../errors.js';
import { MaskedConv2D } from './masked-conv2d.js';
import { installCpuKernels } from './cpu-kernels.js';
import { loadNativeOps } from './native-ops.js';
import type { tf } from './tf.js';

type Layer = InstanceType<typeof tf.layers.Layer>;

export interface CompileLayersOptions extends Pick<CompileOptions, 'cacheDir' | 'threads' | 'verbose' | 'isa'> {
  /**
   * Images per kernel call (default 32, fit's default batchSize): a larger batch runs in chunks of
   * it, a smaller one is padded to it. Compile for the batch size you train with.
   */
  batch?: number;
  /** Soft masks (SFP family): pruned filters keep their weight gradients. Default false. */
  gradOfPrunedFilters?: boolean;
  /** Expected kept fraction of filters and channels; tunes the plan only. Default 1. */
  density?: number;
  /**
   * Build the input-gradient pass of a layer fed by the model's input (default false: training
   * never reads it; true to take gradients with respect to the input).
   */
  inputGradOfFirstLayers?: boolean;
}

/** The MaskedConv2D layers of a model (nested models included) or of a list of layers. */
export function maskedLayers(model: LayersModel | readonly Layer[]): MaskedConv2D[] {
  const layers = Array.isArray(model) ? model : (model as LayersModel).layers;
  return layers.flatMap((l) =>
    l instanceof MaskedConv2D ? [l] : 'layers' in l ? maskedLayers(l as unknown as LayersModel) : [],
  );
}

/** Whether every input of the layer comes straight from a model input. */
function fedByModelInput(layer: Layer): boolean {
  const nodes = layer.inboundNodes;
  return nodes.length > 0 && nodes.every((n) => n.inboundLayers.every((l) => l.getClassName() === 'InputLayer'));
}

/**
 * Compile the kernels of every MaskedConv2D layer (built: in a model with known input shapes) and
 * load the native ops of the other maskacc layers (once per process).
 */
export async function compileLayers(
  model: LayersModel | readonly Layer[],
  opts: CompileLayersOptions = {},
): Promise<MaskedConv2D[]> {
  const batch = opts.batch ?? 32;
  if (!Number.isInteger(batch) || batch < 1) throw new ArgumentError('batch', opts.batch, 'a positive integer');
  const layers = maskedLayers(model);
  installCpuKernels();
  const specs = layers.map((l) =>
    l.convSpec(batch, { inputGrad: opts.inputGradOfFirstLayers || !fedByModelInput(l), density: opts.density }),
  );
  const ops = loadNativeOps({
    cacheDir: opts.cacheDir,
    threads: opts.threads,
    isa: opts.isa === 'auto' ? undefined : opts.isa,
  });
  if (layers.length === 0) {
    await ops;
    return layers;
  }
  const soft = opts.gradOfPrunedFilters ?? false;
  const [convs] = await Promise.all([
    compileMaskedConvs(specs, {
      gradOfPrunedFilters: soft,
      cacheDir: opts.cacheDir,
      threads: opts.threads,
      verbose: opts.verbose,
      isa: opts.isa,
      respecialize: false,
    }),
    ops,
  ]);
  layers.forEach((l, i) => l.attach({ conv: convs[i], soft }));
  return layers;
}
