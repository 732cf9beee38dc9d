// Filter-importance criteria and the keep-masks they select, for conv weights in OIHW layout
// (w[k][c][r][s], k = filter). Everywhere a higher score means a more important filter, and the
// masks are the `out` masks MaskedConv.setMasks takes (1 = kept).

import { ArgumentError } from '../errors.js';

/** 'l1' / 'l2': norm of each filter; 'fpgm': distance to the other filters (geometric median). */
export type FilterCriterion = 'l1' | 'l2' | 'fpgm';

export const FILTER_CRITERIA: readonly FilterCriterion[] = Object.freeze(['l1', 'l2', 'fpgm']);

/**
 * Scores each of the `outChannels` filters of a conv weight `w` (OIHW, K x C x R x S), in float64.
 *
 * - `'l1'`: sum of |w| over the filter (the criterion of Li et al. 2017 and of Soft Filter Pruning).
 * - `'l2'`: Euclidean norm of the filter.
 * - `'fpgm'` (He et al. 2019, Filter Pruning via Geometric Median): the sum of Euclidean distances
 *   from filter k to every other filter. Filters near the geometric median of the layer can be
 *   replaced by the others, so they score low and are pruned first. Costs O(K^2 C R S).
 *
 * @throws ArgumentError if `outChannels` is not a positive integer, `w` is empty or its length is
 *   not a multiple of `outChannels`, `w` holds a non-finite value, or `criterion` is unknown.
 */
export function filterScores(
  w: Float32Array | Float64Array,
  outChannels: number,
  criterion: FilterCriterion,
): Float64Array {
  if (!(w instanceof Float32Array || w instanceof Float64Array))
    throw new ArgumentError('w', w, 'a Float32Array or Float64Array (OIHW)');
  if (!Number.isInteger(outChannels) || outChannels < 1) {
    throw new ArgumentError('outChannels', outChannels, 'a positive integer');
  }
  if (w.length === 0 || w.length % outChannels !== 0) {
    throw new ArgumentError('w', w, `a non-empty length divisible by outChannels = ${outChannels}`);
  }
  if (!FILTER_CRITERIA.includes(criterion)) {
    throw new ArgumentError('criterion', criterion, `one of ${FILTER_CRITERIA.map((c) => `'${c}'`).join(', ')}`);
  }
  // A NaN would make every comparison false and the selection silently arbitrary.
  const bad = w.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new ArgumentError(`w[${bad}]`, w[bad], 'a finite number');

  const k = outChannels;
  const n = w.length / k;
  const scores = new Float64Array(k);
  if (criterion === 'fpgm') {
    // Distances are symmetric: compute each pair once and credit both filters.
    for (let a = 0; a < k; a++) {
      for (let b = a + 1; b < k; b++) {
        let sq = 0;
        for (let i = 0, ia = a * n, ib = b * n; i < n; i++) {
          const d = w[ia + i] - w[ib + i];
          sq += d * d;
        }
        const dist = Math.sqrt(sq);
        scores[a] += dist;
        scores[b] += dist;
      }
    }
    return scores;
  }
  for (let f = 0; f < k; f++) {
    let s = 0;
    const end = (f + 1) * n;
    if (criterion === 'l1') for (let i = f * n; i < end; i++) s += Math.abs(w[i]);
    else for (let i = f * n; i < end; i++) s += w[i] * w[i];
    scores[f] = criterion === 'l1' ? s : Math.sqrt(s);
  }
  return scores;
}

/**
 * How many of `count` filters a prune rate removes: round(count * rate) (nearest to the requested
 * density, unlike the floor of the SFP/FPGM reference code, which always prunes too little),
 * capped at count - 1 unless the rate is exactly 1, so a rate below 1 never empties a layer.
 */
export function prunedCount(count: number, pruneRate: number): number {
  if (!Number.isInteger(count) || count < 1) throw new ArgumentError('count', count, 'a positive integer');
  checkRate(pruneRate);
  if (pruneRate === 1) return count;
  return Math.min(Math.round(count * pruneRate), count - 1);
}

