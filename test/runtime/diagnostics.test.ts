// Diagnostics: silent by default; with the option (or MASKACC_VERBOSE=1) one line per cache event
// and per call, naming the pass, the shape, the kept counts, the time and the rate.
import { describe, expect, it } from 'vitest';
import { compileMaskedConv } from '../../src/index.js';
import { diagnosticsSink } from '../../src/runtime/diagnostics.js';

const spec = { batch: 1, inChannels: 4, outChannels: 6, inHeight: 6, inWidth: 5, kernel: 3, padding: 1 };

describe('diagnostics', () => {
  it('prints a line per cache event and per call', async () => {
    const lines: string[] = [];
    const conv = await compileMaskedConv(spec, { isa: 'scalar', diagnostics: (l) => lines.push(l) });
    expect(lines.some((l) => /^maskacc_verbose,cache,(miss|hit),[0-9a-f]{16},layers=1,isa=scalar/.test(l))).toBe(true);
    conv.setMasks({ out: [1, 0, 1, 1, 0, 1] });
    conv.forward(new Float32Array(4 * 30), new Float32Array(6 * 4 * 9));
    await conv.backwardDataAsync(new Float32Array(6 * 30), new Float32Array(6 * 4 * 9));
    expect(lines).toContainEqual(
      expect.stringMatching(/^maskacc_verbose,exec,forward,N1_C4_K6_6x5_k3x3_s1x1,kept=4\/4,ms=[\d.]+,gflops=[\d.]+$/),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^maskacc_verbose,exec,backwardDataAsync,/));
  });

  it('is silent by default and follows MASKACC_VERBOSE', () => {
    const saved = process.env.MASKACC_VERBOSE;
    try {
      delete process.env.MASKACC_VERBOSE;
      expect(diagnosticsSink(undefined)).toBeUndefined();
      process.env.MASKACC_VERBOSE = '1';
      expect(diagnosticsSink(undefined)).toBeTypeOf('function');
      process.env.MASKACC_VERBOSE = '0';
      expect(diagnosticsSink(undefined)).toBeUndefined();
      expect(diagnosticsSink(false)).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.MASKACC_VERBOSE;
      else process.env.MASKACC_VERBOSE = saved;
    }
  });
});
