// The Layers API's non-conv ops (batch norm, ReLU, max pooling, the NHWC <-> NCHW conversions) on
// the native training-ops addon. TF.js's cpu backend runs element-wise and pooling gradients
// through generic per-element paths: on the demo CNN they took ~95% of a training step, against
// the conv kernels' 5%. The addon is loaded once per process by compileLayers (Layer.call is sync,
// a build is not); a layer called before that says what to call.
import { availableParallelism } from 'node:os';
import { defaultCacheDir } from '../codegen/cache.js';
import { compileTrainOps, type TrainOpsAddon } from '../codegen/compile-train-ops.js';
import { MaskaccError } from '../errors.js';
import type { IsaName } from '../schedule/isa.js';

let loaded: { ops: TrainOpsAddon; threads: number } | undefined;

/** Build (or fetch from the cache) and keep the training ops; later calls reuse them. */
export async function loadNativeOps(opts: { cacheDir?: string; threads?: number; isa?: IsaName } = {}): Promise<void> {
  const threads = opts.threads ?? (Number(process.env.MASKACC_NUM_THREADS) || availableParallelism());
  const ops = await compileTrainOps({ cacheDir: opts.cacheDir ?? defaultCacheDir(), isa: opts.isa });
  loaded = { ops, threads };
}

/** The loaded ops and the threads they run with; `layer` names the caller in the error. */
export function nativeOps(layer: string): { ops: TrainOpsAddon; threads: number } {
  if (!loaded)
    throw new MaskaccError(
      `${layer} runs on maskacc's native training ops, which are not loaded: ` +
        '`await compileLayers(model)` first (prune() does it)',
    );
  return loaded;
}

/** The loaded ops, or undefined (for optional fast paths). */
export function loadedNativeOps(): { ops: TrainOpsAddon; threads: number } | undefined {
  return loaded;
}
