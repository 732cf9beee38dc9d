import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Generated models import maskacc by package name: tests run them on the sources.
  resolve: { alias: { maskacc: fileURLToPath(new URL('./src/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // Kernel builds use both cores already; parallel test files would only fight over them.
    fileParallelism: false,
  },
});
