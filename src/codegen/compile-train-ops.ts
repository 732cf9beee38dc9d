// Builds (or fetches from the kernel cache) the training-ops addon (native/train-ops): batch norm
// (+ ReLU), ReLU, max pooling (NCHW and channels-last), a dense layer, the momentum update and the
// NHWC <-> NCHW transposes: the non-conv work of a masked CNN step at native speed.
// Not specialized per layer: one addon per ISA, keyed by its sources, flags and compiler.

import { ISAS, supportedIsas, type IsaName } from '../schedule/isa.js';
import { loadNativeAddon } from './native-addon.js';

/** The leading arguments of the max-pooling functions. */
export type Pool2dShape = [
  N: number,
  C: number,
  H: number,
  W: number,
  kh: number,
  kw: number,
  sh: number,
  sw: number,
  padTop: number,
  padLeft: number,
  P: number,
  Q: number,
  channelsLast: boolean,
  threads: number,
];

/** The addon's functions (argument order documented in native/train-ops/module.cpp). */
export interface TrainOpsAddon {
  batchNormForward(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    keep: Uint8Array,
    N: number,
    C: number,
    HW: number,
    eps: number,
    relu: boolean,
    threads: number,
    training: boolean,
    mean: Float32Array,
    invstd: Float32Array,
    y: Float32Array,
  ): void;
  batchNormBackward(
    x: Float32Array,
    gamma: Float32Array,
    beta: Float32Array,
    keep: Uint8Array,
    N: number,
    C: number,
    HW: number,
    eps: number,
    relu: boolean,
    threads: number,
    mean: Float32Array,
    invstd: Float32Array,
    y: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
  ): void;
  /** Max pooling, either layout, 'same' padding by padTop/padLeft; windows must not be empty. */
  /** argmax (channels-last, fewer than 255 taps): each output's tap r * kw + s, for the backward below. */
  maxPool2dForward(...args: [...Pool2dShape, x: Float32Array, y: Float32Array, argmax?: Uint8Array]): void;
  maxPool2dBackwardArgmax(...args: [...Pool2dShape, argmax: Uint8Array, dy: Float32Array, dx: Float32Array]): void;
  maxPool2dBackward(...args: [...Pool2dShape, x: Float32Array, dy: Float32Array, dx: Float32Array]): void;
  reluForward(threads: number, x: Float32Array, y: Float32Array): void;
  /** dx = dy where y > 0, else 0. */
  reluBackward(threads: number, y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  /** Whether every plane of a channel with keep[c] == 0 is all zeros (x NCHW [N][C][HW]). */
  prunedPlanesZero(N: number, C: number, HW: number, keep: Uint8Array, x: Float32Array, threads: number): boolean;
  /** Per image, [A][B] -> [B][A] (NHWC -> NCHW: A = H * W, B = C). */
  transposeImages(N: number, A: number, B: number, threads: number, src: Float32Array, dst: Float32Array): void;
  /** Compact channels-last [N][HW][kept] -> NCHW [N][C][HW]: the kept planes (the pruned ones are not written). */
  channelsToPlanes(
    N: number,
    HW: number,
    C: number,
    keep: Uint8Array,
    threads: number,
    src: Float32Array,
    dst: Float32Array,
  ): void;
  /** NCHW [N][C][HW] -> compact channels-last [N][HW][kept]: the kept planes only. */
  planesToChannels(
    N: number,
    C: number,
    HW: number,
    keep: Uint8Array,
    threads: number,
    src: Float32Array,
    dst: Float32Array,
  ): void;
  linearForward(
    N: number,
    F: number,
    J: number,
    threads: number,
    x: Float32Array,
    w: Float32Array,
    b: Float32Array,
    y: Float32Array,
  ): void;
  linearBackward(
    N: number,
    F: number,
    J: number,
    threads: number,
    x: Float32Array,
    w: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float32Array,
    db: Float32Array,
  ): void;
  momentumStep(
    lr: number,
    momentum: number,
    w: Float32Array,
    g: Float32Array,
    accum: Float32Array,
    wOut: Float32Array,
  ): void;
}

/** The training ops for `isa` (default: the best this CPU runs), built once per cache. */
export function compileTrainOps(opts: {
  cacheDir: string;
  isa?: IsaName;
  log?: (line: string) => void;
}): Promise<TrainOpsAddon> {
  const isa = opts.isa ?? supportedIsas()[0];
  return loadNativeAddon<TrainOpsAddon>({
    kind: 'train-ops',
    cacheDir: opts.cacheDir,
    units: [{ file: 'ops.cpp', flags: ISAS[isa].cxxFlags }],
    // The kernels' vector primitives for this ISA (the transposes use simd::transpose).
    headers: [{ from: `templates/isa/${isa}.hpp`, as: 'simd.hpp' }],
    extraKey: { isa },
    log: opts.log,
  });
}
