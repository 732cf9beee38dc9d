// The model DSL without compiling: zoo shapes, and validation naming the layer and field (unit project).
import { describe, expect, it } from 'vitest';
import { model, MODEL_ZOO, SpecError } from '../../src/index.js';

describe('model zoo', () => {
  it("has the papers' conv counts and consistent channels", () => {
    const counts = Object.fromEntries(Object.entries(MODEL_ZOO).map(([k, f]) => [k, f({ batch: 1 }).layers.length]));
    expect(counts).toEqual({
      'vgg16-cifar': 13,
      'resnet20-cifar': 19,
      'resnet56-cifar': 55,
      'resnet18-imagenet': 20,
      'resnet50-imagenet': 53,
    });
    const r50 = MODEL_ZOO['resnet50-imagenet']({ batch: 1 });
    expect(r50.layers.at(-1)!.layer.outChannels).toBe(2048);
    expect(r50.layers.at(-1)!.layer.outHeight).toBe(7);
  });
});

describe('model validation', () => {
  const spec = (c: number, k: number) => ({
    batch: 1,
    inChannels: c,
    outChannels: k,
    inHeight: 8,
    inWidth: 8,
    kernel: 3,
    padding: 1,
  });
  it('an input that does not exist', () => {
    expect(() => model('m', [{ name: 'a', spec: spec(3, 8), input: 'nope' }])).toThrowError(
      /model m, layer 0 \(a\): input = "nope"/,
    );
  });
  it('channels that do not match the input layer', () => {
    expect(() =>
      model('m', [
        { name: 'a', spec: spec(3, 8), input: null },
        { name: 'b', spec: spec(4, 8), input: 'a' },
      ]),
    ).toThrowError(/layer 1 \(b\): spec.inChannels = 4; expected 8, the filters of its input layer a/);
  });
  it('a group with different widths', () => {
    expect(() =>
      model('m', [
        { name: 'a', spec: spec(3, 8), input: null, group: 'g' },
        { name: 'b', spec: spec(8, 6), input: 'a', group: 'g' },
      ]),
    ).toThrowError(SpecError);
  });
  it('a bad spec names the layer', () => {
    expect(() => model('m', [{ name: 'a', spec: { ...spec(3, 8), batch: 0 }, input: null }])).toThrowError(
      /model m, layer 0 \(a\): conv spec: batch = 0/,
    );
  });
});
