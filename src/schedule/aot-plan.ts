// The plans of ahead-of-time models: fixed so generated sources are the same on every machine,
// and shared by the generator (model/aot.ts) and the loader (runtime/generated.ts).

import type { ConvLayer } from '../ir/conv.js';
import { choosePlan, type Plan } from './plan.js';
import { ISAS, type IsaName } from './isa.js';

/** Every generated model carries these ISAs; the loader takes the best the CPU runs. */
export const AOT_ISAS: readonly IsaName[] = ['avx512', 'avx2', 'scalar'];
/** Plans are made for this thread count (blocking only); kernels run with any count. */
export const AOT_PLAN_THREADS = 2;

export function aotPlan(layer: ConvLayer, isa: IsaName): Plan {
  return choosePlan(layer, ISAS[isa], AOT_PLAN_THREADS);
}
