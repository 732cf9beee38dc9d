// One case per spec mistake: conv2d refuses it with a SpecError naming the field and what was
// expected. Needs no compiler (unit project); the option and call errors are in errors.test.ts.
import { describe, expect, it } from 'vitest';
import { conv2d, SpecError, type ConvSpec } from '../../src/index.js';

const base: ConvSpec = {
  batch: 2,
  inChannels: 3,
  outChannels: 4,
  inHeight: 5,
  inWidth: 5,
  kernel: 3,
  padding: 1,
  bias: true,
};

describe('spec errors (conv2d)', () => {
  const cases: [string, Partial<Record<keyof ConvSpec | 'typo', unknown>>, RegExp][] = [
    ['batch 0', { batch: 0 }, /batch = 0; expected a positive integer/],
    ['fractional channels', { inChannels: 2.5 }, /inChannels = 2.5/],
    ['NaN height', { inHeight: NaN }, /inHeight = NaN/],
    ['Infinity width', { inWidth: Infinity }, /inWidth = Infinity/],
    ['string outChannels', { outChannels: '4' }, /outChannels = "4"/],
    ['missing kernel', { kernel: undefined }, /kernel = undefined; expected .*required/],
    ['zero kernel', { kernel: 0 }, /kernel = 0; expected a positive integer/],
    ['kernel triple', { kernel: [3, 3, 3] }, /kernel = .*\[height, width\] pair/],
    ['negative padding', { padding: -1 }, /padding = -1; expected a non-negative integer/],
    ['zero stride', { stride: [1, 0] }, /stride = .*positive integer/],
    ['zero dilation', { dilation: 0 }, /dilation = 0/],
    ['output height < 1', { inHeight: 1, padding: 0 }, /inHeight = 1; .*output height would be -1 < 1/],
    ['output width < 1', { inWidth: 2, padding: [1, 0] }, /inWidth = 2; .*output width would be 0 < 1/],
    ['bias not boolean', { bias: 1 }, /bias = 1; expected a boolean/],
    ['density > 1', { density: { out: 1.5 } }, /density.out = 1.5; expected a kept fraction in \(0, 1\]/],
    ['density 0', { density: { in: 0 } }, /density.in = 0/],
    ['density typo', { density: { outt: 0.5 } as never }, /density.outt/],
    ['unknown field', { typo: 1 }, /typo = 1; expected no such field/],
    [
      'index overflow',
      { batch: 4096, inChannels: 1024, inHeight: 32, inWidth: 32 },
      /x = .*at most 2147483647 elements/,
    ],
  ];
  it.each(cases)('%s', (_name, patch, message) => {
    const spec = { ...base, ...patch } as ConvSpec;
    if ('kernel' in patch && patch.kernel === undefined) delete (spec as Partial<ConvSpec>).kernel;
    expect(() => conv2d(spec)).toThrowError(SpecError);
    expect(() => conv2d(spec)).toThrowError(message);
  });
  it('not an object', () => expect(() => conv2d(null as never)).toThrowError(/spec = null; expected an object/));
  it('nodes are frozen', () => {
    const l = conv2d(base);
    expect(Object.isFrozen(l) && Object.isFrozen(l.kernel) && Object.isFrozen(l.density)).toBe(true);
  });
});
