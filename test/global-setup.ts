// One fresh kernel cache per test run, shared by every test file and removed afterwards: tests
// never depend on a cache left by an earlier run, and identical kernels build only once. Every
// vitest project lists this setup; the first one to run creates the cache, the others reuse it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const OWNER = 'MASKACC_TEST_CACHE_OWNER';

export default function setup(): () => void {
  if (process.env[OWNER] === String(process.pid) && process.env.MASKACC_CACHE_DIR) return () => {};
  const dir = mkdtempSync(join(tmpdir(), 'maskacc-test-cache-'));
  process.env.MASKACC_CACHE_DIR = dir;
  process.env[OWNER] = String(process.pid);
  return () => rmSync(dir, { recursive: true, force: true });
}
