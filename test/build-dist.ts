// Global setup of the jit project: compile src/ into dist/ once per run, so the CLI tests and the
// package test run the JavaScript that ships, built from the sources under test.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export default function setup(): void {
  const root = join(import.meta.dirname, '..');
  execFileSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')],
    { cwd: root, stdio: 'inherit' },
  );
}
