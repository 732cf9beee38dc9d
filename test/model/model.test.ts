// The model DSL: zoo shapes, validation naming the layer and field, and linked masks (a filter
// mask reaches its residual group and the input masks of the layers it feeds).
import { describe, expect, it } from 'vitest';
import { compileModel, model, MODEL_ZOO, resnet20Cifar, SpecError, vgg16Cifar } from '../../src/index.js';

describe('model zoo', () => {
  it('has the papers\' conv counts and consistent channels', () => {
    const counts = Object.fromEntries(Object.entries(MODEL_ZOO).map(([k, f]) => [k, f({ batch: 1 }).layers.length]));
    expect(counts).toEqual({ 'vgg16-cifar': 13, 'resnet20-cifar': 19, 'resnet56-cifar': 55, 'resnet18-imagenet': 20, 'resnet50-imagenet': 53 });
    const r50 = MODEL_ZOO['resnet50-imagenet']({ batch: 1 });
    expect(r50.layers.at(-1)!.layer.outChannels).toBe(2048);
    expect(r50.layers.at(-1)!.layer.outHeight).toBe(7);
  });
});

describe('model validation', () => {
  const spec = (c: number, k: number) => ({ batch: 1, inChannels: c, outChannels: k, inHeight: 8, inWidth: 8, kernel: 3, padding: 1 });
  it('an input that does not exist', () => {
    expect(() => model('m', [{ name: 'a', spec: spec(3, 8), input: 'nope' }])).toThrowError(/model m, layer 0 \(a\): input = "nope"/);
  });
  it('channels that do not match the input layer', () => {
    expect(() => model('m', [{ name: 'a', spec: spec(3, 8), input: null }, { name: 'b', spec: spec(4, 8), input: 'a' }]))
      .toThrowError(/layer 1 \(b\): spec.inChannels = 4; expected 8, the filters of its input layer a/);
  });
  it('a group with different widths', () => {
    expect(() => model('m', [{ name: 'a', spec: spec(3, 8), input: null, group: 'g' }, { name: 'b', spec: spec(8, 6), input: 'a', group: 'g' }]))
      .toThrowError(SpecError);
  });
  it('a bad spec names the layer', () => {
    expect(() => model('m', [{ name: 'a', spec: { ...spec(3, 8), batch: 0 }, input: null }])).toThrowError(/model m, layer 0 \(a\): conv spec: batch = 0/);
  });
});

describe('linked masks', () => {
  it('follow residual groups and inputs', async () => {
    const m = await compileModel(resnet20Cifar({ batch: 1 }), { respecialize: false });
    const mask = Array.from({ length: 16 }, (_, i) => (i % 4 === 0 ? 1 : 0));
    m.setFilterMask('s1b2b', mask);
    for (const name of ['stem', 's1b1b', 's1b2b', 's1b3b']) expect(Array.from(m.masksOf(name).out), name).toEqual(mask);
    // every layer fed by a stage-1 join sees the mask as its input mask
    for (const name of ['s1b1a', 's1b2a', 's1b3a', 's2b1a']) expect(Array.from(m.masksOf(name).in), name).toEqual(mask);
    expect(Array.from(m.convs.get('s2b1a')!.kept.in)).toEqual([0, 4, 8, 12]);
    expect(m.masksOf('s1b1a').out.every((v) => v === 1)).toBe(true);  // inner convs keep their own masks
    expect(() => m.setFilterMask('nope', mask)).toThrowError(/layer: got "nope"/);
  });

  it('chain through VGG', async () => {
    const m = await compileModel(vgg16Cifar({ batch: 1 }), { respecialize: false, isa: 'scalar' });
    m.setFilterMask('conv1_1', Array.from({ length: 64 }, (_, i) => i & 1));
    expect(m.convs.get('conv1_2')!.kept.in.length).toBe(32);
    expect(m.convs.get('conv1_1')!.kept.in.length).toBe(3);
  });
});
