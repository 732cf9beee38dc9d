// Independent reference conv2d (forward, backward-data, backward-weights) with filter/channel masks.
// Plain loops, float64 accumulation, written straight from the definitions: every kernel test trusts it.

/** Structural: any object with these fields (e.g. a richer layer description) is accepted. */
export interface RefConv {
  readonly batch: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly inHeight: number;
  readonly inWidth: number;
  // readonly tuples so both `[a, b]` and `readonly [a, b]` layer objects are accepted.
  readonly kernel: readonly [number, number];
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  readonly dilation: readonly [number, number];
}

/** Nonzero / true = kept. */
export type Mask = ArrayLike<number | boolean>;

/** [P, Q] output spatial size (floor division, like PyTorch). */
export function refOutSize(c: RefConv): [number, number] {
  const [R, S] = c.kernel;
  const [sh, sw] = c.stride;
  const [ph, pw] = c.padding;
  const [dh, dw] = c.dilation;
  const P = Math.floor((c.inHeight + 2 * ph - dh * (R - 1) - 1) / sh) + 1;
  const Q = Math.floor((c.inWidth + 2 * pw - dw * (S - 1) - 1) / sw) + 1;
  return [P, Q];
}

/** Expands an optional mask to a boolean array; undefined means all kept. */
function keep(m: Mask | undefined, n: number, what: string): boolean[] {
  if (m === undefined) return new Array<boolean>(n).fill(true);
  if (m.length !== n) throw new Error(`reference: ${what} mask length ${m.length} != ${n}`);
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) out.push(Boolean(m[i]));
  return out;
}

/** Validates shapes once so an inconsistent test fails loudly instead of reading undefined (NaN). */
function dims(c: RefConv) {
  const N = c.batch,
    C = c.inChannels,
    K = c.outChannels,
    H = c.inHeight,
    W = c.inWidth;
  const [R, S] = c.kernel;
  const [P, Q] = refOutSize(c);
  if (P < 1 || Q < 1) throw new Error(`reference: empty output ${P}x${Q}`);
  for (const [name, v] of [
    ['stride', c.stride],
    ['dilation', c.dilation],
  ] as const) {
    if (v[0] < 1 || v[1] < 1) throw new Error(`reference: ${name} must be >= 1`);
  }
  return {
    N,
    C,
    K,
    H,
    W,
    R,
    S,
    P,
    Q,
    sh: c.stride[0],
    sw: c.stride[1],
    ph: c.padding[0],
    pw: c.padding[1],
    dh: c.dilation[0],
    dw: c.dilation[1],
  };
}

function checkLen(a: ArrayLike<number>, n: number, what: string): void {
  if (a.length !== n) throw new Error(`reference: ${what} length ${a.length} != expected ${n}`);
}

export function refForward(
  c: RefConv,
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | undefined,
  mOut?: Mask,
  mIn?: Mask,
): Float64Array {
  const d = dims(c);
  const { N, C, K, H, W, R, S, P, Q } = d;
  checkLen(x, N * C * H * W, 'x');
  checkLen(w, K * C * R * S, 'w');
  if (bias) checkLen(bias, K, 'bias');
  const ko = keep(mOut, K, 'mOut');
  const ki = keep(mIn, C, 'mIn');
  const y = new Float64Array(N * K * P * Q); // pruned filters stay exactly 0 (bias included)
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      if (!ko[k]) continue;
      for (let p = 0; p < P; p++)
        for (let q = 0; q < Q; q++) {
          let acc = bias ? bias[k] : 0;
          for (let ch = 0; ch < C; ch++) {
            if (!ki[ch]) continue;
            for (let r = 0; r < R; r++) {
              const ih = p * d.sh - d.ph + r * d.dh;
              if (ih < 0 || ih >= H) continue; // zero padding
              for (let s = 0; s < S; s++) {
                const iw = q * d.sw - d.pw + s * d.dw;
                if (iw < 0 || iw >= W) continue;
                acc += w[((k * C + ch) * R + r) * S + s] * x[((n * C + ch) * H + ih) * W + iw];
              }
            }
          }
          y[((n * K + k) * P + p) * Q + q] = acc;
        }
    }
  return y;
}

/**
 * dx as a scatter from each (n,k,p,q,r,s): the literal transpose of the forward gather,
 * deliberately not the "inverse index" formulation kernels use, so the two are independent.
 */
export function refBackwardData(c: RefConv, dy: Float32Array, w: Float32Array, mOut?: Mask, mIn?: Mask): Float64Array {
  const d = dims(c);
  const { N, C, K, H, W, R, S, P, Q } = d;
  checkLen(dy, N * K * P * Q, 'dy');
  checkLen(w, K * C * R * S, 'w');
  const ko = keep(mOut, K, 'mOut');
  const ki = keep(mIn, C, 'mIn');
  const dx = new Float64Array(N * C * H * W);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      if (!ko[k]) continue;
      for (let p = 0; p < P; p++)
        for (let q = 0; q < Q; q++) {
          const g = dy[((n * K + k) * P + p) * Q + q];
          for (let ch = 0; ch < C; ch++) {
            if (!ki[ch]) continue;
            for (let r = 0; r < R; r++) {
              const ih = p * d.sh - d.ph + r * d.dh;
              if (ih < 0 || ih >= H) continue;
              for (let s = 0; s < S; s++) {
                const iw = q * d.sw - d.pw + s * d.dw;
                if (iw < 0 || iw >= W) continue;
                dx[((n * C + ch) * H + ih) * W + iw] += w[((k * C + ch) * R + r) * S + s] * g;
              }
            }
          }
        }
    }
  return dx;
}

/**
 * dw/dbias. Pruned input channels are always 0; pruned filters are 0 unless gradOfPrunedFilters,
 * in which case they get the full (unmasked-filter) gradient so regrowth criteria can read it.
 */
export function refBackwardWeights(
  c: RefConv,
  dy: Float32Array,
  x: Float32Array,
  mOut?: Mask,
  mIn?: Mask,
  gradOfPrunedFilters = false,
): { dw: Float64Array; dbias: Float64Array } {
  const d = dims(c);
  const { N, C, K, H, W, R, S, P, Q } = d;
  checkLen(dy, N * K * P * Q, 'dy');
  checkLen(x, N * C * H * W, 'x');
  const ko = keep(mOut, K, 'mOut');
  const ki = keep(mIn, C, 'mIn');
  const dw = new Float64Array(K * C * R * S);
  const dbias = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    if (!ko[k] && !gradOfPrunedFilters) continue;
    let db = 0;
    for (let n = 0; n < N; n++)
      for (let p = 0; p < P; p++) for (let q = 0; q < Q; q++) db += dy[((n * K + k) * P + p) * Q + q];
    dbias[k] = db;
    for (let ch = 0; ch < C; ch++) {
      if (!ki[ch]) continue;
      for (let r = 0; r < R; r++)
        for (let s = 0; s < S; s++) {
          let acc = 0;
          for (let n = 0; n < N; n++)
            for (let p = 0; p < P; p++) {
              const ih = p * d.sh - d.ph + r * d.dh;
              if (ih < 0 || ih >= H) continue;
              for (let q = 0; q < Q; q++) {
                const iw = q * d.sw - d.pw + s * d.dw;
                if (iw < 0 || iw >= W) continue;
                acc += dy[((n * K + k) * P + p) * Q + q] * x[((n * C + ch) * H + ih) * W + iw];
              }
            }
          dw[((k * C + ch) * R + r) * S + s] = acc;
        }
    }
  }
  return { dw, dbias };
}
