// The published package as a user gets it: `npm pack`, then an offline install of the tarball into a
// fresh project without TF.js, where plain JS runs a masked conv, strict TypeScript type-checks
// against the shipped .d.ts files, the CLI answers and builds a model file into a module (no
// machine paths in it) that a CommonJS project there loads, and node_modules stays under 60 MB.
import { execFileSync, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeConsumerProject } from './lockfile.js';
import { TINY_NET_MAIN, TINY_NET_MODEL, checkTinyNetOutput } from '../codegen/fixtures/tiny-net.js';
import { tempDir } from '../util.js';

const repo = join(import.meta.dirname, '..', '..');
const fixtures = join(import.meta.dirname, 'fixtures');
const work = tempDir('maskacc-pack');
const project = join(work, 'consumer');

/** The environment of a child in the consumer project: the test run's kernel cache, no npm_* variables of `npm test`. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
const run = (cmd: string, args: string[], options: SpawnSyncOptions = {}) => {
  const r = spawnSync(cmd, args, { cwd: project, env, encoding: 'utf8', timeout: 300_000, ...options });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
};

/** The files `maskacc build` wrote under dir, without its CMake build folder. */
const generatedFiles = (dir: string) =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && !relative(dir, join(e.parentPath, e.name)).startsWith(join('src', 'build')))
    .map((e) => relative(dir, join(e.parentPath, e.name)));

/** Disk usage in MiB, as `du -sh` counts it. */
const diskUsageMb = (dir: string) =>
  Number(execFileSync('du', ['-sk', dir], { encoding: 'utf8' }).split('\t')[0]) / 1024;

beforeAll(() => {
  expect(env.MASKACC_CACHE_DIR, 'the global setup sets the test run cache').toBeTruthy();
  // dist/ is fresh: the global setup of this project built it, so the prepack build is skipped.
  const packed = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: repo });
  expect(packed.status, packed.stderr).toBe(0);
  const [{ filename, files }] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  const top = new Set(files.map((f) => f.path.split('/')[0]));
  expect([...top].sort()).toEqual(['LICENSE', 'README.md', 'bin', 'dist', 'native', 'package.json', 'templates']);
  mkdirSync(project);
  writeConsumerProject(repo, project, join(work, filename));
  const installed = run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(work, filename)]);
  expect(installed.status, installed.stderr).toBe(0);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the packed tarball in a fresh project', () => {
  it('installs without TF.js (or tsx) into less than 60 MB of node_modules', () => {
    const modules = readdirSync(join(project, 'node_modules'));
    expect(modules).toContain('maskacc');
    expect(modules).not.toContain('@tensorflow');
    expect(modules).not.toContain('tsx');
    const mb = diskUsageMb(join(project, 'node_modules'));
    console.log(`node_modules of the install without TF.js: ${mb.toFixed(1)} MiB`);
    expect(mb).toBeGreaterThan(1);
    expect(mb).toBeLessThan(60);
  });

  it('plain JS imports maskacc and runs a masked conv against a reference; maskacc/tfjs says what to install', () => {
    copyFileSync(join(fixtures, 'masked-conv.mjs'), join(project, 'masked-conv.mjs'));
    const r = run(process.execPath, ['masked-conv.mjs']);
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ length: 2 * 4 * 6 * 5, kept: 3 });
    expect(result.maxError).toBeLessThan(1e-4);
    expect(result.tfjsError).toMatch(
      /maskacc\/tfjs needs the optional peer dependency @tensorflow\/tfjs, which is not installed: run `npm install @tensorflow\/tfjs`/,
    );
  });

  it('strict TypeScript type-checks against the published types with skipLibCheck: false', () => {
    copyFileSync(join(fixtures, 'check.ts'), join(project, 'check.ts'));
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          skipLibCheck: false,
          noEmit: true,
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          types: ['node'],
          typeRoots: [join(repo, 'node_modules', '@types')],
        },
        files: ['check.ts'],
      }),
    );
    const r = run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project]);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
    // And it can fail: a wrong type in the same project is reported.
    writeFileSync(
      join(project, 'check.ts'),
      "import { conv2d } from 'maskacc';\nconst h: string = conv2d({ batch: 1, inChannels: 1, outChannels: 1, inHeight: 3, inWidth: 3, kernel: 3 }).outHeight;\n",
    );
    const bad = run(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project]);
    expect(bad.status).not.toBe(0);
    expect(bad.stdout).toMatch(/check\.ts.*Type 'number' is not assignable to type 'string'/);
  });

  it('npx maskacc --version and npx maskacc doctor answer', () => {
    const version = run('npx', ['--no', 'maskacc', '--version']);
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const doctor = run('npx', ['--no', 'maskacc', 'doctor']);
    expect(doctor.status, doctor.stdout + doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/^ok +cmake \d+\.\d+/m);
    expect(doctor.stdout).not.toMatch(/setup-system\.sh/); // the repository's script is not in the package
    const json = JSON.parse(run('npx', ['--no', 'maskacc', 'doctor', '--json']).stdout);
    expect(json).toMatchObject({ ok: true, cacheDir: env.MASKACC_CACHE_DIR, install: [] });
  });

  // The module goes into app/, a CommonJS project inside this one: its own package.json makes
  // index.js an ES module there, and it imports maskacc from the install above.
  it('npx maskacc build of a model file writes a module that plain node loads and runs in a CommonJS project', () => {
    const app = join(project, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true })); // CommonJS
    writeFileSync(join(project, 'model.json'), JSON.stringify(TINY_NET_MODEL));
    const built = run('npx', ['--no', 'maskacc', 'build', 'model.json', '--out', 'app/lib/net']);
    expect(built.status, built.stdout + built.stderr).toBe(0);
    // Progress goes to stderr; stdout holds only the result, the built addon's path.
    expect(built.stdout.trim()).toMatch(/^\/.*app\/lib\/net\/src\/build\/Release\/maskacc_tiny_net\.node$/);
    expect(built.stderr).toMatch(
      /lib\/net: wrote \d+ files \(3 layers x 3 ISAs\), and .*lib\/net\/package\.json \("type": "module"\)/,
    );
    expect(built.stderr).toMatch(/built .*maskacc_tiny_net\.node/);
    const out = join(app, 'lib', 'net');
    expect(JSON.parse(readFileSync(join(out, 'package.json'), 'utf8'))).toEqual({ type: 'module' });
    expect(readFileSync(join(out, 'index.js'), 'utf8')).toMatch(/^import \{ loadGeneratedModel \} from "maskacc";$/m);
    expect(readFileSync(join(out, 'index.d.ts'), 'utf8')).toMatch(/readonly "conv-3": MaskedConv & \{/);
    // No machine paths and no paths into a repository in what was generated.
    for (const f of generatedFiles(out)) {
      const text = readFileSync(join(out, f), 'utf8');
      expect(text, f).not.toContain(repo);
      expect(text, f).not.toContain(work);
      expect(text, f).not.toMatch(/\.\.\/(src|node_modules)\//);
    }
    writeFileSync(join(app, 'main.mjs'), TINY_NET_MAIN);
    const r = run(process.execPath, ['main.mjs'], { cwd: app });
    expect(r.status, r.stderr).toBe(0);
    checkTinyNetOutput(r.stdout);
  });
});
