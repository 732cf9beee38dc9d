// TF.js layers whose heavy math runs on maskacc kernels, in NCHW so nothing is transposed:
// MaskedConv2d (forward, input gradient and weight gradient on a MaskedConv), BatchNormRelu and
// maxPool2d (native training ops). Gradients are wired with tf.customGrad, so tf.grads and the
// TF.js optimizers train them like any other op. Masks live in the layers; changing them inside
// a density regime never recompiles.
import type { MaskedConv } from '../runtime/masked-conv.js';
import type { Pool2dShape, TrainOpsAddon } from '../codegen/compile-train-ops.js';
import { ArgumentError } from '../errors.js';
import { tf, type Tensor, type Tensor4D, type Variable } from './tf.js';
import { adopt, takeArray } from './buffers.js';
import { data, KernelTime, maskedConvOp, type ConvOpLayer } from './conv-op.js';

function checkShape(argument: string, t: Tensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ArgumentError(argument, `a tensor of shape [${t.shape}]`, `shape [${shape}] (NCHW)`);
  }
}

function maskOf(argument: string, mask: ArrayLike<number | boolean>, n: number): Uint8Array {
  if (mask.length !== n) throw new ArgumentError(argument, `length ${mask.length}`, `a mask of length ${n}`);
  return Uint8Array.from(mask, (v) => (v ? 1 : 0));
}

export interface MaskedConv2dOptions {
  /**
   * 'masked' (default): the kernels skip pruned filters and input channels.
   * 'dense': the conventional way, for baselines: full-mask kernels on weights multiplied by the
   * masks, w * m_out * m_in (and the gradients multiplied by them afterwards).
   */
  mode?: 'masked' | 'dense';
  /** Seed of the initial weights (default: unseeded). */
  seed?: number;
}

/** A conv layer (weights OIHW, optional bias) on a compiled MaskedConv; one batch size. */
export class MaskedConv2d implements ConvOpLayer {
  readonly kernel: Variable;
  readonly bias?: Variable;
  readonly mode: 'masked' | 'dense';
  /** The current masks (read by the conv op; change them with setMasks). */
  outMask: Uint8Array;
  inMask: Uint8Array;
  /** Time in the conv kernels (all three passes), for the share of a step spent in convolutions. */
  readonly kernelTime = new KernelTime();
  /** What the conv op reads besides the masks: NCHW activations, an OIHW kernel. */
  readonly channelsLast = false;
  readonly compactOutput = false;
  readonly hwio = false;

  /** `soft` must match the conv's gradOfPrunedFilters (it decides the dense mode's weight gradient). */
  constructor(
    readonly conv: MaskedConv,
    readonly soft: boolean,
    opts: MaskedConv2dOptions = {},
    name?: string,
  ) {
    const l = conv.spec;
    const [R, S] = l.kernel;
    this.mode = opts.mode ?? 'masked';
    // He-normal initialization (ReLU networks).
    this.kernel = tf.variable(
      tf.randomNormal(
        [l.outChannels, l.inChannels, R, S],
        0,
        Math.sqrt(2 / (l.inChannels * R * S)),
        'float32',
        opts.seed,
      ),
      true,
      name && `${name}/kernel`,
    );
    if (l.bias) this.bias = tf.variable(tf.zeros([l.outChannels]), true, name && `${name}/bias`);
    this.outMask = new Uint8Array(l.outChannels).fill(1);
    this.inMask = new Uint8Array(l.inChannels).fill(1);
    if (this.mode === 'dense') conv.setMasks({ out: this.outMask, in: this.inMask });
  }

  get masks(): { out: Uint8Array; in: Uint8Array } {
    return { out: this.outMask.slice(), in: this.inMask.slice() };
  }

  /** Kept filters (out) and kept input channels (in), 1 = kept; omitted ones stay as they are. */
  setMasks(m: { out?: ArrayLike<number | boolean>; in?: ArrayLike<number | boolean> }): void {
    const out = m.out ? maskOf('masks.out', m.out, this.conv.spec.outChannels) : this.outMask;
    const inn = m.in ? maskOf('masks.in', m.in, this.conv.spec.inChannels) : this.inMask;
    if (this.mode === 'masked') this.conv.setMasks({ out, in: inn });
    this.outMask = out;
    this.inMask = inn;
  }

  /** y = conv(x * m_in, w * m_out) (+ bias * m_out), NCHW, batch as compiled. */
  apply(x: Tensor4D): Tensor4D {
    const l = this.conv.spec;
    checkShape('x', x, [l.batch, l.inChannels, l.inHeight, l.inWidth]);
    return maskedConvOp(this, x, this.kernel, this.bias);
  }

