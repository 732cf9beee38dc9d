// The masked convolution as a TF.js op: forward, input gradient and weight gradient on a compiled
// MaskedConv, wired with tf.customGrad so tf.grads and every optimizer train it. It serves both
// layer classes: activations NCHW or NHWC (converted inside the op by the native transposes, never
// by a tf.transpose), kernels OIHW or HWIO, and any batch (runInChunks over the compiled one).
import type { BackwardWeightsOptions, MaskedConv } from '../runtime/masked-conv.js';
import { adopt, takeArray } from './buffers.js';
import { runInChunks } from './batch-chunks.js';
import { hwioToOihw, oihwToHwio } from './layout.js';
import { loadedNativeOps, nativeOps } from './native-ops.js';
import { tf, type Tensor, type Tensor4D } from './tf.js';

/** Float32 data of a tensor: the backing array itself on the cpu backend (no copy). */
export const data = (t: Tensor): Float32Array => t.dataSync() as Float32Array;

/** What the op needs of its layer; masks are read at each call. */
export interface ConvOpLayer {
  readonly conv: MaskedConv;
  /** Must match the conv's gradOfPrunedFilters (it decides the dense mode's weight gradient). */
  readonly soft: boolean;
  /**
   * 'masked': the kernels skip pruned filters and input channels. 'dense': the conventional way,
   * for baselines: full-mask kernels on w * m_out * m_in, gradients multiplied by the masks after.
   */
  readonly mode: 'masked' | 'dense';
  readonly outMask: Uint8Array;
  readonly inMask: Uint8Array;
  /** x and y are NHWC (else NCHW). */
  readonly channelsLast: boolean;
  /** y holds the kept filters only (NHWC [N, P, Q, kept]); x may hold the kept channels only. */
  readonly compactOutput: boolean;
  /** The kernel tensor is HWIO, TF.js's conv2d layout (else OIHW). */
  readonly hwio: boolean;
  readonly kernelTime: KernelTime;
}

/** Time spent in a layer's conv kernels, for the share of a step spent in convolutions. */
export class KernelTime {
  private ms = 0;
  add(ms: number): void {
    this.ms += ms;
  }
  /** Milliseconds since the last reset. */
  take(reset = false): number {
    const ms = this.ms;
    if (reset) this.ms = 0;
    return ms;
  }
}

/** A float array that lives as long as the enclosing tidy scope (the backward pass reads it). */
function scratch(size: number): { array: Float32Array; tensor: Tensor } {
  const array = takeArray(size);
  return { array, tensor: adopt(array, [size]) };
}

