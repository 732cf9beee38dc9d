// The engine families the tuner times (src/schedule/candidates.ts): every one must be a plan the
// scheduler accepts, and each engine that applies must be among them. Plans only (unit project).
import { describe, expect, it } from 'vitest';
import { conv2d, type ConvSpec } from '../../src/index.js';
import { candidates } from '../../src/schedule/candidates.js';
import { choosePlan } from '../../src/schedule/plan.js';
import { ISAS } from '../../src/schedule/isa.js';

const base: ConvSpec = { batch: 4, inChannels: 64, outChannels: 128, inHeight: 14, inWidth: 14, kernel: 1 };
const layers: Record<string, ConvSpec> = {
  '1x1': base,
  '1x1 stride 2': { ...base, stride: 2 },
  '1x1 padded': { ...base, padding: 1 },
  '3x3': { ...base, kernel: 3, padding: 1 },
  '3x3 stride 2': { ...base, kernel: 3, padding: 1, stride: 2 },
};

describe('tuning candidates', () => {
  for (const [name, spec] of Object.entries(layers)) {
    it(`${name}: every family is a plan the scheduler accepts`, () => {
      const layer = conv2d(spec);
      for (const strategy of Object.values(candidates(layer)))
        expect(() => choosePlan(layer, ISAS.avx2, 2, strategy)).not.toThrow();
    });
  }
  it('a stride-1 unpadded 1x1 offers pointwise backward-weights (the heuristic picks it there)', () => {
    const layer = conv2d(base);
    expect(candidates(layer).pointwise.backwardWeights).toBe('pointwise');
    expect(choosePlan(layer, ISAS.avx2, 2).backwardWeights.source).toBe('pointwise');
    expect(candidates(conv2d(layers['1x1 stride 2'])).pointwise.backwardWeights).toBe('direct');
    expect(candidates(conv2d(layers['1x1 padded'])).pointwise.backwardWeights).toBe('direct');
  });
});
