// `maskacc build model.json --out DIR` in a user's project (the CLI code path, as a child process):
// what it refuses before writing anything. The build itself, and a CommonJS project running the
// module it writes, are checked on the installed tarball (test/package/pack.test.ts).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TINY_NET_MODEL } from './fixtures/tiny-net.js';
import { tempDir } from '../util.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'maskacc.mjs');
const model = TINY_NET_MODEL;

describe('maskacc build in a user project', () => {
  const project = tempDir('maskacc-user-project');
  afterAll(() => rmSync(project, { recursive: true, force: true }));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true })); // CommonJS
  writeFileSync(join(project, 'tiny.json'), JSON.stringify(model));

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
