// A VGG-style CNN for pruning runs, built from the adapter layers: stages of 3x3 conv (pad 1) +
// batch norm + ReLU (+ 2x2 max pool), then a dense classifier. Filter masks link through the
// network as in the model DSL: a stage's filter mask is its batch norm's channel mask and the
// next stage's input-channel mask (and selects the classifier's live features).
import { compileMaskedConvs, type CompileOptions } from '../api/compile.js';
import { compileTrainOps, type TrainOpsAddon } from '../codegen/compile-train-ops.js';
import { defaultCacheDir } from '../codegen/cache.js';
import type { ConvSpec } from '../ir/conv.js';
import { ArgumentError } from '../errors.js';
import { BatchNormRelu, MaskedConv2d, dense, maxPool2d } from './layers.js';
import { tf, type Tensor, type Tensor4D, type Variable } from './tf.js';

export interface CnnSpec {
  /** Channels, height, width of one input image. */
  input: readonly [number, number, number];
  /** Images per step (the kernels are specialized for it). */
  batch: number;
  /** Output channels of each 3x3 conv stage; pool: a 2x2/2 max pool after it. */
  stages: readonly { out: number; pool?: boolean }[];
  classes: number;
}

export interface MaskedCnnOptions {
  /** 'masked': kernels skip pruned filters/channels; 'dense': the conventional way (baseline). */
  mode: 'masked' | 'dense';
  /**
   * Soft masks (SFP family): pruned filters keep receiving weight gradients. Here every conv
   * feeds a batch norm that masks the same channels, so the gradient reaching a pruned filter's
   * output is exactly zero and its weight-gradient rows are zero under either policy: the masked
   * network runs the hard-mask kernels, which skip those rows instead of computing zeros (same
   * numbers, tested). The dense baseline computes every row, as a framework would.
   */
  soft: boolean;
  /** Kept fraction the masked kernels are planned for (the pruning target); default 1. */
  density?: number;
  cacheDir?: string;
  threads?: number;
  /** Passed to the compiler (progress output while compiling). */
  verbose?: boolean;
  /** Seed of the initial weights (default: unseeded). */
  seed?: number;
}

export class MaskedCnn {
  readonly convs: MaskedConv2d[];
  readonly norms: BatchNormRelu[];
  readonly classifier: { w: Variable; b: Variable };

  private constructor(
    readonly spec: CnnSpec,
    convs: MaskedConv2d[],
    norms: BatchNormRelu[],
    private readonly ops: TrainOpsAddon,
    readonly threads: number,
    seed?: number,
  ) {
    this.convs = convs;
    this.norms = norms;
    const [h, w] = finalSize(spec);
    const features = convs[convs.length - 1].conv.spec.outChannels * h * w; // the last stage, flattened channel-major
    this.classifier = {
      w: tf.variable(tf.randomNormal([features, spec.classes], 0, Math.sqrt(1 / features), 'float32', seed)),
      b: tf.variable(tf.zeros([spec.classes])),
    };
  }

  /** Compile the conv kernels (one addon) and the training ops, then build the layers. */
  static async create(spec: CnnSpec, opts: MaskedCnnOptions): Promise<MaskedCnn> {
    checkSpec(spec);
    const [C0, H0, W0] = spec.input;
    const d = opts.mode === 'masked' ? (opts.density ?? 1) : 1;
    const convSpecs: ConvSpec[] = [];
    let [c, h, w] = [C0, H0, W0];
    for (const [i, s] of spec.stages.entries()) {
      convSpecs.push({
        batch: spec.batch,
        inChannels: c,
        outChannels: s.out,
        inHeight: h,
        inWidth: w,
        kernel: [3, 3],
        padding: [1, 1],
        density: { out: d, in: i === 0 ? 1 : d },
      });
      [c, h, w] = [s.out, s.pool ? h >> 1 : h, s.pool ? w >> 1 : w];
    }
    const cacheDir = opts.cacheDir ?? defaultCacheDir();
    // Hard-mask kernels in both modes: see `soft` (dense mode keeps full masks, so every row runs).
    const compile: CompileOptions = {
      gradOfPrunedFilters: false,
      cacheDir,
      threads: opts.threads,
      verbose: opts.verbose,
    };
    const [convs, ops] = await Promise.all([compileMaskedConvs(convSpecs, compile), compileTrainOps({ cacheDir })]);
    const threads = convs[0].threads;
    const seed = (i: number) => (opts.seed === undefined ? undefined : opts.seed * 1000 + i);
    return new MaskedCnn(
      spec,
      convs.map((k, i) => new MaskedConv2d(k, opts.soft, { mode: opts.mode, seed: seed(i) })),
      spec.stages.map((s) => new BatchNormRelu(ops, s.out, { threads })),
      ops,
      threads,
      seed(spec.stages.length),
    );
  }