  /** Milliseconds spent in the conv kernels since the last reset. */
  takeMs(reset = false): number {
    return this.kernelTime.take(reset);
  }

  /**
   * Zero the weights (and bias) of pruned filters in place: hard pruning freezes them at zero,
   * SFP restarts them from zero. Input-channel columns are left alone: the mask already hides
   * them, and a channel that comes back under SFP keeps what it had learned.
   */
  zeroPruned(): void {
    tf.tidy(() => {
      const K = this.conv.spec.outChannels;
      this.kernel.assign(tf.mul(this.kernel, tf.tensor(this.outMask, [K, 1, 1, 1], 'float32')));
      if (this.bias) this.bias.assign(tf.mul(this.bias, tf.tensor(this.outMask, [K], 'float32')));
    });
  }

  dispose(): void {
    this.kernel.dispose();
    this.bias?.dispose();
    this.conv.dispose();
  }
}

/**
 * Batch normalization over N, H, W per channel, then ReLU (optional), with a channel keep-mask:
 * pruned channels output exactly 0 and get no gradient, so the next conv may skip them.
 */
export class BatchNormRelu {
  readonly gamma: Variable;
  readonly beta: Variable;
  /** Running statistics for inference (exponential average, momentum 0.1 as in PyTorch). */
  readonly runningMean: Float32Array;
  readonly runningVar: Float32Array;
  keep: Uint8Array;

  constructor(
    private readonly ops: TrainOpsAddon,
    readonly channels: number,
    private readonly opts: { relu?: boolean; eps?: number; momentum?: number; threads?: number } = {},
    name?: string,
  ) {
    this.gamma = tf.variable(tf.ones([channels]), true, name && `${name}/gamma`);
    this.beta = tf.variable(tf.zeros([channels]), true, name && `${name}/beta`);
    this.runningMean = new Float32Array(channels);
    this.runningVar = new Float32Array(channels).fill(1);
    this.keep = new Uint8Array(channels).fill(1);
  }

  setMask(keep: ArrayLike<number | boolean>): void {
    this.keep = maskOf('keep', keep, this.channels);
  }

  apply(x: Tensor4D, training: boolean): Tensor4D {
    const [N, C, H, W] = x.shape;
    if (C !== this.channels)
      throw new ArgumentError('x', `a tensor of shape [${x.shape}]`, `${this.channels} channels (NCHW)`);
    const { relu = true, eps = 1e-5, momentum = 0.1, threads = 2 } = this.opts;
    const keep = this.keep,
      HW = H * W;
    if (!training) {
      const invstd = this.runningVar.map((v) => 1 / Math.sqrt(v + eps));
      const y = takeArray(x.size);
      this.ops.batchNormForward(
        data(x),
        data(this.gamma),
        data(this.beta),
        keep,
        N,
        C,
        HW,
        eps,
        relu,
        threads,
        false,
        this.runningMean,
        invstd,
        y,
      ); // inference reads mean/invstd, never writes them
      return adopt(y, x.shape);
    }
    const f = tf.customGrad((xt, gt, bt, save) => {
      const xs = data(xt as Tensor),
        gamma = data(gt as Tensor),
        beta = data(bt as Tensor);
      const mean = new Float32Array(C),
        invstd = new Float32Array(C),
        y = takeArray(xs.length);
      this.ops.batchNormForward(xs, gamma, beta, keep, N, C, HW, eps, relu, threads, true, mean, invstd, y);
      const M = N * HW;
      for (let c = 0; c < C; c++) {
        if (!keep[c]) continue;
        const unbiased = M > 1 ? ((1 / (invstd[c] * invstd[c]) - eps) * M) / (M - 1) : 0;
        this.runningMean[c] += momentum * (mean[c] - this.runningMean[c]);
        this.runningVar[c] += momentum * (unbiased - this.runningVar[c]);
      }
      const value = adopt<Tensor4D>(y, x.shape);
      (save as (t: Tensor[]) => void)([xt as Tensor, value]); // backward reads x and y
      return {
        value,
        gradFunc: (dyt: Tensor) => {
          const dx = takeArray(xs.length),
            dgamma = new Float32Array(C),
            dbeta = new Float32Array(C);
          this.ops.batchNormBackward(
            xs,
            gamma,
            beta,
            keep,
            N,
            C,
            HW,
            eps,
            relu,
            threads,
            mean,
            invstd,
            y,
            data(dyt),
            dx,
            dgamma,
            dbeta,
          );
          return [adopt(dx, x.shape), tf.tensor1d(dgamma), tf.tensor1d(dbeta)];
        },
      };
    });
    return f(x, this.gamma, this.beta) as Tensor4D;
  }

