// The pass table (src/ir/passes.ts) is the one definition of the passes: option validation and
// the tuner read it. Needs no compiler (unit project): options are refused before any build.
import { describe, expect, it } from 'vitest';
import { compileMaskedConv, type ConvSpec } from '../../src/index.js';
import { PASSES, PASS_NAMES } from '../../src/ir/passes.js';

const spec: ConvSpec = { batch: 1, inChannels: 2, outChannels: 3, inHeight: 4, inWidth: 4, kernel: 3, padding: 1 };

describe('the pass table', () => {
  it('names the three passes in call order', () => {
    expect(PASS_NAMES).toEqual(['forward', 'backwardData', 'backwardWeights']);
    expect(PASSES.backwardWeights.args).toEqual(['dy', 'x', 'dw', 'dbias', 'rows', 'ci']);
  });

  it('options.strategy accepts only its passes and their strategies', async () => {
    await expect(
      compileMaskedConv(spec, { isa: 'scalar', strategy: { forward: 'im2row' } as never }),
    ).rejects.toThrowError(/options.strategy.forward: got "im2row".*one of 'planes', 'im2col', 'pointwise', 'direct'/);
    await expect(
      compileMaskedConv(spec, { isa: 'scalar', strategy: { sideways: 'direct' } as never }),
    ).rejects.toThrowError(/options.strategy.sideways.*one of forward, backwardData, backwardWeights/);
  });
});
