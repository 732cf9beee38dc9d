import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests that need no C++ compiler: the DSL, plans, spec errors, cache keys and locking, the
// reference, data, pruning criteria, report rendering, the layer check. `npm run test:unit`, well under a minute.
const UNIT = [
  'test/reference.test.ts',
  'test/errors/spec-errors.test.ts',
  'test/schedule/regimes.test.ts',
  'test/model/model-dsl.test.ts',
  'test/codegen/cache.test.ts',
  'test/data/**/*.test.ts',
  'test/prune/criteria.test.ts',
  'test/bench/report.test.ts',
  'test/architecture.test.ts',
  'test/ir/**/*.test.ts',
];
const HARDENING = ['test/hardening/**/*.test.ts'];

const common = {
  // One temp kernel cache per run (shared by the projects).
  globalSetup: ['test/global-setup.ts'],
  testTimeout: 600_000,
  hookTimeout: 600_000,
  // Kernel builds use both cores already; parallel test files would only fight over them.
  fileParallelism: false,
};

export default defineConfig({
  // Generated models import maskacc by package name: tests run them on the sources.
  resolve: { alias: { maskacc: fileURLToPath(new URL('./src/index.ts', import.meta.url)) } },
  test: {
    projects: [
      { test: { ...common, name: 'unit', include: UNIT } },
      {
        test: {
          ...common,
          name: 'jit',
          include: ['test/**/*.test.ts'],
          exclude: [...UNIT, ...HARDENING],
          // The CLI and package tests run the compiled dist/: build it from src/ first.
          globalSetup: [...common.globalSetup, 'test/build-dist.ts'],
        },
      },
      { test: { ...common, name: 'hardening', include: HARDENING } },
    ],
  },
});
