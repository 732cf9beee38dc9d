// MaskaccDense: tf.layers.dense on rank-2 inputs as one native op (the classifier head after a
// flatten). TF.js's cpu matMul and its gradients took ~20 ms of a ~100 ms step of the pruned demo
// CNN. prune() swaps it in for Dense and stripPruning swaps it back: same weights (kernel [F][J],
// bias) and config.
import type { LayerVariable, Shape } from '@tensorflow/tfjs';
import { ArgumentError, MaskaccError } from '../errors.js';
import { dense } from './layers.js';
import { nativeOps } from './native-ops.js';
import { tf, type Tensor } from './tf.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

export interface MaskaccDenseArgs extends LayerArgs {
  units: number;
  /** Any tf.layers.activation name; default none. */
  activation?: string;
  useBias?: boolean;
  /**
   * The input may be compact: only the features an `input_mask` weight keeps, in order (a flatten
   * of compact activations; prune() sets it and the mask).
   */
  compactInput?: boolean;
}

export class MaskaccDense extends tf.layers.Layer {
  static readonly className = 'MaskaccDense';
  readonly units: number;
  readonly useBias: boolean;
  readonly compactInput: boolean;
  private readonly activationName?: string;
  private readonly activationLayer?: ReturnType<typeof tf.layers.activation>;
  private kernel?: LayerVariable;
  private bias?: LayerVariable;
  private inputMask?: LayerVariable;

  constructor(args: MaskaccDenseArgs) {
    super(args);
    if (!Number.isInteger(args?.units) || args.units < 1)
      throw new ArgumentError('units', args?.units, 'a positive integer');
    this.units = args.units;
    this.useBias = args.useBias ?? true;
    this.compactInput = args.compactInput ?? false;
    if (args.activation && args.activation !== 'linear') {
      this.activationName = args.activation;
      this.activationLayer = tf.layers.activation({ activation: args.activation as 'relu' });
    }
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const F = shape[shape.length - 1];
    if (shape.length !== 2 || F == null)
      throw new ArgumentError(`${this.name} input shape`, `[${shape}]`, '[batch, features] with known features');
    this.kernel = this.addWeight('kernel', [F, this.units], 'float32', tf.initializers.glorotUniform({}));
    if (this.useBias) this.bias = this.addWeight('bias', [this.units], 'float32', tf.initializers.zeros());
    if (this.compactInput)
      this.inputMask = this.addWeight('input_mask', [F], 'float32', tf.initializers.ones(), undefined, false);
    this.built = true;
  }

  /** The input features a compact input holds (1 = kept); undefined without compactInput. */
  getInputMask(): Uint8Array | undefined {
    return this.inputMask && Uint8Array.from(this.inputMask.read().dataSync(), (v) => (v ? 1 : 0));
  }

  setInputMask(mask: ArrayLike<number>): void {
    const v = this.inputMask;
    if (!v) throw new MaskaccError(`layer '${this.name}' (MaskaccDense) has no input mask (compactInput is off)`);
    if (mask.length !== v.shape[0])
      throw new ArgumentError('mask', `length ${mask.length}`, `a mask of length ${v.shape[0]} (${this.name})`);
    tf.tidy(
      () =>
        void v.write(
          tf.tensor1d(
            Array.from(mask, (m) => (m ? 1 : 0)),
            'float32',
          ),
        ),
    );
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    return [shape[0], this.units];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (!this.kernel) throw new MaskaccError(`layer '${this.name}' (MaskaccDense) is not built yet`);
      const { ops, threads } = nativeOps(`layer '${this.name}' (MaskaccDense)`);
      const F = this.kernel.shape[0];
      const mask = this.getInputMask();
      const rows = mask && x.shape[1] !== F ? Int32Array.from([...mask.keys()].filter((f) => mask[f])) : undefined;
      if (x.rank !== 2 || x.shape[1] !== (rows?.length ?? F))
        throw new ArgumentError(
          `${this.name} input`,
          `shape [${x.shape}]`,
          `[batch, ${F}]${mask ? ` or [batch, ${mask.reduce((a, b) => a + b, 0)}] (the kept features)` : ''}`,
        );
      const y = dense(ops, x, this.kernel.read(), this.bias?.read() ?? tf.zeros([this.units]), threads, rows);
      return this.activationLayer ? (this.activationLayer.apply(y) as Tensor) : y;
    });
  }

  override getConfig() {
    const config = {
      units: this.units,
      useBias: this.useBias,
      ...(this.compactInput ? { compactInput: true } : {}),
      ...(this.activationName ? { activation: this.activationName } : {}),
    };
    return { ...config, ...super.getConfig() };
  }
}
tf.serialization.registerClass(MaskaccDense);
