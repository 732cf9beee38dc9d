// The kernels test runs every ISA this CPU has; the others would first meet the templates on
// another machine (a session on an AVX2-only machine edits the engines that AVX-512 machines run).
// Here each ISA this CPU lacks gets the kernels test's shapes and forced strategies rendered for
// it and checked by GCC with -fsyntax-only: every template instantiated for that ISA's vector
// width and intrinsics, no code generated (about a second a layer file, two files at once).
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { addonFlags } from '../../src/codegen/build.js';
import { preludeCompileFlags } from '../../src/codegen/prelude.js';
import { HEADER_DIR, renderKernel, type KernelUnit } from '../../src/codegen/render.js';
import { conv2d, supportedIsas } from '../../src/index.js';
import { choosePlan } from '../../src/schedule/plan.js';
import { ISAS, type IsaName } from '../../src/schedule/isa.js';
import { FORCED, LARGE, SPECS } from '../kernel-specs.js';
import { tempDir } from '../util.js';

const run = promisify(execFile);
const dir = tempDir('maskacc-isa-build');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The kernels test's layers on one ISA: the heuristic's plans and every forced strategy's, each distinct plan once. */
function unitsFor(isa: IsaName): KernelUnit[] {
  const units = new Map<string, KernelUnit>();
  const add = (spec: (typeof SPECS)[number], strategy?: (typeof FORCED)[number]['strategy']) => {
    const layer = conv2d(spec);
    const plan = choosePlan(layer, ISAS[isa], 2, strategy);
    const id = JSON.stringify([layer, plan]);
    if (!units.has(id)) units.set(id, { ns: `layer${units.size}`, layer, plan, cxxFlags: [] });
  };
  for (const spec of [...SPECS, LARGE]) add(spec);
  for (const f of FORCED) for (const i of f.specs) add(SPECS[i], f.strategy);
  return [...units.values()];
}

/** GCC's verdict on the units: each file is a group of layers, as the JIT's unity files are. */
async function syntaxCheck(isa: IsaName, units: readonly KernelUnit[]): Promise<string[]> {
  const files = [0, 1].map((half) => {
    const file = join(dir, `${isa}-${half}.cpp`);
    const mine = units.filter((_, i) => i % 2 === half);
    for (const u of mine) writeFileSync(join(dir, `${isa}-${u.ns}.cpp`), renderKernel(u));
    writeFileSync(file, mine.map((u) => `#include "${isa}-${u.ns}.cpp"\n`).join(''));
    return file;
  });
  const flags = [...preludeCompileFlags(addonFlags([]), ISAS[isa].cxxFlags), '-I', HEADER_DIR, '-fsyntax-only'];
  return Promise.all(
    files.map((f) =>
      run('g++', [...flags, f], { maxBuffer: 1 << 26 }).then(
        ({ stderr }) => stderr,
        (e: { stderr?: string; message: string }) => `FAILED: ${e.stderr || e.message}`,
      ),
    ),
  );
}

it('every ISA this CPU cannot run still compiles: the kernels test shapes, heuristic and forced plans', async () => {
  const here = supportedIsas();
  const others = (Object.keys(ISAS) as IsaName[]).filter((isa) => !here.includes(isa));
  for (const isa of others) {
    const units = unitsFor(isa);
    // Every engine the kernels test runs is among them.
    const engines = new Set(
      units.flatMap((u) =>
        [u.plan.forward, u.plan.backwardData, u.plan.backwardWeights].flatMap((p) => (p ? [p.engine] : [])),
      ),
    );
    expect([...engines].sort(), isa).toEqual(['direct', 'dot', 'gemm', 'pointwise'].sort());
    const stderr = await syntaxCheck(isa, units);
    // Warnings count too: the addon builds with -Wall and a warning there is a test failure (warnings.test.ts).
    for (const s of stderr) expect(s, `${isa}: ${units.length} layers`).toBe('');
  }
  // The rest are run, against the reference, by test/kernels.test.ts.
  expect([...here, ...others].sort()).toEqual(Object.keys(ISAS).sort());
}, 300_000);
