// MaskedConv2D: a tf.layers.Layer whose convolution runs on a compiled MaskedConv. Its config
// mirrors tf.layers.conv2d, and it keeps conv2d's weights (kernel HWIO, bias) under the same
// names, so stripPruning copies them into a plain Conv2D and model.save stores them as TF.js
// would. The HWIO <-> OIHW conversion of a kernel is a few thousand floats per call. The masks are
// two non-trainable weights (out_mask [filters], in_mask [inChannels]), saved and loaded with the
// others. Compiling is async and Layer.call is sync: `await compileLayers(model)` first.
import type { LayerVariable, Shape } from '@tensorflow/tfjs';
import type { MaskedConv } from '../runtime/masked-conv.js';
import type { ConvSpec } from '../ir/conv.js';
import { ArgumentError, MaskaccError } from '../errors.js';
import { KernelTime, maskedConvOp, type ConvOpLayer } from './conv-op.js';
import { reluOp } from './relu.js';
import { releaseFreeArrays } from './buffers.js';
import { tf, type Tensor, type Tensor4D } from './tf.js';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
type Initializer = ReturnType<typeof tf.initializers.ones>;
type Pair = [number, number];

/** Initializers a config may name (as tf.layers.conv2d accepts them). */
const INITIALIZERS = {
  glorotUniform: () => tf.initializers.glorotUniform({}),
  glorotNormal: () => tf.initializers.glorotNormal({}),
  heNormal: () => tf.initializers.heNormal({}),
  heUniform: () => tf.initializers.heUniform({}),
  leCunNormal: () => tf.initializers.leCunNormal({}),
  leCunUniform: () => tf.initializers.leCunUniform({}),
  zeros: () => tf.initializers.zeros(),
  ones: () => tf.initializers.ones(),
} as const;
export type InitializerName = keyof typeof INITIALIZERS;

export interface MaskedConv2DArgs extends LayerArgs {
  filters: number;
  kernelSize: number | Pair;
  strides?: number | Pair;
  padding?: 'same' | 'valid';
  dilationRate?: number | Pair;
  useBias?: boolean;
  /** 'channelsLast' (default, NHWC) or 'channelsFirst' (NCHW, what the kernels run on). */
  dataFormat?: 'channelsLast' | 'channelsFirst';
  kernelInitializer?: InitializerName | Initializer;
  biasInitializer?: InitializerName | Initializer;
  /** Any tf.layers.activation name ('relu', 'linear', ...); default none. */
  activation?: string;
  /**
   * 'masked' (default): the kernels skip pruned filters and input channels. 'dense': full-mask
   * kernels on w * m_out * m_in, the conventional way (for baselines).
   */
  mode?: 'masked' | 'dense';
  /**
   * The output holds the kept filters only, in order ([N, H, W, kept]): a compact activation, for
   * readers that skip pruned channels anyway (channelsLast, masked mode). prune() sets it where every
   * layer reading the channels takes compact tensors; then BN, ReLU and pooling shrink with the mask.
   */
  compactOutput?: boolean;
  /** The input may be compact: [N, H, W, kept input channels] (see compactOutput). */
  compactInput?: boolean;
}

/** What compileLayers gives a layer: its compiled kernel and the mask policy it was built for. */
export interface CompiledConv {
  conv: MaskedConv;
  soft: boolean;
}

const pair = (v: number | Pair | undefined, fallback: number): Pair =>
  v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : [v[0], v[1]];

function positivePair(argument: string, v: Pair): Pair {
  if (!v.every((d) => Number.isInteger(d) && d >= 1)) throw new ArgumentError(argument, v, 'positive integers');
  return v;
}

function initializer(argument: string, v: InitializerName | Initializer | undefined, fallback: InitializerName) {
  if (v === undefined || typeof v === 'string') {
    const make = INITIALIZERS[v ?? fallback];
    if (!make) throw new ArgumentError(argument, v, `one of ${Object.keys(INITIALIZERS).join(', ')} or an Initializer`);
    return make();
  }
  return v;
}

