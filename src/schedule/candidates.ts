// The engine families a layer can run (pure data, no kernels): what tuning (api/tune.ts) builds and
// times, and the strategies a caller may force.

import type { ConvLayer } from '../ir/conv.js';
import type { Strategy } from './plan.js';

/** Candidate engine families for a layer: planes and pointwise only where they apply. */
export function candidates(layer: ConvLayer): Record<string, Strategy> {
  const out: Record<string, Strategy> = {
    direct: { forward: 'direct', backwardData: 'direct', backwardWeights: 'direct' },
    im2col: { forward: 'im2col', backwardData: 'im2col', backwardWeights: 'im2row' },
  };
  if (layer.stride[0] === 1 && layer.stride[1] === 1)
    out.planes = { forward: 'planes', backwardData: 'planes', backwardWeights: 'planes' };
  if (layer.kernel[0] === 1 && layer.kernel[1] === 1) {
    // Pointwise backward-weights reads x where dy's positions are: stride 1, no padding.
    const plain = layer.stride.every((v) => v === 1) && layer.padding.every((v) => v === 0);
    out.pointwise = {
      forward: 'pointwise',
      backwardData: 'pointwise',
      backwardWeights: plain ? 'pointwise' : 'direct',
    };
  }
  return out;
}
