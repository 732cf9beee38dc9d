// inputGrad: false (a network's first layer): forward and backward-weights still match the
// reference, no backward-data pass is planned or built, and backwardData says why it refuses.
import { describe, expect, it } from 'vitest';
import { compileMaskedConv, MODEL_ZOO, SpecError, conv2d, type ConvSpec } from '../../src/index.js';
import { refBackwardWeights, refForward } from '../reference.js';
import { expectClose, poison, randomMask, rng } from '../util.js';

const STEM: ConvSpec = {
  batch: 2,
  inChannels: 3,
  outChannels: 20,
  inHeight: 19,
  inWidth: 17,
  kernel: 7,
  stride: 2,
  padding: 3,
  bias: true,
  inputGrad: false,
};

describe('inputGrad: false', () => {
  it('builds forward and backward-weights only, both right; backwardData throws naming inputGrad', async () => {
    const conv = await compileMaskedConv(STEM, { respecialize: false });
    const l = conv2d(STEM),
      r = rng(3);
    expect(conv.plan.backwardData).toBeNull();
    expect(conv.explain()).toMatch(/backwardData: none \(inputGrad: false\)/);
    const x = r.uniformArray(2 * 3 * 19 * 17),
      w = r.uniformArray(20 * 3 * 49),
      b = r.uniformArray(20);
    const dy = r.uniformArray(2 * 20 * l.outHeight * l.outWidth);
    const out = randomMask(r, 20, 'random', 0.5),
      inp = new Uint8Array(3).fill(1);
    conv.setMasks({ out, in: inp });
    expectClose(conv.forward(x, w, b, poison(dy.length)), refForward(l, x, w, b, out, inp), 1e-5, 'forward');
    const g = conv.backwardWeights(dy, x, poison(w.length), poison(20));
    const ref = refBackwardWeights(l, dy, x, out, inp, false);
    expectClose(g.dw, ref.dw, 1e-5, 'dw');
    expectClose(g.dbias!, ref.dbias, 1e-5, 'dbias');
    expect(() => conv.backwardData(dy, w)).toThrowError(SpecError);
    expect(() => conv.backwardData(dy, w)).toThrowError(/inputGrad = false; expected true to call backwardData/);
    await expect(conv.backwardDataAsync(dy, w)).rejects.toThrowError(/inputGrad/);
  });

  it('is refused when not a boolean', () => {
    expect(() => conv2d({ ...STEM, inputGrad: 'no' as unknown as boolean })).toThrowError(
      /inputGrad = "no"; expected a boolean/,
    );
  });

  it('the zoo sets it on the first conv of every model, and only there', () => {
    for (const make of Object.values(MODEL_ZOO)) {
      const layers = make().layers;
      expect(layers[0].layer.inputGrad, layers[0].name).toBe(false);
      expect(layers.slice(1).every((m) => m.layer.inputGrad)).toBe(true);
    }
  });
});
