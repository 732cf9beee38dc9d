// The conv-layer IR: `conv2d(spec)` validates a user ConvSpec and returns a frozen ConvLayer node
// with every pair explicit and the output size computed. Nothing downstream mutates a node.

import { SpecError } from '../errors.js';

export type Pair = readonly [number, number];

/** What a user writes: sizes of one conv layer and the mask densities it expects. */
export interface ConvSpec {
  /** The most images one call takes (calls may run fewer: the batch is a run-time size up to this). */
  batch: number;
  inChannels: number;
  outChannels: number;
  inHeight: number;
  inWidth: number;
  kernel: number | [number, number];
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  bias?: boolean;
  /**
   * Whether backwardData (dx) is needed (default true). A network's first layer never needs the
   * gradient of its input image: false builds no backward-data pass and backwardData throws.
   */
  inputGrad?: boolean;
  /** Expected kept fraction of filters (`out`) and input channels (`in`): tunes the plan only. */
  density?: { out?: number; in?: number };
}

/** The normalized, validated, immutable layer node. */
export interface ConvLayer {
  readonly kind: 'conv2d';
  readonly batch: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly inHeight: number;
  readonly inWidth: number;
  readonly kernel: Pair;
  readonly stride: Pair;
  readonly padding: Pair;
  readonly dilation: Pair;
  readonly bias: boolean;
  readonly inputGrad: boolean;
  readonly density: { readonly out: number; readonly in: number };
  readonly outHeight: number;
  readonly outWidth: number;
}

export function isConvLayer(v: unknown): v is ConvLayer {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'conv2d';
}

// Sizes beyond this would overflow the 32-bit index arithmetic of the generated kernels.
const MAX_ELEMENTS = 2 ** 31 - 1;

// The fields a user writes, and those a ConvLayer adds (so one passes back through conv2d).
const SPEC_FIELDS = [
  'batch',
  'inChannels',
  'outChannels',
  'inHeight',
  'inWidth',
  'kernel',
  'stride',
  'padding',
  'dilation',
  'bias',
  'inputGrad',
  'density',
] as const;
const KNOWN_FIELDS: ReadonlySet<string> = new Set([...SPEC_FIELDS, 'kind', 'outHeight', 'outWidth']);

/** Validate and normalize a spec into a frozen ConvLayer node. */
export function conv2d(spec: ConvSpec): ConvLayer {
  if (typeof spec !== 'object' || spec === null) throw new SpecError('spec', spec, 'an object');
  for (const key of Object.keys(spec)) {
    if (!KNOWN_FIELDS.has(key)) {
      const value = (spec as unknown as Record<string, unknown>)[key];
      throw new SpecError(key, value, `no such field (one of ${SPEC_FIELDS.join(', ')})`);
    }
  }
  const batch = positiveInt(spec.batch, 'batch');
  const inChannels = positiveInt(spec.inChannels, 'inChannels');
  const outChannels = positiveInt(spec.outChannels, 'outChannels');
  const inHeight = positiveInt(spec.inHeight, 'inHeight');
  const inWidth = positiveInt(spec.inWidth, 'inWidth');
  const kernel = pair(spec.kernel, 'kernel', undefined, 1);
  const stride = pair(spec.stride, 'stride', 1, 1);
  const padding = pair(spec.padding, 'padding', 0, 0);
  const dilation = pair(spec.dilation, 'dilation', 1, 1);
  if (spec.bias !== undefined && typeof spec.bias !== 'boolean') throw new SpecError('bias', spec.bias, 'a boolean');
  if (spec.inputGrad !== undefined && typeof spec.inputGrad !== 'boolean') {
    throw new SpecError('inputGrad', spec.inputGrad, 'a boolean (false: no backwardData pass)');
  }
  const density = densities(spec.density);

  const outSize = (inSize: number, k: number, s: number, p: number, d: number) =>
    Math.floor((inSize + 2 * p - d * (k - 1) - 1) / s) + 1;
  const outHeight = outSize(inHeight, kernel[0], stride[0], padding[0], dilation[0]);
  const outWidth = outSize(inWidth, kernel[1], stride[1], padding[1], dilation[1]);
  if (outHeight < 1) {
    throw new SpecError(
      'inHeight',
      inHeight,
      `an input at least as tall as the dilated kernel minus padding (output height would be ${outHeight} < 1)`,
    );
  }
  if (outWidth < 1) {
    throw new SpecError(
      'inWidth',
      inWidth,
      `an input at least as wide as the dilated kernel minus padding (output width would be ${outWidth} < 1)`,
    );
  }
  const sizes: [string, number][] = [
    ['x = batch*inChannels*inHeight*inWidth', batch * inChannels * inHeight * inWidth],
    ['y = batch*outChannels*outHeight*outWidth', batch * outChannels * outHeight * outWidth],
    ['w = outChannels*inChannels*kernel', outChannels * inChannels * kernel[0] * kernel[1]],
  ];
  for (const [what, n] of sizes) {
    if (n > MAX_ELEMENTS) throw new SpecError(what.split(' ')[0], n, `at most ${MAX_ELEMENTS} elements (${what})`);
  }
  return Object.freeze({
    kind: 'conv2d' as const,
    batch,
    inChannels,
    outChannels,
    inHeight,
    inWidth,
    kernel,
    stride,
    padding,
    dilation,
    bias: spec.bias ?? false,
    inputGrad: spec.inputGrad ?? true,
    density,
    outHeight,
    outWidth,
  });
}

