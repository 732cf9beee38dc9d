#!/usr/bin/env node
// Launcher for the maskacc CLI: runs the compiled JS in dist/ (built by `npm run build`, which
// `npm install`/`npm pack` run through the prepare/prepack scripts).
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  console.error('maskacc: dist/cli.js is missing; run `npm run build` in the maskacc package first');
  process.exit(1);
}
await import(cli.href);
