// Layers point one way: ir -> schedule -> codegen -> runtime -> api -> model -> cli, with the
// training stack (data, train ops, tfjs, prune; exported only from maskacc/tfjs) on top. Reads
// every src/**/*.ts, resolves its relative imports (static, `export ... from`, `import()`) and
// fails naming the file, the import and both layers for any import of a layer above.

import { readFileSync, readdirSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

interface Layer {
  name: string;
  rank: number;
  /** The training stack may import the core up to model; the core never imports training. */
  training: boolean;
}

const CORE = ['ir', 'schedule', 'codegen', 'runtime', 'api', 'model'] as const;
const MODEL_RANK = CORE.length - 1;
const core = (name: string, rank: number): Layer => ({ name, rank, training: false });
const training = (name: string, rank: number): Layer => ({ name, rank, training: true });

/** The layer of a file (a path relative to src/, with forward slashes). */
export function layerOf(file: string): Layer {
  if (file === 'errors.ts') return core('errors', -1); // a leaf everyone may import
  if (file === 'index.ts') return core('index', MODEL_RANK + 1); // the main entry: the core, no training
  if (file === 'cli.ts') return core('cli', MODEL_RANK + 2);
  // Inside the training stack: data and the train-ops loader, then the TF.js layers, then pruning
  // (built on them), then the maskacc/tfjs entry.
  if (file === 'codegen/compile-train-ops.ts') return training('training/ops', 0);
  if (file === 'tfjs/index.ts') return training('training/entry', 3);
  const top = file.split('/')[0];
  if (top === 'data') return training('training/data', 0);
  if (top === 'tfjs') return training('training/tfjs', 1);
  if (top === 'prune') return training('training/prune', 2);
  const rank = (CORE as readonly string[]).indexOf(top);
  if (rank < 0) throw new Error(`src/${file} is in no layer: add its folder to test/architecture.test.ts`);
  return core(top, rank);
}

function allowed(from: Layer, to: Layer): boolean {
  if (to.name === 'errors') return true;
  if (from.training !== to.training) return from.training && to.rank <= MODEL_RANK;
  return to.rank <= from.rank;
}

/** The relative specifiers of `import ... from`, `export ... from`, `import '...'` and `import('...')`. */
export function importsOf(source: string): string[] {
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;
  return [...source.matchAll(re)].map((m) => m[2]);
}

export interface Violation {
  file: string;
  specifier: string;
  target: string;
  message: string;
}

/** Check a graph given as file -> source text (paths relative to src/). */
export function checkLayers(files: Record<string, string>): Violation[] {
  const out: Violation[] = [];
  for (const [file, source] of Object.entries(files)) {
    const from = layerOf(file);
    for (const specifier of importsOf(source)) {
      const target = posix.normalize(posix.join(posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
      const to = layerOf(target);
      if (!allowed(from, to)) {
        out.push({
          file,
          specifier,
          target,
          message: `src/${file} imports '${specifier}' (src/${target}): ${from.name} -> ${to.name} points upward`,
        });
      }
    }
  }
  return out;
}

const SRC = fileURLToPath(new URL('../src', import.meta.url));

function readSources(dir: string, files: Record<string, string> = {}): Record<string, string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) readSources(p, files);
    else if (e.name.endsWith('.ts')) files[relative(SRC, p).split('\\').join('/')] = readFileSync(p, 'utf8');
  }
  return files;
}

describe('layers point one way', () => {
  it('src/ has no upward import', () => {
    const files = readSources(SRC);
    expect(Object.keys(files).length).toBeGreaterThan(30);
    expect(checkLayers(files).map((v) => v.message)).toEqual([]);
  });

  it('reads every form of import', () => {
    const source = [
      "import { a } from './a.js';",
      "import type { B } from '../b/b.js';",
      "export { c } from './c.js';",
      "export * from './d.js';",
      "import './e.js';",
      "const f = await import('./f.js');",
      'import {\n  g,\n  h,\n} from "./g.js";',
      "import { readFileSync } from 'node:fs';",
    ].join('\n');
    expect(importsOf(source)).toEqual(['./a.js', '../b/b.js', './c.js', './d.js', './e.js', './f.js', './g.js']);
  });

  it('fails on a planted upward import, naming the file, the import and both layers', () => {
    const fixture = {
      'errors.ts': '',
      'ir/conv.ts': "import { SpecError } from '../errors.js';",
      'schedule/plan.ts': "import type { ConvLayer } from '../ir/conv.js';",
      'codegen/compile.ts':
        "import { choosePlan } from '../schedule/plan.js';\nconst r = await import('../runtime/masked-conv.js');",
      'runtime/masked-conv.ts': "import type { NativeKernel } from '../codegen/compile.js';",
      'api/compile.ts': "import { MaskedConv } from '../runtime/masked-conv.js';",
      'index.ts': "export { compileMaskedConv } from './api/compile.js';",
      'tfjs/layers.ts': "import { compileMaskedConv } from '../api/compile.js';",
      'prune/pruner.ts': "import { MaskedCnn } from '../tfjs/layers.js';",
    };
    expect(checkLayers(fixture)).toEqual([
      {
        file: 'codegen/compile.ts',
        specifier: '../runtime/masked-conv.js',
        target: 'runtime/masked-conv.ts',
        message:
          "src/codegen/compile.ts imports '../runtime/masked-conv.js' (src/runtime/masked-conv.ts): codegen -> runtime points upward",
      },
    ]);
    // The main entry may not export the training stack; tfjs may not import prune.
    expect(
      checkLayers({ 'index.ts': "export { loadFashionMnist } from './data/fashion-mnist.js';" })[0].message,
    ).toMatch(/index -> training\/data/);
    expect(checkLayers({ 'tfjs/layers.ts': "import { selectMasks } from '../prune/pruner.js';" })[0].message).toMatch(
      /training\/tfjs -> training\/prune/,
    );
  });
});