export class MaskedConv2D extends tf.layers.Layer implements ConvOpLayer {
  static readonly className = 'MaskedConv2D';
  readonly filters: number;
  readonly kernelSize: Pair;
  readonly strides: Pair;
  readonly padding: 'same' | 'valid';
  readonly dilationRate: Pair;
  readonly useBias: boolean;
  readonly dataFormat: 'channelsLast' | 'channelsFirst';
  readonly mode: 'masked' | 'dense';
  readonly compactOutput: boolean;
  readonly compactInput: boolean;
  private readonly activationName?: string;
  private readonly activationLayer?: ReturnType<typeof tf.layers.activation>;
  private readonly kernelInit: Initializer;
  private readonly biasInit: Initializer;
  private readonly initNames: { kernel?: string; bias?: string };
  private kernel?: LayerVariable;
  private bias?: LayerVariable;
  private outMaskWeight?: LayerVariable;
  private inMaskWeight?: LayerVariable;
  private compiled?: CompiledConv;
  /** The input shape the layer was built for (its kernel spec comes from it). */
  builtInputShape?: Shape;
  /** The masks the kernel was last given (synced from the mask weights at each call). */
  outMask: Uint8Array = new Uint8Array(0);
  inMask: Uint8Array = new Uint8Array(0);
  /** Time in the conv kernels (all three passes), for the share of a step spent in convolutions. */
  readonly kernelTime = new KernelTime();

  constructor(args: MaskedConv2DArgs) {
    super(args);
    if (!Number.isInteger(args.filters) || args.filters < 1)
      throw new ArgumentError('filters', args.filters, 'a positive integer');
    this.filters = args.filters;
    this.kernelSize = positivePair('kernelSize', pair(args.kernelSize, NaN));
    this.strides = positivePair('strides', pair(args.strides, 1));
    this.dilationRate = positivePair('dilationRate', pair(args.dilationRate, 1));
    this.padding = args.padding ?? 'valid';
    if (this.padding !== 'same' && this.padding !== 'valid')
      throw new ArgumentError('padding', args.padding, "'same' or 'valid'");
    this.dataFormat = args.dataFormat ?? 'channelsLast';
    if (this.dataFormat !== 'channelsLast' && this.dataFormat !== 'channelsFirst')
      throw new ArgumentError('dataFormat', args.dataFormat, "'channelsLast' or 'channelsFirst'");
    this.mode = args.mode ?? 'masked';
    if (this.mode !== 'masked' && this.mode !== 'dense')
      throw new ArgumentError('mode', args.mode, "'masked' or 'dense'");
    this.compactOutput = args.compactOutput ?? false;
    this.compactInput = args.compactInput ?? false;
    for (const [flag, on] of [
      ['compactOutput', this.compactOutput],
      ['compactInput', this.compactInput],
    ] as const)
      if (on && (this.dataFormat !== 'channelsLast' || this.mode !== 'masked'))
        throw new ArgumentError(flag, on, "false unless dataFormat is 'channelsLast' and mode 'masked'");
    this.useBias = args.useBias ?? true;
    this.kernelInit = initializer('kernelInitializer', args.kernelInitializer, 'glorotUniform');
    this.biasInit = initializer('biasInitializer', args.biasInitializer, 'zeros');
    const name = (v: unknown) => (typeof v === 'string' ? v : undefined);
    this.initNames = { kernel: name(args.kernelInitializer), bias: name(args.biasInitializer) };
    if (args.activation && args.activation !== 'linear') {
      this.activationName = args.activation;
      this.activationLayer = tf.layers.activation({ activation: args.activation as 'relu' });
    }
  }

  get channelsLast(): boolean {
    return this.dataFormat === 'channelsLast';
  }
  readonly hwio = true;

  get conv(): MaskedConv {
    if (!this.compiled)
      throw new MaskaccError(
        `layer '${this.name}' (MaskedConv2D): its kernels are not compiled; run \`await compileLayers(model)\` before fit, evaluate or predict`,
      );
    return this.compiled.conv;
  }

  get soft(): boolean {
    return this.compiled?.soft ?? false;
  }

  get isCompiled(): boolean {
    return this.compiled !== undefined;
  }

