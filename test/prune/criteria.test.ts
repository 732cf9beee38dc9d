// Filter criteria against plain-loop references, FPGM's geometric-median property, the rounding
// and tie rules of the selections, and argument errors.
import { describe, expect, it } from 'vitest';
import { filterScores, prunedCount, selectFilters, selectFiltersGlobal } from '../../src/prune/criteria.js';
import { ArgumentError } from '../../src/errors.js';
import { rng } from '../util.js';

/** w[k][c][r][s] as a nested-loop reference over explicit 4-D indices. */
function reference(w: Float32Array, K: number, C: number, R: number, S: number) {
  const at = (k: number, c: number, r: number, s: number) => w[((k * C + c) * R + r) * S + s];
  const l1: number[] = [];
  const l2: number[] = [];
  const fpgm: number[] = [];
  for (let k = 0; k < K; k++) {
    let a = 0;
    let b = 0;
    for (let c = 0; c < C; c++)
      for (let r = 0; r < R; r++)
        for (let s = 0; s < S; s++) {
          a += Math.abs(at(k, c, r, s));
          b += at(k, c, r, s) ** 2;
        }
    l1.push(a);
    l2.push(Math.sqrt(b));
  }
  for (let k = 0; k < K; k++) {
    let sum = 0;
    for (let j = 0; j < K; j++) {
      let d = 0;
      for (let c = 0; c < C; c++)
        for (let r = 0; r < R; r++) for (let s = 0; s < S; s++) d += (at(k, c, r, s) - at(j, c, r, s)) ** 2;
      sum += Math.sqrt(d);
    }
    fpgm.push(sum);
  }
  return { l1, l2, fpgm };
}

function thrown(fn: () => unknown): ArgumentError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ArgumentError);
    return e as ArgumentError;
  }
  throw new Error('expected an ArgumentError, none was thrown');
}

const kept = (m: Uint8Array) => Array.from(m).flatMap((v, i) => (v ? [i] : []));

describe('filterScores', () => {
  it('l1, l2 and fpgm match nested-loop references', () => {
    const r = rng(7);
    for (const [K, C, R, S] of [
      [1, 1, 1, 1],
      [5, 3, 3, 3],
      [8, 2, 1, 5],
    ]) {
      const w = r.normalArray(K * C * R * S);
      const ref = reference(w, K, C, R, S);
      for (const c of ['l1', 'l2', 'fpgm'] as const) {
        const got = filterScores(w, K, c);
        expect(got).toBeInstanceOf(Float64Array);
        expect(got).toHaveLength(K);
        got.forEach((v, k) => expect(v).toBeCloseTo(ref[c][k], 10));
      }
    }
  });

  it('a tiny case by hand: filters (3, -4) and (0, 0)', () => {
    const w = new Float32Array([3, -4, 0, 0]);
    expect(Array.from(filterScores(w, 2, 'l1'))).toEqual([7, 0]);
    expect(Array.from(filterScores(w, 2, 'l2'))).toEqual([5, 0]);
    expect(Array.from(filterScores(w, 2, 'fpgm'))).toEqual([5, 5]);
  });

  it('fpgm: the mean of symmetric filters is the least important, whatever its norm', () => {
    // Filters +-u, +-v around a centre m, plus m itself: m is the geometric median.
    const r = rng(11);
    const n = 2 * 3 * 3;
    const [m, u, v] = [r.normalArray(n), r.normalArray(n), r.normalArray(n)];
    for (let i = 0; i < n; i++) m[i] += 5; // the largest norm of all: L1/L2 would keep it
    const filters = [
      m.map((x, i) => x + u[i]),
      m.map((x, i) => x - u[i]),
      m,
      m.map((x, i) => x + v[i]),
      m.map((x, i) => x - v[i]),
    ];
    const w = new Float32Array(filters.length * n);
    filters.forEach((f, k) => w.set(f, k * n));
    const fpgm = filterScores(w, 5, 'fpgm');
    expect(Array.from(fpgm).indexOf(Math.min(...fpgm))).toBe(2);
    expect(kept(selectFilters(fpgm, 0.2))).toEqual([0, 1, 3, 4]);
  });

  it('argument errors name the argument', () => {
    const w = new Float32Array(12);
    expect(thrown(() => filterScores(w, 5, 'l1')).argument).toBe('w');
    expect(thrown(() => filterScores(new Float32Array(0), 1, 'l1')).argument).toBe('w');
    expect(thrown(() => filterScores([1, 2] as unknown as Float32Array, 1, 'l1')).argument).toBe('w');
    for (const k of [0, -2, 1.5, NaN]) expect(thrown(() => filterScores(w, k, 'l2')).argument).toBe('outChannels');
    const e = thrown(() => filterScores(w, 3, 'l3' as 'l1'));
    expect(e.argument).toBe('criterion');
    expect(e.message).toContain(`'l1', 'l2', 'fpgm'`);
    w[7] = NaN;
    expect(thrown(() => filterScores(w, 3, 'fpgm')).argument).toBe('w[7]');
  });
});

