// One fresh kernel cache per test run, shared by every test file and removed afterwards: tests
// never depend on a cache left by an earlier run, and identical kernels build only once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'maskacc-test-cache-'));
  process.env.MASKACC_CACHE_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