/** y = conv(x * m_in, w * m_out) (+ bias * m_out), for any batch of x. */
export function maskedConvOp(layer: ConvOpLayer, x: Tensor4D, kernel: Tensor, bias?: Tensor): Tensor4D {
  const { conv, channelsLast, hwio, mode } = layer;
  const l = conv.spec;
  const [C, K, H, W, P, Q] = [l.inChannels, l.outChannels, l.inHeight, l.inWidth, l.outHeight, l.outWidth];
  const [R, S] = l.kernel;
  const B = x.shape[0];
  const dense = mode === 'dense';
  const xSize = C * H * W,
    ySize = K * P * Q;
  const oihw = (w: Float32Array) => (hwio ? hwioToOihw(w, R, S, C, K) : w);
  const effective = (w: Float32Array) =>
    dense ? maskColumns(maskRows(hwio ? w : w.slice(), layer.outMask), layer.inMask, R * S) : w;
  // Compact tensors (channels-last, kept channels only) convert against the masks of this call.
  const { inMask, outMask } = layer;
  const compactIn = channelsLast && x.shape[3] !== C,
    compactOut = channelsLast && layer.compactOutput && !dense;
  const keptOut = compactOut ? outMask.reduce((a, b) => a + b, 0) : K;
  const yShape = channelsLast ? [B, P, Q, keptOut] : [B, K, P, Q];
  const run = (save: (t: Tensor[]) => void, xt: Tensor, wt: Tensor, bt?: Tensor) => {
    let xN = data(xt);
    if (compactIn) {
      const s = scratch(B * xSize);
      toPlanes(xN, B, H * W, C, inMask, s.array);
      xN = s.array;
      save([s.tensor]);
    } else if (channelsLast && C > 1) {
      const s = scratch(B * xSize);
      transposeImages(xN, B, H * W, C, s.array);
      xN = s.array;
      save([s.tensor]);
    } else save([xt]); // one channel: NHWC is NCHW
    const w = effective(oihw(data(wt)));
    const b = bt && (dense ? maskRows(data(bt).slice(), layer.outMask) : data(bt));
    let t0 = performance.now();
    const yN = channelsLast && (K > 1 || compactOut) ? scratch(B * ySize).array : takeArray(B * ySize);
    runInChunks(B, l.batch, [{ data: xN, size: xSize }], [{ data: yN, size: ySize }], ([xc], [yc]) =>
      conv.forward(xc, w, b, yc),
    );
    layer.kernelTime.add(performance.now() - t0);
    return {
      value: adopt<Tensor4D>(
        compactOut ? toChannels(yN, B, K, P * Q, outMask) : channelsLast ? toNhwc(yN, B, K, P, Q) : yN,
        yShape,
      ),
      gradFunc: (dyt: Tensor) => {
        let dyN = data(dyt);
        if (compactOut) {
          const s = scratch(B * ySize);
          toPlanes(dyN, B, P * Q, K, outMask, s.array);
          dyN = s.array;
        } else if (channelsLast && K > 1) {
          const s = scratch(B * ySize);
          transposeImages(dyN, B, P * Q, K, s.array);
          dyN = s.array;
        }
        t0 = performance.now();
        let dx: Tensor;
        if (l.inputGrad) {
          const dxN = channelsLast && C > 1 ? scratch(B * xSize).array : takeArray(B * xSize);
          runInChunks(B, l.batch, [{ data: dyN, size: ySize }], [{ data: dxN, size: xSize }], ([dyc], [dxc]) =>
            conv.backwardData(dyc, w, dxc),
          );
          if (dense) maskInputs(dxN, layer.inMask, H * W);
          const dxOut = compactIn ? toChannels(dxN, B, C, H * W, inMask) : channelsLast ? toNhwc(dxN, B, C, H, W) : dxN;
          dx = adopt(dxOut, xt.shape);
        } else dx = tf.zerosLike(xt); // the network's input: nothing reads its gradient
        // Soft masks train pruned filters by their gradient; when dy is zero on them (a masked batch
        // norm or a ReLU after the conv makes it so) that gradient is zero: kept rows suffice.
        // A compact dy has no pruned channels (their planes of dyN are unwritten: no kernel reads them).
        const prunedDyIsZero = !dense && layer.soft && (compactOut || prunedPlanesZero(dyN, B, K, P * Q, outMask));
        const { dw, dbias } = weightGradients(conv, B, dyN, xN, bt !== undefined, { prunedDyIsZero });
        layer.kernelTime.add(performance.now() - t0);
        if (dense) {
          maskColumns(dw, layer.inMask, R * S);
          if (!layer.soft) {
            maskRows(dw, layer.outMask);
            if (dbias) maskRows(dbias, layer.outMask);
          }
        }
        const grads = [dx, adopt(hwio ? oihwToHwio(dw, K, C, R, S) : dw, wt.shape)];
        if (bt) grads.push(tf.tensor(dbias!, bt.shape));
        return grads;
      },
    };
  };
  const f = bias
    ? tf.customGrad((xt, wt, bt, save) => run(save as (t: Tensor[]) => void, xt as Tensor, wt as Tensor, bt as Tensor))
    : tf.customGrad((xt, wt, save) => run(save as (t: Tensor[]) => void, xt as Tensor, wt as Tensor));
  return (bias ? f(x, kernel, bias) : f(x, kernel)) as Tensor4D;
}

/** Per image, [A][B] -> [B][A] (NHWC -> NCHW: A = H * W, B = C), native. */
function transposeImages(src: Float32Array, n: number, a: number, b: number, dst: Float32Array): void {
  const { ops, threads } = nativeOps('MaskedConv2D (channelsLast)');
  ops.transposeImages(n, a, b, threads, src, dst);
}