  /** Class scores [batch, classes] for an NCHW batch. */
  logits(x: Tensor4D, training: boolean): Tensor {
    let h = x;
    this.spec.stages.forEach((s, i) => {
      h = this.norms[i].apply(this.convs[i].apply(h), training);
      if (s.pool) h = maxPool2d(this.ops, h, 2, 2, this.threads);
    });
    return dense(this.ops, tf.reshape(h, [this.spec.batch, -1]), this.classifier.w, this.classifier.b, this.threads);
  }

  /** Mean softmax cross-entropy against integer labels. */
  loss(x: Tensor4D, labels: Tensor): Tensor {
    return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, this.spec.classes), this.logits(x, true));
  }

  /** The filter mask of every stage (1 = kept). */
  get filterMasks(): Uint8Array[] {
    return this.convs.map((c) => c.masks.out);
  }

  /** Set each stage's filter mask; links it to the stage's batch norm and the next stage's inputs. */
  setFilterMasks(masks: readonly ArrayLike<number | boolean>[]): void {
    if (masks.length !== this.convs.length)
      throw new ArgumentError('masks', `${masks.length} masks`, `one per conv stage (${this.convs.length})`);
    masks.forEach((m, i) => {
      this.convs[i].setMasks({ out: m });
      this.norms[i].setMask(m);
      if (i + 1 < this.convs.length) this.convs[i + 1].setMasks({ in: m });
    });
  }

  /** Every trainable variable (for the optimizer). */
  get variables(): Variable[] {
    return [
      ...this.convs.flatMap((c) => (c.bias ? [c.kernel, c.bias] : [c.kernel])),
      ...this.norms.flatMap((n) => [n.gamma, n.beta]),
      this.classifier.w,
      this.classifier.b,
    ];
  }

  /** Copy weights, batch-norm statistics and masks from a network of the same spec (baselines start equal). */
  copyFrom(other: MaskedCnn): void {
    this.variables.forEach((v, i) => v.assign(other.variables[i]));
    this.norms.forEach((n, i) => {
      n.runningMean.set(other.norms[i].runningMean);
      n.runningVar.set(other.norms[i].runningVar);
    });
    this.setFilterMasks(other.filterMasks);
  }

  /** Zero the parameters of pruned filters (conv rows, batch-norm scale and shift). */
  zeroPruned(): void {
    this.convs.forEach((c) => c.zeroPruned());
    tf.tidy(() =>
      this.norms.forEach((n) => {
        const keep = tf.tensor(n.keep, [n.channels], 'float32');
        n.gamma.assign(tf.mul(n.gamma, keep));
        n.beta.assign(tf.mul(n.beta, keep));
      }),
    );
  }

  /** Milliseconds spent in conv kernels since the last reset, over all layers. */
  convMs(reset = false): number {
    return this.convs.reduce((t, c) => t + c.takeMs(reset), 0);
  }

  dispose(): void {
    this.convs.forEach((c) => c.dispose());
    this.norms.forEach((n) => n.dispose());
    this.classifier.w.dispose();
    this.classifier.b.dispose();
  }
}

function finalSize(spec: CnnSpec): [number, number] {
  let [, h, w] = spec.input;
  for (const s of spec.stages) if (s.pool) [h, w] = [h >> 1, w >> 1];
  return [h, w];
}

function checkSpec(spec: CnnSpec): void {
  const int = (v: unknown, min = 1) => Number.isInteger(v) && (v as number) >= min;
  if (!Array.isArray(spec.input) || spec.input.length !== 3 || !spec.input.every((v) => int(v))) {
    throw new ArgumentError('spec.input', spec.input, '[channels, height, width] of positive integers');
  }
  if (!int(spec.batch)) throw new ArgumentError('spec.batch', spec.batch, 'a positive integer');
  if (!int(spec.classes, 2)) throw new ArgumentError('spec.classes', spec.classes, 'an integer >= 2');
  if (!Array.isArray(spec.stages) || spec.stages.length === 0)
    throw new ArgumentError('spec.stages', spec.stages, 'a non-empty array');
  spec.stages.forEach((s, i) => {
    if (!int(s.out)) throw new ArgumentError(`spec.stages[${i}].out`, s.out, 'a positive integer');
  });
  const [h, w] = finalSize(spec);
  if (h < 1 || w < 1)
    throw new ArgumentError(
      'spec.stages',
      `${spec.stages.filter((s) => s.pool).length} pools`,
      `at most as many 2x2 pools as the ${spec.input[1]}x${spec.input[2]} input allows`,
    );
}
