// oneDNN-verbose-style diagnostics: one comma-separated line per event (cache hit/miss, compile
// time, per call pass/shape/time/GFLOP/s). Off unless MASKACC_VERBOSE=1 or the diagnostics option.

export type DiagnosticsSink = (line: string) => void;

/** The sink for these options: a user function, stderr, or none (the default: silent). */
export function diagnosticsSink(option: boolean | DiagnosticsSink | undefined): DiagnosticsSink | undefined {
  if (typeof option === 'function') return option;
  const on =
    option ?? (process.env.MASKACC_VERBOSE !== undefined && !['', '0', 'false'].includes(process.env.MASKACC_VERBOSE));
  return on ? (line) => process.stderr.write(`${line}\n`) : undefined;
}

export function diagnosticLine(...fields: (string | number)[]): string {
  return ['maskacc_verbose', ...fields.map((f) => (typeof f === 'number' ? formatNumber(f) : f))].join(',');
}

function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}
