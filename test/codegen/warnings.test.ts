// Generated kernels compile without a warning under the build's own flags (-Wall), on every ISA:
// a failed build shows the compiler's last lines, and a user's ahead-of-time build shows all of
// them, so false alarms would bury a real error. GCC 12's AVX-512 headers raise
// -Wmaybe-uninitialized inside some intrinsics (isa/avx512.hpp silences exactly those).
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { BASE_CXX_FLAGS } from '../../src/codegen/build.js';
import { HEADER_DIR, renderKernel } from '../../src/codegen/render.js';
import { conv2d, type ConvSpec } from '../../src/ir/conv.js';
import { choosePlan } from '../../src/schedule/plan.js';
import { ISAS, type IsaName } from '../../src/schedule/isa.js';
import { tempDir } from '../util.js';

const run = promisify(execFile);
const dir = tempDir('maskacc-warnings');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Between them: direct (strided, few channels), pointwise (strided, and its subsampled
// backward-data), planes, im2col-free edge-tile spans (1x7), direct and pointwise backward-weights.
const specs: Record<string, ConvSpec> = {
  'strided 3x3, 8 kept channels': {
    batch: 8,
    inChannels: 16,
    outChannels: 32,
    inHeight: 32,
    inWidth: 32,
    kernel: 3,
    stride: 2,
    padding: 1,
    density: { out: 0.5, in: 0.5 },
  },
  '1x1 stride 2': {
    batch: 8,
    inChannels: 256,
    outChannels: 512,
    inHeight: 28,
    inWidth: 28,
    kernel: 1,
    stride: 2,
    density: { out: 0.5, in: 0.5 },
  },
  '1x1 on 28x28': { batch: 8, inChannels: 128, outChannels: 512, inHeight: 28, inWidth: 28, kernel: 1 },
  '3x3, 4 kept filters': {
    batch: 8,
    inChannels: 16,
    outChannels: 8,
    inHeight: 20,
    inWidth: 20,
    kernel: 3,
    padding: 1,
    density: { out: 0.5, in: 1 },
  },
  '1x7 on 17x17': {
    batch: 8,
    inChannels: 128,
    outChannels: 128,
    inHeight: 17,
    inWidth: 17,
    kernel: [1, 7],
    padding: [0, 3],
    density: { out: 0.5, in: 0.5 },
  },
};

describe('generated kernels compile without warnings', () => {
  for (const isa of Object.keys(ISAS) as IsaName[]) {
    it(`${isa}: ${Object.keys(specs).join('; ')}`, async () => {
      const cxx = process.env.CXX ?? 'g++';
      const outputs = await Promise.all(
        Object.entries(specs).map(async ([name, spec], i) => {
          const layer = conv2d(spec);
          const file = join(dir, `${isa}-${i}.cpp`);
          writeFileSync(
            file,
            renderKernel({ ns: 'layer0', layer, plan: choosePlan(layer, ISAS[isa], 2), cxxFlags: [] }),
          );
          const flags = ['-std=c++17', '-fopenmp', ...BASE_CXX_FLAGS, ...ISAS[isa].cxxFlags, `-I${HEADER_DIR}`];
          const { stderr } = await run(cxx, [...flags, '-S', '-o', '/dev/null', file], { maxBuffer: 64 << 20 });
          return stderr ? `${name}:\n${stderr}` : '';
        }),
      );
      expect(outputs.filter(Boolean).join('\n').slice(0, 4000)).toBe('');
    }, 120_000);
  }
});
