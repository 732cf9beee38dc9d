// The model DSL compiled: linked masks (a filter mask reaches its residual group and the input
// masks of the layers it feeds). Zoo shapes and validation: model-dsl.test.ts.
import { describe, expect, it } from 'vitest';
import { compileModel, resnet20Cifar } from '../../src/index.js';

describe('linked masks', () => {
  it('follow residual groups and inputs, and the kernels run with them', async () => {
    const m = await compileModel(resnet20Cifar({ batch: 1 }), { respecialize: false });
    const mask = Array.from({ length: 16 }, (_, i) => (i % 4 === 0 ? 1 : 0));
    m.setFilterMask('s1b2b', mask);
    for (const name of ['stem', 's1b1b', 's1b2b', 's1b3b']) expect(Array.from(m.masksOf(name).out), name).toEqual(mask);
    // every layer fed by a stage-1 join sees the mask as its input mask
    for (const name of ['s1b1a', 's1b2a', 's1b3a', 's2b1a']) expect(Array.from(m.masksOf(name).in), name).toEqual(mask);
    expect(Array.from(m.convs.get('s2b1a')!.kept.in)).toEqual([0, 4, 8, 12]);
    expect(Array.from(m.convs.get('stem')!.kept.out)).toEqual([0, 4, 8, 12]);
    expect(m.masksOf('s1b1a').out.every((v) => v === 1)).toBe(true); // inner convs keep their own masks
    expect(m.convs.get('s1b1a')!.kept.out.length).toBe(16);
    // A plain chain: an inner conv's filter mask is the next conv's input mask, and the first
    // layer keeps its 3 image channels.
    m.setFilterMask(
      's3b1a',
      Array.from({ length: 64 }, (_, i) => i & 1),
    );
    expect(m.convs.get('s3b1b')!.kept.in.length).toBe(32);
    expect(m.convs.get('stem')!.kept.in.length).toBe(3);
    expect(() => m.setFilterMask('nope', mask)).toThrowError(/layer: got "nope"/);
  });
});
