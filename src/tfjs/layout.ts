// Kernel layout conversions between TF.js's convention (HWIO) and the maskacc kernels' (OIHW):
// K C R S floats per call, negligible next to the activations (whose NHWC <-> NCHW conversions
// are native: TrainOpsAddon.transposeImages).

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