  /** Input channels, height and width (NCHW order) of the built layer. */
  inputDims(inputShape: Shape): [number, number, number] {
    const [h, w, c] = this.channelsLast ? inputShape.slice(1, 4) : [...inputShape.slice(2, 4), inputShape[1]];
    if (inputShape.length !== 4 || [h, w, c].some((d) => d == null))
      throw new ArgumentError(
        `${this.name} input shape`,
        inputShape,
        `[batch, ${this.channelsLast ? 'H, W, C' : 'C, H, W'}]`,
      );
    return [c!, h!, w!];
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const [C] = this.inputDims(shape);
    this.builtInputShape = shape;
    const [R, S] = this.kernelSize;
    this.kernel = this.addWeight('kernel', [R, S, C, this.filters], 'float32', this.kernelInit, undefined, true);
    if (this.useBias) this.bias = this.addWeight('bias', [this.filters], 'float32', this.biasInit, undefined, true);
    const ones = tf.initializers.ones();
    this.outMaskWeight = this.addWeight('out_mask', [this.filters], 'float32', ones, undefined, false);
    this.inMaskWeight = this.addWeight('in_mask', [C], 'float32', ones, undefined, false);
    this.built = true;
  }

  /** Per spatial axis: the padding before the input, and an extra row/column after it ('same' with an odd total). */
  private pads(h: number, w: number): { before: Pair; extra: Pair } {
    if (this.padding === 'valid') return { before: [0, 0], extra: [0, 0] };
    const total = [h, w].map((n, i) => {
      const eff = (this.kernelSize[i] - 1) * this.dilationRate[i] + 1;
      return Math.max((Math.ceil(n / this.strides[i]) - 1) * this.strides[i] + eff - n, 0);
    });
    return { before: [total[0] >> 1, total[1] >> 1], extra: [total[0] & 1, total[1] & 1] };
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const [, h, w] = this.inputDims(shape);
    const out = [h, w].map((n, i) => {
      const eff = (this.kernelSize[i] - 1) * this.dilationRate[i] + 1;
      return this.padding === 'same' ? Math.ceil(n / this.strides[i]) : Math.ceil((n - eff + 1) / this.strides[i]);
    });
    return this.channelsLast ? [shape[0], out[0], out[1], this.filters] : [shape[0], this.filters, out[0], out[1]];
  }

  /** The kernel spec for a batch of `batch` images. */
  convSpec(batch: number, opts: { inputGrad: boolean; density?: number }): ConvSpec {
    if (!this.builtInputShape) throw new MaskaccError(`layer '${this.name}' (MaskedConv2D) is not built yet`);
    const [C, H, W] = this.inputDims(this.builtInputShape);
    const { before, extra } = this.pads(H, W);
    return {
      batch,
      inChannels: C,
      outChannels: this.filters,
      inHeight: H + extra[0],
      inWidth: W + extra[1],
      kernel: this.kernelSize,
      stride: this.strides,
      padding: before,
      dilation: this.dilationRate,
      bias: this.useBias,
      inputGrad: opts.inputGrad,
      density: opts.density === undefined ? undefined : { out: opts.density, in: opts.density },
    };
  }

  /** Gives the layer its compiled kernel (compileLayers does this). */
  attach(compiled: CompiledConv): void {
    this.compiled?.conv.dispose();
    this.compiled = compiled;
    const { outChannels: K, inChannels: C } = compiled.conv.spec;
    if (this.mode === 'dense')
      compiled.conv.setMasks({ out: new Uint8Array(K).fill(1), in: new Uint8Array(C).fill(1) });
    this.outMask = new Uint8Array(0); // the next call hands the masks to the new kernel
    this.inMask = new Uint8Array(0);
  }

  /** The current masks (1 = kept): `out` per filter, `in` per input channel. */
  getMasks(): { out: Uint8Array; in: Uint8Array } {
    const read = (v: LayerVariable) => Uint8Array.from(v.read().dataSync(), (x) => (x ? 1 : 0));
    return { out: read(this.weight('out_mask')), in: read(this.weight('in_mask')) };
  }

  /** Set the masks (1 = kept); omitted ones stay. They are weights: saved with the model. */
  setMasks(m: { out?: ArrayLike<number | boolean>; in?: ArrayLike<number | boolean> }): void {
    const write = (argument: string, v: LayerVariable, mask: ArrayLike<number | boolean>) => {
      if (mask.length !== v.shape[0])
        throw new ArgumentError(argument, `length ${mask.length}`, `a mask of length ${v.shape[0]} (${this.name})`);
      tf.tidy(() => {
        v.write(
          tf.tensor1d(
            Array.from(mask, (x) => (x ? 1 : 0)),
            'float32',
          ),
        );
      });
    };
    if (m.out) write('masks.out', this.weight('out_mask'), m.out);
    if (m.in) write('masks.in', this.weight('in_mask'), m.in);
  }