  dispose(): void {
    this.gamma.dispose();
    this.beta.dispose();
  }
}

/** Max pooling over k x k windows with stride `stride` (valid windows), NCHW, native. */
export function maxPool2d(ops: TrainOpsAddon, x: Tensor4D, k = 2, stride = k, threads = 2): Tensor4D {
  const [N, C, H, W] = x.shape;
  if (!(Number.isInteger(k) && k >= 1 && k <= H && k <= W))
    throw new ArgumentError('k', k, `an integer window 1..${Math.min(H, W)}`);
  if (!(Number.isInteger(stride) && stride >= 1)) throw new ArgumentError('stride', stride, 'a positive integer');
  const P = Math.floor((H - k) / stride) + 1,
    Q = Math.floor((W - k) / stride) + 1;
  const shape: Pool2dShape = [N, C, H, W, k, k, stride, stride, 0, 0, P, Q, false, threads];
  const f = tf.customGrad((xt, save) => {
    (save as (t: Tensor[]) => void)([xt as Tensor]); // backward reads x
    const xs = data(xt as Tensor),
      y = takeArray(N * C * P * Q);
    ops.maxPool2dForward(...shape, xs, y);
    return {
      value: adopt<Tensor4D>(y, [N, C, P, Q]),
      gradFunc: (dyt: Tensor) => {
        const dx = takeArray(xs.length);
        ops.maxPool2dBackward(...shape, xs, data(dyt), dx);
        return adopt<Tensor4D>(dx, x.shape);
      },
    };
  });
  return f(x) as Tensor4D;
}

/**
 * A fully connected layer y = x w + b (x [N][F], w [F][J]), native: TF.js's cpu matMul runs at ~0.2
 * GFLOP/s. With `rows`, x holds those features of the F only (a compact input): they use those rows
 * of w, and the other rows' gradient is zero.
 */
export function dense(ops: TrainOpsAddon, x: Tensor, w: Tensor, b: Tensor, threads = 2, rows?: Int32Array): Tensor {
  const F = rows ? rows.length : w.shape[0];
  if (x.rank !== 2 || w.rank !== 2 || x.shape[1] !== F || b.rank !== 1 || b.shape[0] !== w.shape[1]) {
    throw new ArgumentError(
      'x, w, b',
      `shapes [${x.shape}], [${w.shape}], [${b.shape}]`,
      `x [N][${rows ? 'kept rows' : 'F'}], w [F][J], b [J]`,
    );
  }
  const N = x.shape[0],
    J = w.shape[1];
  const f = tf.customGrad((xt, wt, bt, save) => {
    (save as (t: Tensor[]) => void)([xt as Tensor]); // backward reads x
    const xs = data(xt as Tensor),
      ws = rows ? gatherRows(data(wt as Tensor), rows, J) : data(wt as Tensor),
      y = takeArray(N * J);
    ops.linearForward(N, F, J, threads, xs, ws, data(bt as Tensor), y);
    return {
      value: adopt(y, [N, J]),
      gradFunc: (dyt: Tensor) => {
        const dx = takeArray(N * F),
          dw = takeArray(F * J),
          db = new Float32Array(J);
        ops.linearBackward(N, F, J, threads, xs, ws, data(dyt), dx, dw, db);
        return [
          adopt(dx, [N, F]),
          rows ? tf.tensor(scatterRows(dw, rows, J, w.shape[0]), w.shape) : adopt(dw, [F, J]),
          tf.tensor1d(db),
        ];
      },
    };
  });
  return f(x, w, b) as Tensor;
}

/** Rows `rows` of a [F][J] matrix, in order. */
function gatherRows(w: Float32Array, rows: Int32Array, J: number): Float32Array {
  const out = new Float32Array(rows.length * J);
  rows.forEach((r, i) => out.set(w.subarray(r * J, (r + 1) * J), i * J));
  return out;
}

/** A [F][J] matrix, zero but for the rows `rows` (in order) taken from `a`. */
function scatterRows(a: Float32Array, rows: Int32Array, J: number, F: number): Float32Array {
  const out = new Float32Array(F * J);
  rows.forEach((r, i) => out.set(a.subarray(i * J, (i + 1) * J), r * J));
  return out;
}