describe('selectFilters', () => {
  it('prunes round(K * rate) lowest scores, keeps at least one below rate 1', () => {
    const scores = Float64Array.from([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]);
    expect(kept(selectFilters(scores, 0.3))).toEqual([0, 2, 3, 4, 6, 7, 8]);
    expect(kept(selectFilters(scores, 0.25))).toEqual([0, 2, 3, 4, 6, 7, 8]); // 2.5 rounds up to 3 pruned
    expect(kept(selectFilters(scores, 0.24))).toEqual([0, 2, 3, 4, 5, 6, 7, 8]); // 2.4 rounds down to 2
    expect(kept(selectFilters(scores, 0))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(kept(selectFilters(scores, 0.99))).toEqual([2]); // 9.9 rounds to 10, capped at 9
    expect(kept(selectFilters(scores, 1))).toEqual([]);
    for (const [K, rate, want] of [
      [3, 0.9, 2],
      [3, 0.5, 2],
      [7, 0.5, 4],
      [1, 0.7, 0],
      [1, 1, 1],
      [64, 0.3, 19],
    ]) {
      expect(prunedCount(K, rate)).toBe(want);
      expect(kept(selectFilters(new Float64Array(K).fill(1), rate))).toHaveLength(K - want);
    }
  });

  it('ties: the lower index is kept', () => {
    expect(kept(selectFilters([2, 1, 1, 1, 2], 0.4))).toEqual([0, 1, 4]);
    expect(kept(selectFilters([0, 0, 0, 0], 0.5))).toEqual([0, 1]);
  });

  it('argument errors', () => {
    for (const rate of [-0.1, 1.01, NaN, '0.5' as unknown as number]) {
      expect(thrown(() => selectFilters([1, 2], rate)).argument).toBe('pruneRate');
    }
    expect(thrown(() => selectFilters([], 0.5)).argument).toBe('scores');
    expect(thrown(() => selectFilters([1, Infinity], 0.5)).argument).toBe('scores[1]');
    expect(thrown(() => prunedCount(0, 0.5)).argument).toBe('count');
  });
});

describe('selectFiltersGlobal', () => {
  it('ranks normalized scores across layers', () => {
    // Layer 1 has 100x the scale of layer 0; divided by their means both rank alike.
    const a = [1, 2, 3, 4];
    const masks = selectFiltersGlobal([{ scores: a }, { scores: a.map((x) => 100 * x) }], 0.5);
    expect(masks.map(kept)).toEqual([
      [2, 3],
      [2, 3],
    ]);
    // Relative importance decides, not scale: layer 1's filters are nearly equal, layer 0 has two weak ones.
    const uneven = selectFiltersGlobal([{ scores: [0.1, 0.1, 5, 5] }, { scores: [90, 100, 110, 100] }], 0.25);
    expect(uneven.map(kept)).toEqual([
      [2, 3],
      [0, 1, 2, 3],
    ]);
  });

  it('keeps the best filter of every layer, even at rate 1', () => {
    const layers = [
      { scores: Float64Array.from([1, 5, 2]) },
      { scores: Float64Array.from([0.001]) },
      { scores: [9, 8] },
    ];
    expect(selectFiltersGlobal(layers, 1).map(kept)).toEqual([[1], [0], [0]]);
    expect(selectFiltersGlobal(layers, 0).map(kept)).toEqual([[0, 1, 2], [0], [0, 1]]);
    // A layer of tiny relative scores loses all but its best first; then ties go by highest index.
    const weak = [{ scores: [10, 10, 10, 10] }, { scores: [100, 1, 1, 1] }];
    expect(selectFiltersGlobal(weak, 0.5).map(kept)).toEqual([[0, 1, 2], [0]]);
  });

  it('prunes round(total * rate) filters in all and is deterministic on ties', () => {
    const r = rng(3);
    const layers = [5, 16, 1, 9].map((k) => ({ scores: Float64Array.from({ length: k }, () => r.next()) }));
    for (const rate of [0.1, 0.33, 0.5, 0.9]) {
      const masks = selectFiltersGlobal(layers, rate);
      const prunedTotal = masks.reduce((s, m) => s + m.length - kept(m).length, 0);
      expect(prunedTotal).toBe(Math.round(31 * rate) > 27 ? 27 : Math.round(31 * rate));
      for (const m of masks) expect(kept(m).length).toBeGreaterThanOrEqual(1);
    }
    // All equal: the later layers and higher indices go first.
    const flat = selectFiltersGlobal([{ scores: [1, 1] }, { scores: [3, 3, 3] }], 0.4);
    expect(flat.map(kept)).toEqual([[0, 1], [0]]);
    // All-zero layer: normalized to 0, pruned before the others but keeps one.
    const zero = selectFiltersGlobal([{ scores: [0, 0, 0] }, { scores: [1, 2, 3] }], 0.5);
    expect(zero.map(kept)).toEqual([[0], [1, 2]]);
  });

  it('argument errors', () => {
    expect(thrown(() => selectFiltersGlobal([], 0.5)).argument).toBe('layers');
    expect(thrown(() => selectFiltersGlobal([{ scores: [1] }], 2)).argument).toBe('pruneRate');
    expect(thrown(() => selectFiltersGlobal([{ scores: [1] }, { scores: [] }], 0.5)).argument).toBe('layers[1].scores');
    expect(thrown(() => selectFiltersGlobal([{ scores: [1, NaN] }], 0.5)).argument).toBe('layers[0].scores[1]');
    expect(thrown(() => selectFiltersGlobal([{ scores: [1, -1] }], 0.5)).argument).toBe('layers[0].scores[1]');
  });
});
