// MaskedBatchNormalization: tf.layers.batchNormalization with a channel keep-mask multiplied into
// its output, so a pruned filter's channel is exactly 0 after it (a plain batch norm would turn
// the zero channel into its beta), and stays 0 through ReLU and pooling: the next conv may skip
// it. Same weights, names and arithmetic as TF.js's BatchNormalization (stripPruning copies them
// into one), plus a non-trainable `mask` weight that saves and loads with the model. The math is
// one native op (batch-norm-op.ts), for any channel axis.
import type { LayerVariable, Shape } from '@tensorflow/tfjs';
import { ArgumentError, MaskaccError } from '../errors.js';
import { batchNormInference, batchNormTraining } from './batch-norm-op.js';
import { tf, type Tensor } from './tf.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface MaskedBatchNormalizationArgs extends LayerArgs {
  /** The channel axis (default -1, channelsLast; 1 for channelsFirst). */
  axis?: number;
  /** Moving-average momentum (default 0.99, as TF.js). */
  momentum?: number;
  /** Default 1e-3, as TF.js. */
  epsilon?: number;
  center?: boolean;
  scale?: boolean;
  /**
   * The input may be compact: the kept channels only on the channel axis (a MaskedConv2D's
   * compactOutput); the output then is too. prune() sets it with the conv's.
   */
  compact?: boolean;
}

export class MaskedBatchNormalization extends tf.layers.Layer {
  static readonly className = 'MaskedBatchNormalization';
  readonly axis: number;
  readonly momentum: number;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly compact: boolean;
  private gamma?: LayerVariable;
  private beta?: LayerVariable;
  private movingMean?: LayerVariable;
  private movingVariance?: LayerVariable;
  private mask?: LayerVariable;

  constructor(args: MaskedBatchNormalizationArgs = {}) {
    super(args);
    this.axis = args.axis ?? -1;
    if (!Number.isInteger(this.axis)) throw new ArgumentError('axis', args.axis, 'an integer axis');
    this.momentum = args.momentum ?? 0.99;
    this.epsilon = args.epsilon ?? 1e-3;
    if (!(this.momentum >= 0 && this.momentum <= 1))
      throw new ArgumentError('momentum', args.momentum, 'a number in [0, 1]');
    if (!(this.epsilon > 0)) throw new ArgumentError('epsilon', args.epsilon, 'a positive number');
    this.center = args.center ?? true;
    this.scale = args.scale ?? true;
    this.compact = args.compact ?? false;
  }

  private channelAxis(rank: number): number {
    const axis = this.axis < 0 ? this.axis + rank : this.axis;
    if (axis < 1 || axis >= rank)
      throw new ArgumentError(`${this.name} axis`, this.axis, `a channel axis of a rank-${rank} input`);
    return axis;
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const C = shape[this.channelAxis(shape.length)];
    if (C == null) throw new ArgumentError(`${this.name} input shape`, shape, 'a known channel count');
    const [ones, zeros] = [tf.initializers.ones(), tf.initializers.zeros()];
    if (this.scale) this.gamma = this.addWeight('gamma', [C], 'float32', ones, undefined, true);
    if (this.center) this.beta = this.addWeight('beta', [C], 'float32', zeros, undefined, true);
    this.movingMean = this.addWeight('moving_mean', [C], 'float32', zeros, undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [C], 'float32', ones, undefined, false);
    this.mask = this.addWeight('mask', [C], 'float32', ones, undefined, false);
    this.built = true;
  }

  private get maskVariable(): LayerVariable {
    if (!this.mask) throw new MaskaccError(`layer '${this.name}' (MaskedBatchNormalization) is not built yet`);
    return this.mask;
  }

  /** The channel mask (1 = kept). */
  getMask(): Uint8Array {
    return Uint8Array.from(this.maskVariable.read().dataSync(), (v) => (v ? 1 : 0));
  }

  setMask(mask: ArrayLike<number | boolean>): void {
    const v = this.maskVariable;
    if (mask.length !== v.shape[0])
      throw new ArgumentError('mask', `length ${mask.length}`, `a mask of length ${v.shape[0]} (${this.name})`);
    tf.tidy(() => {
      v.write(
        tf.tensor1d(
          Array.from(mask, (x) => (x ? 1 : 0)),
          'float32',
        ),
      );
    });
  }

  /** Zero gamma and beta of pruned channels (SFP restarts them from zero, hard pruning freezes them). */
  zeroPruned(): void {
    tf.tidy(() => {
      const m = this.maskVariable.read();
      for (const v of [this.gamma, this.beta]) if (v) v.write(tf.mul(v.read(), m));
    });
  }

  override call(inputs: Tensor | Tensor[], kwargs: Record<string, unknown>): Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const axis = this.channelAxis(x.rank);
      const size = (dims: number[]) => dims.reduce((p, d) => p * d, 1);
      const view = {
        outer: size(x.shape.slice(0, axis)),
        channels: x.shape[axis],
        inner: size(x.shape.slice(axis + 1)),
      };
      const mask = this.maskVariable.read().dataSync() as Float32Array;
      const C = mask.length;
      const kept = mask.reduce((n, m) => n + (m ? 1 : 0), 0);
      const compact = view.channels !== C;
      if (compact && !(this.compact && view.channels === kept))
        throw new ArgumentError(
          `${this.name} input`,
          `shape [${x.shape}]`,
          `${C}${this.compact ? ` (or ${kept}, the kept)` : ''} channels on axis ${this.axis}`,
        );
      const gamma = this.gamma?.read() ?? tf.ones([C]),
        beta = this.beta?.read() ?? tf.zeros([C]);
      if (!kwargs?.training) {
        const floats = (t: Tensor) => t.dataSync() as Float32Array;
        return batchNormInference(
          x,
          view,
          {
            mean: floats(this.movingMean!.read()),
            variance: floats(this.movingVariance!.read()),
            gamma: floats(gamma),
            beta: floats(beta),
            mask,
            epsilon: this.epsilon,
          },
          this.describe(),
          compact,
        );
      }
      const { y, mean, variance } = batchNormTraining(
        x,
        gamma,
        beta,
        view,
        mask,
        this.epsilon,
        this.describe(),
        compact,
      );
      for (const [v, value] of [
        [this.movingMean!, mean],
        [this.movingVariance!, variance],
      ] as const) {
        tf.tidy(() => {
          const old = v.read();
          v.write(tf.sub(old, tf.mul(tf.sub(old, tf.tensor1d(value)), 1 - this.momentum)));
        });
      }
      return y;
    });
  }

  private describe(): string {
    return `layer '${this.name}' (MaskedBatchNormalization)`;
  }

  override getConfig() {
    const config = {
      axis: this.axis,
      momentum: this.momentum,
      epsilon: this.epsilon,
      center: this.center,
      scale: this.scale,
      ...(this.compact ? { compact: true } : {}),
    };
    return { ...config, ...super.getConfig() };
  }
}
tf.serialization.registerClass(MaskedBatchNormalization);

/** A MaskedBatchNormalization layer (as tf.layers.batchNormalization makes a BatchNormalization). */
export function maskedBatchNormalization(args?: MaskedBatchNormalizationArgs): MaskedBatchNormalization {
  return new MaskedBatchNormalization(args);
}
