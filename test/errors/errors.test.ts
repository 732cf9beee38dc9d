// One case per user mistake: each must fail with its own error type and a message that names the
// culprit (field or argument) and what was expected, before any native code runs.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ArgumentError,
  compileMaskedConv,
  DisposedError,
  IsaError,
  type ConvSpec,
  type MaskedConv,
} from '../../src/index.js';
import { ISAS, isaSupported } from '../../src/schedule/isa.js';

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

describe('option errors (compileMaskedConv)', () => {
  it('unknown isa', async () => {
    await expect(compileMaskedConv(base, { isa: 'neon' as never })).rejects.toThrowError(IsaError);
    await expect(compileMaskedConv(base, { isa: 'neon' as never })).rejects.toThrowError(
      /isa 'neon': unknown; expected one of 'auto', 'avx512', 'avx2', 'scalar'/,
    );
  });
  it('an ISA is supported only with all its CPU flags', () => {
    expect(isaSupported(ISAS.avx512, new Set(['avx2', 'fma']))).toBe(false);
    expect(isaSupported(ISAS.avx2, new Set(['avx2', 'fma']))).toBe(true);
    expect(isaSupported(ISAS.scalar, new Set())).toBe(true);
  });
  it('threads 0', async () => {
    await expect(compileMaskedConv(base, { threads: 0 })).rejects.toThrowError(/options.threads: got 0/);
  });
  it('gradOfPrunedFilters not boolean', async () => {
    await expect(compileMaskedConv(base, { gradOfPrunedFilters: 'yes' as never })).rejects.toThrowError(ArgumentError);
  });
  it('unknown option', async () => {
    await expect(compileMaskedConv(base, { thread: 2 } as never)).rejects.toThrowError(
      /options.thread: .*no such option/,
    );
  });
  it('bad spec is rejected before compiling', async () => {
    await expect(compileMaskedConv({ ...base, batch: -1 })).rejects.toThrowError(/batch = -1/);
  });
});

describe('call errors (MaskedConv)', () => {
  let conv: MaskedConv;
  const X = 2 * 3 * 25,
    Wn = 4 * 3 * 9,
    Y = 2 * 4 * 25;
  beforeAll(async () => {
    conv = await compileMaskedConv(base, { isa: 'scalar', respecialize: false });
  });
  const x = () => new Float32Array(X),
    w = () => new Float32Array(Wn),
    b = () => new Float32Array(4);

  it('x as Float64Array', () =>
    expect(() => conv.forward(new Float64Array(X) as never, w(), b())).toThrowError(
      /x: got Float64Array\(150\); expected a Float32Array of 1 to 2 images of 75 floats/,
    ));
  it('x as a plain array', () =>
    expect(() => conv.forward([1, 2] as never, w(), b())).toThrowError(/x: got Array\(2\)/));
  it('w of the wrong length', () =>
    expect(() => conv.forward(x(), new Float32Array(10), b())).toThrowError(
      /w: .*108 elements \[K\]\[C\]\[R\]\[S\], got 10/,
    ));
  it('missing bias when the spec has one', () =>
    expect(() => conv.forward(x(), w())).toThrowError(/bias: got undefined; expected a Float32Array of 4/));
  it('y of the wrong length', () =>
    expect(() => conv.forward(x(), w(), b(), new Float32Array(Y + 1))).toThrowError(/y: .*200 elements/));
  it('output overlapping an input', () => {
    const buf = new Float32Array(X + Y);
    expect(() => conv.forward(buf.subarray(0, X), w(), b(), buf.subarray(X - 1, X - 1 + Y))).toThrowError(
      /y: .*does not overlap/,
    );
  });
  it('dy of the wrong length', () =>
    expect(() => conv.backwardData(new Float32Array(3), w())).toThrowError(/dy: .*1 to 2 images of 100 floats.*got 3/));
  it('x of more images than the compiled batch', () =>
    expect(() => conv.forward(new Float32Array(3 * 75), w(), b())).toThrowError(
      /x: .*1 to 2 images of 75 floats.*got 225/,
    ));
  it('x of a fractional number of images', () =>
    expect(() => conv.forward(new Float32Array(75 + 1), w(), b())).toThrowError(/x: .*images of 75 floats.*got 76/));
  it('y sized for the compiled batch while x holds one image', () =>
    expect(() => conv.forward(new Float32Array(75), w(), b(), new Float32Array(Y))).toThrowError(
      /y: .*100 elements \[1\]\[K\]\[P\]\[Q\] \(as many images as x\), got 200/,
    ));
  it('x of another image count than dy in backwardWeights', () =>
    expect(() => conv.backwardWeights(new Float32Array(100), x(), undefined, b())).toThrowError(
      /x: .*75 elements \[1\]\[C\]\[H\]\[W\] \(as many images as dy\), got 150/,
    ));
  it('dbias given for a bias-free spec', async () => {
    const nb = await compileMaskedConv({ ...base, bias: false }, { isa: 'scalar' });
    expect(() => nb.backwardWeights(new Float32Array(Y), x(), undefined, b())).toThrowError(/dbias: .*bias: false/);
  });
  it('detached buffer', () => {
    const a = new Float32Array(X);
    structuredClone(a.buffer, { transfer: [a.buffer] });
    expect(() => conv.forward(a, w(), b())).toThrowError(/x: .*got 0/);
  });
  it('mask of the wrong length', () =>
    expect(() => conv.setMasks({ out: [1, 0, 1] })).toThrowError(/masks.out: .*length 4, got length 3/));
  it('mask with a non-number entry', () =>
    expect(() => conv.setMasks({ in: [1, 'x', 1] as never })).toThrowError(/masks.in\[1\]: got "x"/));
  it('mask with NaN', () => expect(() => conv.setMasks({ in: [1, NaN, 1] })).toThrowError(/masks.in\[1\]: got NaN/));
  it('masks not an object', () => expect(() => conv.setMasks(null as never)).toThrowError(/masks: got null/));
  it('a failed setMasks leaves the old masks', () => {
    conv.setMasks({ out: [1, 0, 1, 0] });
    expect(() => conv.setMasks({ out: [1, 1, 1, 1], in: [1] })).toThrowError(/masks.in/);
    expect(Array.from(conv.kept.out)).toEqual([0, 2]);
  });
  it('call after dispose', async () => {
    const c = await compileMaskedConv(base, { isa: 'scalar' });
    c.dispose();
    expect(() => c.forward(x(), w(), b())).toThrowError(DisposedError);
    expect(() => c.setMasks({})).toThrowError(/setMasks: this MaskedConv was disposed/);
  });
});