  /** The kernel (HWIO) and bias variables. */
  get kernelVariable(): LayerVariable {
    return this.weight('kernel');
  }
  get biasVariable(): LayerVariable | undefined {
    return this.bias;
  }

  private weight(name: 'kernel' | 'out_mask' | 'in_mask'): LayerVariable {
    const v = { kernel: this.kernel, out_mask: this.outMaskWeight, in_mask: this.inMaskWeight }[name];
    if (!v) throw new MaskaccError(`layer '${this.name}' (MaskedConv2D) is not built yet`);
    return v;
  }

  /** Hands the mask weights to the kernel when they changed since the last call. */
  private syncMasks(): void {
    const { out, in: inn } = this.getMasks();
    const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);
    if (same(out, this.outMask) && same(inn, this.inMask)) return;
    if (this.mode === 'masked') this.conv.setMasks({ out, in: inn }); // dense mode: the kernel keeps full masks
    this.outMask = out;
    this.inMask = inn;
  }

  /** Milliseconds spent in the conv kernels since the last reset. */
  takeMs(reset = false): number {
    return this.kernelTime.take(reset);
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return tf.tidy(() => {
      let x = (Array.isArray(inputs) ? inputs[0] : inputs) as Tensor4D;
      const conv = this.conv;
      this.syncMasks();
      const { extra } = this.pads(...this.spatial(x));
      if (extra[0] || extra[1]) {
        const hw: [number, number][] = [
          [0, extra[0]],
          [0, extra[1]],
        ];
        x = tf.pad(x, this.channelsLast ? [[0, 0], ...hw, [0, 0]] : [[0, 0], [0, 0], ...hw]);
      }
      const [C, H, W] = this.inputDims(x.shape);
      const l = conv.spec;
      const kept = this.inMask.reduce((a, b) => a + b, 0);
      const compact = this.compactInput && C === kept;
      if ((C !== l.inChannels && !compact) || H !== l.inHeight || W !== l.inWidth)
        throw new ArgumentError(
          `${this.name} input`,
          `shape [${x.shape}]`,
          `C, H, W = ${l.inChannels}${this.compactInput ? ` (or ${kept}, the kept channels)` : ''}, ${l.inHeight}, ${l.inWidth}`,
        );
      const y = maskedConvOp(this, x, this.kernel!.read(), this.bias?.read());
      if (this.activationName === 'relu') return reluOp(y, `layer '${this.name}' (MaskedConv2D)`);
      return this.activationLayer ? (this.activationLayer.apply(y) as Tensor) : y;
    });
  }

  private spatial(x: Tensor): [number, number] {
    const [, h, w] = this.inputDims(x.shape);
    return [h, w];
  }

  override getConfig() {
    const config = {
      filters: this.filters,
      kernelSize: this.kernelSize,
      strides: this.strides,
      padding: this.padding,
      dilationRate: this.dilationRate,
      useBias: this.useBias,
      dataFormat: this.dataFormat,
      mode: this.mode,
      ...(this.compactOutput ? { compactOutput: true } : {}),
      ...(this.compactInput ? { compactInput: true } : {}),
      ...(this.activationName ? { activation: this.activationName } : {}),
      ...(this.initNames.kernel ? { kernelInitializer: this.initNames.kernel } : {}),
      ...(this.initNames.bias ? { biasInitializer: this.initNames.bias } : {}),
    };
    return { ...config, ...super.getConfig() };
  }

  override dispose() {
    this.compiled?.conv.dispose();
    this.compiled = undefined;
    releaseFreeArrays(); // a disposed model's released activations go back to the output pool
    return super.dispose();
  }
}
tf.serialization.registerClass(MaskedConv2D);

/** A MaskedConv2D layer (as tf.layers.conv2d makes a Conv2D). */
export function maskedConv2d(args: MaskedConv2DArgs): MaskedConv2D {
  return new MaskedConv2D(args);
}
