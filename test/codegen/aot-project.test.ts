// `maskacc build model.json --out DIR` in a user's project (the CLI code path, as a child process):
// the module it writes imports maskacc by package name, carries no machine paths, and a separate
// Node process imports its index.js from a CommonJS project and runs it without a compiler.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkTinyNetOutput, TINY_NET_MAIN, TINY_NET_MODEL } from './fixtures/tiny-net.js';
import { tempDir } from '../util.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'maskacc.mjs');
// maskacc's entry is TypeScript until dist/ is built: the child node loads it through tsx. The
// generated module itself is plain JS (index.js) and is imported as such.
const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

const model = TINY_NET_MODEL;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && !relative(dir, join(e.parentPath, e.name)).startsWith(join('src', 'build')))
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

describe('maskacc build in a user project', () => {
  const project = tempDir('maskacc-user-project');
  afterAll(() => rmSync(project, { recursive: true, force: true }));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true })); // CommonJS
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(root, join(project, 'node_modules', 'maskacc'), 'dir'); // what `npm install maskacc` gives
  writeFileSync(join(project, 'tiny.json'), JSON.stringify(model));

  it('builds a model file into lib/net; plain Node imports index.js from a CommonJS project and gets the right answers', () => {
    const built = spawnSync(process.execPath, [bin, 'build', 'tiny.json', '--out', join('lib', 'net')], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(built.status, built.stderr).toBe(0);
    // Progress goes to stderr; stdout holds only the result, the built addon's path.
    expect(built.stdout.trim()).toMatch(/^\/.*lib\/net\/src\/build\/Release\/maskacc_tiny_net\.node$/);
    expect(built.stderr).toMatch(
      /lib\/net: wrote \d+ files \(3 layers x 3 ISAs\), and .*lib\/net\/package\.json \("type": "module"\)/,
    );
    expect(built.stderr).toMatch(/built .*maskacc_tiny_net\.node/);

    const out = join(project, 'lib', 'net');
    // An ES module scope for index.js inside this CommonJS project.
    expect(JSON.parse(readFileSync(join(out, 'package.json'), 'utf8'))).toEqual({ type: 'module' });
    const js = readFileSync(join(out, 'index.js'), 'utf8');
    expect(js).toMatch(/^import \{ loadGeneratedModel \} from "maskacc";$/m);
    expect(readFileSync(join(out, 'index.d.ts'), 'utf8')).toMatch(/readonly "conv-3": MaskedConv & \{/);
    // No machine paths and no paths into a repository in what was generated.
    for (const f of sourceFiles(out)) {
      const text = readFileSync(join(out, f), 'utf8');
      expect(text, f).not.toContain(root);
      expect(text, f).not.toContain(project);
      expect(text, f).not.toMatch(/\.\.\/(src|node_modules)\//);
    }

    writeFileSync(join(project, 'main.mjs'), TINY_NET_MAIN);
    const ran = spawnSync(process.execPath, ['--import', tsxLoader, 'main.mjs'], { cwd: project, encoding: 'utf8' });
    expect(ran.status, ran.stderr).toBe(0);
    checkTinyNetOutput(ran.stdout);
  });

  it('refuses to replace a package.json in --out that is not an ES module scope', () => {
    mkdirSync(join(project, 'cjs-out'), { recursive: true });
    writeFileSync(join(project, 'cjs-out', 'package.json'), JSON.stringify({ name: 'mine' }));
    const r = spawnSync(process.execPath, [bin, 'build', 'tiny.json', '--out', 'cjs-out', '--no-compile'], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cjs-out\/package\.json: the generated index\.js is an ES module; set "type": "module"/);
    expect(JSON.parse(readFileSync(join(project, 'cjs-out', 'package.json'), 'utf8'))).toEqual({ name: 'mine' });
    expect(readdirSync(join(project, 'cjs-out'))).toEqual(['package.json']); // checked before writing anything
  });

  it('names the layer and field of a bad model file', () => {
    writeFileSync(
      join(project, 'bad.json'),
      JSON.stringify({ ...model, layers: [{ ...model.layers[0], spec: { ...model.layers[0].spec, kernal: 3 } }] }),
    );
    const r = spawnSync(process.execPath, [bin, 'build', 'bad.json', '--no-compile'], {
      cwd: project,
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/model tiny-net, layer 0 \(conv1\): conv spec: kernal = 3; expected no such field/);
  });
});
