// Layout conversions between TF.js's conventions (NHWC activations, HWIO conv kernels) and the
// maskacc kernels' (NCHW, OIHW). Plain loops into caller-given arrays: folded into the layer's
// custom gradient, they replace a tf.transpose (and its tensor bookkeeping) on every call.

/** NHWC -> NCHW (`dst` holds n*c*h*w floats). */
export function nhwcToNchw(src: Float32Array, n: number, h: number, w: number, c: number, dst: Float32Array): void {
  const hw = h * w;
  for (let i = 0; i < n; i++) {
    const s0 = i * hw * c,
      d0 = i * hw * c;
    for (let p = 0; p < hw; p++) {
      const s = s0 + p * c;
      for (let k = 0; k < c; k++) dst[d0 + k * hw + p] = src[s + k];
    }
  }
}

/** NCHW -> NHWC (`dst` holds n*c*h*w floats). */
export function nchwToNhwc(src: Float32Array, n: number, c: number, h: number, w: number, dst: Float32Array): void {
  const hw = h * w;
  for (let i = 0; i < n; i++) {
    const s0 = i * hw * c,
      d0 = i * hw * c;
    for (let k = 0; k < c; k++) {
      const s = s0 + k * hw;
      for (let p = 0; p < hw; p++) dst[d0 + p * c + k] = src[s + p];
    }
  }
}

/** A conv kernel HWIO [R][S][C][K] -> OIHW [K][C][R][S]. */
export function hwioToOihw(src: Float32Array, r: number, s: number, c: number, k: number): Float32Array {
  const dst = new Float32Array(src.length);
  const rs = r * s;
  for (let p = 0; p < rs; p++)
    for (let ci = 0; ci < c; ci++) {
      const from = (p * c + ci) * k;
      for (let ko = 0; ko < k; ko++) dst[(ko * c + ci) * rs + p] = src[from + ko];
    }
  return dst;
}

/** A conv kernel OIHW [K][C][R][S] -> HWIO [R][S][C][K]. */
export function oihwToHwio(src: Float32Array, k: number, c: number, r: number, s: number): Float32Array {
  const dst = new Float32Array(src.length);
  const rs = r * s;
  for (let ko = 0; ko < k; ko++)
    for (let ci = 0; ci < c; ci++) {
      const from = (ko * c + ci) * rs;
      for (let p = 0; p < rs; p++) dst[(p * c + ci) * k + ko] = src[from + p];
    }
  return dst;
}
