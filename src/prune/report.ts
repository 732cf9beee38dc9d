// The pruning run's report: per-epoch rows for the maskacc run and the dense-masked baseline, as
// a text table and an SVG plot (test accuracy and epoch time against epoch, both runs).

export interface RunEpoch {
  loss: number;
  accuracy: number;
  /** Training time of the epoch, seconds. */
  seconds: number;
  /** Share of that time spent outside the conv kernels. */
  nonConvShare: number;
}

export interface PruneEpochRow {
  epoch: number;
  /** Pruning rate in force (fraction of filters masked per layer). */
  rate: number;
  maskacc: RunEpoch;
  dense: RunEpoch;
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

export function renderPruneTable(rows: readonly PruneEpochRow[]): string {
  const head = [
    'epoch',
    'rate',
    'loss maskacc/dense',
    'test acc maskacc/dense',
    'epoch s maskacc/dense',
    'speedup',
    'non-conv share maskacc/dense',
  ];
  const body = rows.map((r) => [
    String(r.epoch + 1),
    pct(r.rate),
    `${r.maskacc.loss.toFixed(4)} / ${r.dense.loss.toFixed(4)}`,
    `${pct(r.maskacc.accuracy)} / ${pct(r.dense.accuracy)}`,
    `${r.maskacc.seconds.toFixed(1)} / ${r.dense.seconds.toFixed(1)}`,
    `${(r.dense.seconds / r.maskacc.seconds).toFixed(2)}x`,
    `${pct(r.maskacc.nonConvShare)} / ${pct(r.dense.nonConvShare)}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

/** Two panels side by side: test accuracy (%) and epoch time (s) per epoch, maskacc vs dense. */
export function renderPruneSvg(rows: readonly PruneEpochRow[], title: string): string {
  const W = 360,
    H = 220,
    M = { l: 48, r: 12, t: 30, b: 36 };
  const panel = (
    x0: number,
    label: string,
    get: (r: RunEpoch) => number,
    fmt: (v: number) => string,
    fromZero = false,
  ) => {
    const values = rows.flatMap((r) => [get(r.maskacc), get(r.dense)]);
    let lo = fromZero ? 0 : Math.min(...values),
      hi = Math.max(...values);
    if (hi - lo < 1e-9) [lo, hi] = [lo - 1, hi + 1];
    const pad = (hi - lo) * 0.1;
    [lo, hi] = [Math.max(0, lo - pad), hi + pad];
    const px = (i: number) =>
      x0 + M.l + (rows.length > 1 ? (i / (rows.length - 1)) * (W - M.l - M.r) : (W - M.l - M.r) / 2);
    const py = (v: number) => M.t + (1 - (v - lo) / (hi - lo)) * (H - M.t - M.b);
    const path = (run: 'maskacc' | 'dense') =>
      rows.map((r, i) => `${i ? 'L' : 'M'}${px(i).toFixed(1)},${py(get(r[run])).toFixed(1)}`).join(' ');
    const ticks = [0, 0.5, 1].map((f) => lo + f * (hi - lo));
    return [
      `<text x="${x0 + M.l}" y="18" font-size="12">${label}</text>`,
      `<line x1="${x0 + M.l}" y1="${H - M.b}" x2="${x0 + W - M.r}" y2="${H - M.b}" stroke="#888"/>`,
      `<line x1="${x0 + M.l}" y1="${M.t}" x2="${x0 + M.l}" y2="${H - M.b}" stroke="#888"/>`,
      ...ticks.map(
        (v) => `<text x="${x0 + M.l - 4}" y="${py(v) + 4}" font-size="10" text-anchor="end">${fmt(v)}</text>`,
      ),
      ...rows.map(
        (r, i) => `<text x="${px(i)}" y="${H - M.b + 14}" font-size="10" text-anchor="middle">${r.epoch + 1}</text>`,
      ),
      `<text x="${x0 + (W + M.l) / 2}" y="${H - 6}" font-size="10" text-anchor="middle">epoch</text>`,
      `<path d="${path('dense')}" fill="none" stroke="#999" stroke-width="2"/>`,
      `<path d="${path('maskacc')}" fill="none" stroke="#c0392b" stroke-width="2"/>`,
    ].join('\n');
  };
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W}" height="${H + 24}" font-family="sans-serif">`,
    `<text x="8" y="${H + 18}" font-size="11">${escapeXml(title)} — red: maskacc, grey: dense convolutions with masks applied</text>`,
    panel(
      0,
      'test accuracy (%)',
      (r) => 100 * r.accuracy,
      (v) => v.toFixed(1),
    ),
    panel(
      W,
      'epoch time (s)',
      (r) => r.seconds,
      (v) => v.toFixed(0),
      true,
    ), // from 0: heights compare as ratios
    '</svg>',
  ].join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}
