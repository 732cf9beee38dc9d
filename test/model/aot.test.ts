// Ahead-of-time models: the checked-in generated/vgg16-cifar is exactly what the generator
// writes today, and a generated model (built here) loads without the JIT and matches it.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileModel, MODEL_ZOO } from '../../src/index.js';
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
    const m = MODEL_ZOO['resnet20-cifar']({ batch: 2, density: 0.5 });
    const dir = join(root, 'generated', `.test-resnet20-${process.pid}`);
    try {
      const files = await generateModel(m, dir);
      await buildAddon(join(dir, 'src'), aotTarget(m), files[0], 2);
      const mod = await import(pathToFileURL(join(dir, 'index.js')).href); // imports maskacc (the vitest alias: src/)
      const aot = await mod.Resnet20Cifar.load();
      const jit = await compileModel(m, { respecialize: false });
      const r = rng(4);
      for (const name of ['stem', 's1b1a', 's2b1a', 's3b3b']) {
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
          w = r.uniformArray(L.outChannels * L.inChannels * 9);
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
