// Ahead-of-time models: the checked-in generated/vgg16-cifar is exactly what the generator
// writes today, and a generated model (built here) loads without the JIT and matches it.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileModel, model, MODEL_ZOO, type ConvSpec } from '../../src/index.js';
import { aotTarget, generateModel } from '../../src/model/aot.js';
import { buildAddon } from '../../src/codegen/build.js';
import { expectClose, rng, tempDir } from '../util.js';
import type { Vgg16Cifar } from '../../generated/vgg16-cifar/index.js';

// The generated declarations carry the shapes (checked by `npm run typecheck`, which covers test/).
type Conv31 = Vgg16Cifar['layers']['conv3_1'];
const typedShapes: [Conv31['spec']['outChannels'], Conv31['spec']['kernel'], Conv31['forward']] extends [
  256,
  readonly [3, 3],
  (x: Float32Array, w: Float32Array, ...rest: never[]) => Float32Array,
]
  ? true
  : false = true;
// @ts-expect-error: no such layer
type _NoLayer = Vgg16Cifar['layers']['conv9_9'];

const root = join(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && !join(e.parentPath, e.name).includes(`${join('src', 'build')}`))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

describe('generated models', () => {
  it('generated/vgg16-cifar is in sync with the generator', async () => {
    expect(typedShapes).toBe(true);
    const fresh = tempDir('maskacc-aot');
    await generateModel(MODEL_ZOO['vgg16-cifar'](), fresh);
    const checkedIn = join(root, 'generated', 'vgg16-cifar');
    expect(sourceFiles(checkedIn)).toEqual(sourceFiles(fresh));
    for (const f of sourceFiles(fresh)) {
      expect(
        readFileSync(join(checkedIn, f), 'utf8'),
        `${f} differs: run \`npm run maskacc -- build vgg16-cifar --no-compile\``,
      ).toBe(readFileSync(join(fresh, f), 'utf8'));
    }
  });

  it('a built model loads without the JIT and matches the JIT kernels', async () => {
    // Small, but with the layer kinds a model has: a first layer without an input gradient, a
    // strided 3x3, a strided 1x1 projection and a 3x3 (each built for every ISA).
    const conv = (C: number, K: number, size: number, kernel: number, stride = 1): ConvSpec => ({
      batch: 2,
      inChannels: C,
      outChannels: K,
      inHeight: size,
      inWidth: size,
      kernel,
      stride,
      padding: kernel >> 1,
      density: { out: 0.5, in: C === 3 ? 1 : 0.5 },
      ...(C === 3 ? { inputGrad: false } : {}),
    });
    const m = model('aot-check', [
      { name: 'stem', spec: conv(3, 16, 16, 3), input: null },
      { name: 'down', spec: conv(16, 32, 16, 3, 2), input: 'stem' },
      { name: 'proj', spec: conv(16, 32, 16, 1, 2), input: 'stem', group: 'out' },
      { name: 'body', spec: conv(32, 32, 8, 3), input: 'down', group: 'out' },
    ]);
    const dir = join(root, 'generated', `.test-aot-${process.pid}`);
    try {
      const files = await generateModel(m, dir);
      await buildAddon(join(dir, 'src'), aotTarget(m), files[0], 2);
      const mod = await import(pathToFileURL(join(dir, 'index.js')).href); // imports maskacc (the vitest alias: src/)
      const aot = await mod.AotCheck.load();
      const jit = await compileModel(m, { respecialize: false });
      const r = rng(4);
      for (const name of ['stem', 'down', 'proj', 'body']) {
        const conv = aot.layers[name],
          ref = jit.convs.get(name)!,
          L = ref.spec;
        const masks = {
          out: Array.from({ length: L.outChannels }, (_, i) => i % 2),
          in: Array.from({ length: L.inChannels }, (_, i) => ((i + 1) % 2 || L.inChannels === 3 ? 1 : 0)),
        };
        conv.setMasks(masks);
        ref.setMasks(masks);
        const x = r.uniformArray(L.batch * L.inChannels * L.inHeight * L.inWidth),
          w = r.uniformArray(L.outChannels * L.inChannels * L.kernel[0] * L.kernel[1]);
        const dy = r.uniformArray(L.batch * L.outChannels * L.outHeight * L.outWidth);
        // Same ISA and plans here; tolerance only for a machine whose core count changes the JIT plan.
        expectClose(conv.forward(x, w), ref.forward(x, w), 1e-6, `${name} forward`);
        if (L.inputGrad) expectClose(conv.backwardData(dy, w), ref.backwardData(dy, w), 1e-6, `${name} backwardData`);
        else expect(() => conv.backwardData(dy, w)).toThrowError(/inputGrad/);
        expectClose(conv.backwardWeights(dy, x).dw, ref.backwardWeights(dy, x).dw, 1e-6, `${name} backwardWeights`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