/**
 * Keep-mask (1 = kept) that prunes the prunedCount(K, pruneRate) lowest-scoring filters.
 * Ties are broken by index: among equal scores the lower index is kept.
 *
 * @throws ArgumentError for empty or non-finite scores or a rate outside [0, 1].
 */
export function selectFilters(scores: ArrayLike<number>, pruneRate: number): Uint8Array {
  checkScores(scores, 'scores');
  const order = leastImportantFirst(scores);
  const mask = new Uint8Array(scores.length).fill(1);
  const pruned = prunedCount(scores.length, pruneRate);
  for (let i = 0; i < pruned; i++) mask[order[i]] = 0;
  return mask;
}

/**
 * Keep-masks for several layers ranked together: prunedCount(total filters, pruneRate) filters
 * are pruned over all layers, fewer if needed so each layer keeps its best filter (even at rate 1:
 * an empty layer would cut the network). Ties: the earlier layer, then the lower index, is kept.
 *
 * Scores are first divided by their layer's mean score. Raw norms grow with a layer's fan-in
 * (C R S) and weight scale and FPGM sums grow with K, so unnormalized ranking would prune whole
 * layers for their shape rather than their filters' relative importance. The mean (not the max)
 * keeps one outlier filter from pushing the rest of its layer towards zero. A layer whose mean is
 * 0 has all scores 0 and stays all 0.
 *
 * @throws ArgumentError for an empty layer list, empty or non-finite or negative scores, or a
 *   rate outside [0, 1].
 */
export function selectFiltersGlobal(layers: readonly { scores: ArrayLike<number> }[], pruneRate: number): Uint8Array[] {
  if (!Array.isArray(layers) || layers.length === 0) throw new ArgumentError('layers', layers, 'a non-empty array');
  checkRate(pruneRate);
  const entries: { layer: number; index: number; score: number }[] = [];
  const masks = layers.map(({ scores }, l) => {
    checkScores(scores, `layers[${l}].scores`);
    const neg = Array.prototype.findIndex.call(scores, (v: number) => v < 0);
    // The mean normalization assumes non-negative scores, as all criteria here produce.
    if (neg >= 0) throw new ArgumentError(`layers[${l}].scores[${neg}]`, scores[neg], 'a non-negative number');
    let mean = 0;
    for (let i = 0; i < scores.length; i++) mean += scores[i] / scores.length;
    const best = leastImportantFirst(scores)[scores.length - 1];
    for (let i = 0; i < scores.length; i++) {
      if (i !== best) entries.push({ layer: l, index: i, score: mean > 0 ? scores[i] / mean : 0 });
    }
    return new Uint8Array(scores.length).fill(1);
  });
  const total = entries.length + layers.length;
  const pruned = Math.min(prunedCount(total, pruneRate), entries.length);
  entries.sort((a, b) => a.score - b.score || b.layer - a.layer || b.index - a.index);
  for (let i = 0; i < pruned; i++) masks[entries[i].layer][entries[i].index] = 0;
  return masks;
}

/** Filter indices from least to most important: ascending score, then descending index. */
function leastImportantFirst(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a] - scores[b] || b - a);
}

function checkRate(pruneRate: number): void {
  if (typeof pruneRate !== 'number' || !(pruneRate >= 0 && pruneRate <= 1)) {
    throw new ArgumentError('pruneRate', pruneRate, 'a number in [0, 1]');
  }
}

function checkScores(scores: ArrayLike<number>, argument: string): void {
  if (scores === null || typeof scores !== 'object' || typeof scores.length !== 'number' || scores.length === 0) {
    throw new ArgumentError(argument, scores, 'a non-empty array of scores');
  }
  for (let i = 0; i < scores.length; i++) {
    if (typeof scores[i] !== 'number' || !Number.isFinite(scores[i])) {
      throw new ArgumentError(`${argument}[${i}]`, scores[i], 'a finite number');
    }
  }
}