const threads = () => nativeOps('MaskedConv2D').threads;

/** NCHW [n][c][hw] -> compact channels-last [n][hw][kept]: the kept planes only. */
function toChannels(src: Float32Array, n: number, c: number, hw: number, keep: Uint8Array): Float32Array {
  const dst = takeArray(n * hw * keep.reduce((a, b) => a + b, 0));
  nativeOps('MaskedConv2D (compact activations)').ops.planesToChannels(n, c, hw, keep, threads(), src, dst);
  return dst;
}

/** Compact channels-last [n][hw][kept] -> NCHW [n][c][hw] in dst: the kept planes (the kernels read no other). */
function toPlanes(src: Float32Array, n: number, hw: number, c: number, keep: Uint8Array, dst: Float32Array): void {
  nativeOps('MaskedConv2D (compact activations)').ops.channelsToPlanes(n, hw, c, keep, threads(), src, dst);
}

/** An NCHW array as an NHWC one: itself with one channel, else a fresh recycled array. */
function toNhwc(src: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  if (c === 1) return src;
  const dst = takeArray(src.length);
  transposeImages(src, n, c, h * w, dst);
  return dst;
}

/** Whether dy (NCHW) is zero on every pruned filter: native when the training ops are loaded. */
function prunedPlanesZero(dy: Float32Array, n: number, k: number, pq: number, outMask: Uint8Array): boolean {
  const native = loadedNativeOps();
  if (!native || outMask.every((m) => m)) return false; // no scan, or nothing to skip
  return native.ops.prunedPlanesZero(n, k, pq, outMask, dy, native.threads);
}

/** dw (and dbias) summed over the chunks of the batch. */
function weightGradients(
  conv: MaskedConv,
  B: number,
  dy: Float32Array,
  x: Float32Array,
  withBias: boolean,
  opts: BackwardWeightsOptions,
): { dw: Float32Array; dbias?: Float32Array } {
  const l = conv.spec;
  const wSize = l.outChannels * l.inChannels * l.kernel[0] * l.kernel[1];
  const dw = new Float32Array(wSize),
    dbias = withBias ? new Float32Array(l.outChannels) : undefined;
  const more =
    B > l.batch ? { dw: new Float32Array(wSize), dbias: dbias && new Float32Array(l.outChannels) } : undefined;
  const ySize = l.outChannels * l.outHeight * l.outWidth,
    xSize = l.inChannels * l.inHeight * l.inWidth;
  runInChunks(
    B,
    l.batch,
    [
      { data: dy, size: ySize },
      { data: x, size: xSize },
    ],
    [],
    ([dyc, xc], _, chunk) => {
      if (chunk === 0) return void conv.backwardWeights(dyc, xc, dw, dbias, opts);
      conv.backwardWeights(dyc, xc, more!.dw, more!.dbias, opts);
      addInto(dw, more!.dw);
      if (dbias) addInto(dbias, more!.dbias!);
    },
  );
  return { dw, dbias };
}

function addInto(acc: Float32Array, a: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] += a[i];
}

/** Rows (one per filter) of pruned filters zeroed in place. */
export function maskRows(a: Float32Array, outMask: Uint8Array): Float32Array {
  const row = a.length / outMask.length;
  outMask.forEach((keep, k) => keep || a.fill(0, k * row, (k + 1) * row));
  return a;
}

/** OIHW weight (or weight-gradient) columns of pruned input channels zeroed in place. */
function maskColumns(w: Float32Array, inMask: Uint8Array, rs: number): Float32Array {
  const C = inMask.length,
    K = w.length / (C * rs);
  for (let k = 0; k < K; k++) inMask.forEach((keep, c) => keep || w.fill(0, (k * C + c) * rs, (k * C + c + 1) * rs));
  return w;
}

/** NCHW input gradient of pruned input channels zeroed in place. */
function maskInputs(dx: Float32Array, inMask: Uint8Array, hw: number): void {
  const C = inMask.length,
    N = dx.length / (C * hw);
  for (let n = 0; n < N; n++) inMask.forEach((keep, c) => keep || dx.fill(0, (n * C + c) * hw, (n * C + c + 1) * hw));
}