function positiveInt(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new SpecError(field, v, 'a positive integer');
  return v;
}

function pair(v: unknown, field: string, dflt: number | undefined, min: number): Pair {
  if (v === undefined) {
    if (dflt === undefined) throw new SpecError(field, v, 'a number or [height, width] pair (required)');
    return Object.freeze([dflt, dflt] as const);
  }
  const expected = `${min === 0 ? 'a non-negative' : 'a positive'} integer or a [height, width] pair of them`;
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= min;
  if (ok(v)) return Object.freeze([v, v] as const);
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return Object.freeze([v[0], v[1]] as const);
  throw new SpecError(field, v, expected);
}

function densities(v: unknown): { readonly out: number; readonly in: number } {
  if (v === undefined) return Object.freeze({ out: 1, in: 1 });
  if (typeof v !== 'object' || v === null) throw new SpecError('density', v, 'an object { out?, in? }');
  const d = v as Record<string, unknown>;
  for (const key of Object.keys(d)) {
    if (key !== 'out' && key !== 'in') throw new SpecError(`density.${key}`, d[key], 'only density.out and density.in');
  }
  const one = (x: unknown, field: string) => {
    if (x === undefined) return 1;
    if (typeof x !== 'number' || !(x > 0 && x <= 1)) throw new SpecError(field, x, 'a kept fraction in (0, 1]');
    return x;
  };
  return Object.freeze({ out: one(d.out, 'density.out'), in: one(d.in, 'density.in') });
}

/** Dense FLOPs of one pass: 2*N*K*C*R*S*P*Q (scale by kept fractions for the masked work). */
export function passFlops(l: ConvLayer, keptOut = l.outChannels, keptIn = l.inChannels): number {
  return 2 * l.batch * keptOut * keptIn * l.kernel[0] * l.kernel[1] * l.outHeight * l.outWidth;
}

/** One line naming the layer's shape, padding and densities (kernel headers, explain, logs). */
export function layerText(l: ConvLayer): string {
  return (
    `N=${l.batch} C=${l.inChannels} K=${l.outChannels} HxW=${l.inHeight}x${l.inWidth} ` +
    `kernel=${l.kernel.join('x')} stride=${l.stride.join(',')} pad=${l.padding.join(',')} ` +
    `dil=${l.dilation.join(',')} -> PxQ=${l.outHeight}x${l.outWidth} bias=${l.bias} ` +
    `density(out=${l.density.out}, in=${l.density.in})`
  );
}
