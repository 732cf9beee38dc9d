// Times a model's conv training step the way a framework runs it: every layer's forward,
// backward-data and backward-weights in order, on buffers allocated once (inputs and outputs
// reused across steps, as a framework's caching allocator would hand them out).

import type { ConvLayer } from '../ir/conv.js';
import type { CompiledModel } from './compiled-model.js';
import type { Model } from './model.js';
import { takeArray } from '../runtime/pool.js';

export interface LayerBuffers {
  x: Float32Array;
  w: Float32Array;
  dy: Float32Array;
  y: Float32Array;
  dx: Float32Array;
  dw: Float32Array;
  /** Bias and its gradient, for layers with bias. */
  b?: Float32Array;
  db?: Float32Array;
}

export interface StepTiming {
  /** Wall time of the whole step (all layers, all passes). */
  stepMs: number;
  /** Per layer: [forward, backward-data, backward-weights] ms, in model order. */
  layers: { name: string; ms: [number, number, number] }[];
}

const sizes = (L: ConvLayer) => ({
  x: L.batch * L.inChannels * L.inHeight * L.inWidth,
  w: L.outChannels * L.inChannels * L.kernel[0] * L.kernel[1],
  y: L.batch * L.outChannels * L.outHeight * L.outWidth,
});

/**
 * Buffers for every layer; `fill(n)` makes the inputs (default: constant 0.5 / 0.01 / 0.1). Layers
 * of one shape share theirs (each is far larger than the caches, so timing is the same), and they
 * come from the output pool (huge-page advised): ResNet-50 at batch 64 needed 11 GB of distinct
 * buffers, and first-touching them in 4 KiB pages took 75 s of system time on a 2-core VM. The
 * activations (x, which the passes only read, y, dx and the incoming dy) are views of one region
 * each, shared by all layers, as a framework's caching allocator hands the same blocks to one layer
 * after another: one x per shape was 1.46 GiB of first touches at ResNet-50 batch 64, one region 196 MiB.
 */
export function stepBuffers(model: Model, fill?: (n: number) => Float32Array): Map<string, LayerBuffers> {
  const all = model.layers.map((l) => sizes(l.layer));
  const largest = (key: 'x' | 'y') => Math.max(...all.map((s) => s[key]));
  const input = (n: number, v: number) => fill?.(n) ?? takeArray(n).fill(v);
  const region = {
    x: input(largest('x'), 0.5),
    y: takeArray(largest('y')),
    dx: takeArray(largest('x')),
    dy: input(largest('y'), 0.1),
  };
  const byShape = new Map<string, LayerBuffers>();
  return new Map(
    model.layers.map((l, i) => {
      const s = all[i];
      const key = `${s.x} ${s.w} ${s.y} ${l.layer.outChannels} ${l.layer.bias}`;
      const shared = byShape.get(key);
      if (shared) return [l.name, shared];
      const buffers: LayerBuffers = {
        x: region.x.subarray(0, s.x),
        w: input(s.w, 0.01),
        dy: region.dy.subarray(0, s.y),
        y: region.y.subarray(0, s.y), // outputs: every element is written by the pass
        dx: region.dx.subarray(0, s.x),
        dw: takeArray(s.w),
        ...(l.layer.bias ? { b: input(l.layer.outChannels, 0.1), db: takeArray(l.layer.outChannels) } : {}),
      };
      byShape.set(key, buffers);
      return [l.name, buffers];
    }),
  );
}

/** One step of all layers in order on `buffers`; per-pass times and the step's wall time. */
export function timeStep(compiled: CompiledModel, buffers: ReadonlyMap<string, LayerBuffers>): StepTiming {
  const layers: StepTiming['layers'] = [];
  const start = performance.now();
  for (const l of compiled.model.layers) {
    const conv = compiled.convs.get(l.name)!,
      b = buffers.get(l.name)!;
    const t0 = performance.now();
    conv.forward(b.x, b.w, b.b, b.y);
    const t1 = performance.now();
    if (l.layer.inputGrad) conv.backwardData(b.dy, b.w, b.dx); // a first layer has no input gradient
    const t2 = performance.now();
    conv.backwardWeights(b.dy, b.x, b.dw, b.db);
    layers.push({ name: l.name, ms: [t1 - t0, t2 - t1, performance.now() - t2] });
  }
  return { stepMs: performance.now() - start, layers };
}

/** Medians over `runs` of the step time and of every layer's pass times. */
export function medianTiming(runs: readonly StepTiming[]): StepTiming {
  const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
  return {
    stepMs: median(runs.map((r) => r.stepMs)),
    layers: runs[0].layers.map((l, i) => ({
      name: l.name,
      ms: [0, 1, 2].map((p) => median(runs.map((r) => r.layers[i].ms[p]))) as [number, number, number],
    })),
  };
}
