// Opt-in tuning: the first compile times the engine families and writes the tuning file; the
// next compile reads the tuned strategy from it and times nothing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileMaskedConv } from '../../src/index.js';
import { tempDir } from '../util.js';

const spec = { batch: 2, inChannels: 20, outChannels: 24, inHeight: 8, inWidth: 8, kernel: 3, padding: 1 };

describe('tuning', () => {
  it('persists the tuned plan and reuses it', async () => {
    const tuningFile = join(tempDir('maskacc-tune'), 'tuning.json');
    const first: string[] = [];
    const a = await compileMaskedConv(spec, {
      tune: true,
      tuningFile,
      respecialize: false,
      diagnostics: (l) => first.push(l),
    });
    expect(first.some((l) => /^maskacc_verbose,tune,run,/.test(l))).toBe(true);
    const file = JSON.parse(readFileSync(tuningFile, 'utf8'));
    const [entry] = Object.values(file) as { strategy: Record<string, string>; tunedMs: number; heuristicMs: number }[];
    expect(Object.keys(entry.strategy).sort()).toEqual(['backwardData', 'backwardWeights', 'forward']);
    expect(entry.tunedMs).toBeLessThanOrEqual(entry.heuristicMs);
    expect(a.plan.forward.source).toBe(entry.strategy.forward);

    const second: string[] = [];
    const b = await compileMaskedConv(spec, {
      tune: true,
      tuningFile,
      respecialize: false,
      diagnostics: (l) => second.push(l),
    });
    expect(second.some((l) => /^maskacc_verbose,tune,hit,/.test(l))).toBe(true);
    expect(second.some((l) => /tune,run/.test(l))).toBe(false);
    expect(b.plan).toEqual(a.plan);
  });
});
