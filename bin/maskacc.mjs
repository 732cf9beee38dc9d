#!/usr/bin/env node
// Launcher for the maskacc CLI: registers the tsx loader (the library ships as TypeScript).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
