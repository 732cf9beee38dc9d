// A short seeded fuzz run (the long run is `npm run fuzz`) and the replay of every saved
// regression case.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { drawCases, REGRESSION_DIR, runCases, type FuzzCase } from './fuzzer.js';
import { supportedIsas } from '../../src/index.js';

describe('fuzz', () => {
  it('40 seeded random cases (specs, masks, policies, ISAs, engines) match the reference', async () => {
    const cases = drawCases(20261125, 40);
    expect(
      cases.some((c) => c.images !== undefined && c.images < c.spec.batch),
      'some partial batches',
    ).toBe(true);
    const failures = await runCases(cases);
    expect(failures.map((f) => `${f.reason} in ${JSON.stringify(f.c)}`)).toEqual([]);
  });

  const saved = readdirSync(REGRESSION_DIR).filter((f) => f.endsWith('.json'));
  if (saved.length)
    it.each(saved)('regression %s', async (file) => {
      const c = JSON.parse(readFileSync(join(REGRESSION_DIR, file), 'utf8')).case as FuzzCase;
      if (!supportedIsas().includes(c.isa)) c.isa = supportedIsas()[0];
      expect(await runCases([c])).toEqual([]);
    });
});
