// Builds (or fetches from the kernel cache) the training-ops addon: batch norm + ReLU, max pooling
// (NCHW), a dense layer and the momentum update (native/train-ops), the non-conv layers a masked CNN step needs at
// native speed.
// Not specialized per layer: one addon per ISA, keyed by its sources, flags and compiler.

import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ISAS, supportedIsas, type IsaName } from '../schedule/isa.js';
import { addonFlags, buildAddon, compilerId } from './build.js';
import { getOrBuildArtifact } from './cache.js';
import { cacheKey } from './cache-key.js';
import { GENERATOR_VERSION, TEMPLATE_DIR, renderCMakeLists } from './render.js';

const require = createRequire(import.meta.url);
const SOURCE_DIR = join(TEMPLATE_DIR, '..', 'native', 'train-ops');

/** The addon's functions (argument order documented in native/train-ops/module.cpp). */
export interface TrainOpsAddon {
  batchNormForward(x: Float32Array, gamma: Float32Array, beta: Float32Array, keep: Uint8Array, N: number, C: number, HW: number,
    eps: number, relu: boolean, threads: number, training: boolean, mean: Float32Array, invstd: Float32Array, y: Float32Array): void;
  batchNormBackward(x: Float32Array, gamma: Float32Array, beta: Float32Array, keep: Uint8Array, N: number, C: number, HW: number,
    eps: number, relu: boolean, threads: number, mean: Float32Array, invstd: Float32Array, y: Float32Array, dy: Float32Array,
    dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array): void;
  maxPoolForward(planes: number, H: number, W: number, k: number, stride: number, threads: number, x: Float32Array, y: Float32Array): void;
  maxPoolBackward(planes: number, H: number, W: number, k: number, stride: number, threads: number, x: Float32Array,
    dy: Float32Array, dx: Float32Array): void;
  linearForward(N: number, F: number, J: number, threads: number, x: Float32Array, w: Float32Array, b: Float32Array, y: Float32Array): void;
  linearBackward(N: number, F: number, J: number, threads: number, x: Float32Array, w: Float32Array, dy: Float32Array,
    dx: Float32Array, dw: Float32Array, db: Float32Array): void;
  momentumStep(lr: number, momentum: number, w: Float32Array, g: Float32Array, accum: Float32Array, wOut: Float32Array): void;
}

const loaded = new Map<string, Promise<TrainOpsAddon>>();

/** The training ops for `isa` (default: the best this CPU runs), built once per cache. */
export function compileTrainOps(opts: { cacheDir: string; isa?: IsaName; log?: (line: string) => void }): Promise<TrainOpsAddon> {
  const isa = opts.isa ?? supportedIsas()[0];
  const sources = Object.fromEntries(readdirSync(SOURCE_DIR).sort().map((f) => [f, readFileSync(join(SOURCE_DIR, f), 'utf8')]));
  const flags = addonFlags();  // sanitized with the kernels under MASKACC_SANITIZE
  const cmake = (target: string) => renderCMakeLists({
    target, baseFlags: flags.cxx, linkFlags: flags.link, units: [{ file: 'ops.cpp', flags: ISAS[isa].cxxFlags }],
  });
  const key = cacheKey({ generator: GENERATOR_VERSION, kind: 'train-ops', sources, cmake: cmake('TARGET'), compiler: compilerId(), isa });
  const id = `${opts.cacheDir}\0${key}`;
  let addon = loaded.get(id);
  if (!addon) {
    const target = `maskacc_ops_${key.slice(0, 16)}`;
    addon = getOrBuildArtifact({
      cacheDir: opts.cacheDir, key, meta: { generator: GENERATOR_VERSION, compiler: compilerId(), kind: 'train-ops', isa },
      build: async (dir) => {
        opts.log?.(`maskacc: compiling training ops [${isa}] -> ${target}`);
        mkdirSync(dir, { recursive: true });
        for (const [file, text] of Object.entries(sources)) writeFileSync(join(dir, file), text);
        writeFileSync(join(dir, 'CMakeLists.txt'), cmake(target));
        return buildAddon(dir, target, 'ops.cpp', 2);
      },
    }).then((path) => require(path) as TrainOpsAddon);
    loaded.set(id, addon);
    addon.catch(() => loaded.delete(id));
  }
  return addon;
}
