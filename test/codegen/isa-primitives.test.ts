// The lane primitives of every ISA header this machine runs (compress16, expand16, interleave,
// transposes, lane stores) against their contracts for every mask, count and lane offset:
// isa-primitives.cpp, built with the kernels' flags plus the ISA's. Kernel tests reach only the
// counts their shapes produce (an interleave of 3 rows, say, only with a 3-row tile).
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { BASE_CXX_FLAGS } from '../../src/codegen/build.js';
import { HEADER_DIR } from '../../src/codegen/render.js';
import { ISAS, supportedIsas } from '../../src/schedule/isa.js';
import { tempDir } from '../util.js';

const run = promisify(execFile);
const dir = tempDir('maskacc-isa-primitives');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const source = fileURLToPath(new URL('./isa-primitives.cpp', import.meta.url));

describe('ISA lane primitives', () => {
  for (const isa of supportedIsas()) {
    it(`${isa}: every mask, count and lane offset meets the contract`, async () => {
      const exe = join(dir, isa);
      const flags = [...BASE_CXX_FLAGS, ...ISAS[isa].cxxFlags, '-std=c++17', '-Werror', `-I${HEADER_DIR}`];
      await run(process.env.CXX ?? 'c++', [...flags, `-DISA_HEADER="isa/${isa}.hpp"`, source, '-o', exe]);
      const { stdout } = await run(exe).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? String(e) }));
      expect(stdout).toMatch(/^ok \d+/);
    });
  }
});
