// One fresh temporary folder per test run, removed afterwards: the kernel cache every test file
// shares (tests never depend on a cache left by an earlier run, and identical kernels build only
// once) and the files tests write (tempDir in util.ts). Every vitest project lists this setup;
// the first one to run creates the folder, the others reuse it.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OWNER = 'MASKACC_TEST_CACHE_OWNER';

export default function setup(): () => void {
  if (process.env[OWNER] === String(process.pid) && process.env.MASKACC_TEST_TMP) return () => {};
  const root = mkdtempSync(join(tmpdir(), 'maskacc-test-'));
  process.env.MASKACC_TEST_TMP = root;
  process.env.MASKACC_CACHE_DIR = join(root, 'cache');
  mkdirSync(process.env.MASKACC_CACHE_DIR);
  process.env[OWNER] = String(process.pid);
  return () => rmSync(root, { recursive: true, force: true });
}
