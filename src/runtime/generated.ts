// Loads a model generated ahead of time (generated/<name>): its prebuilt addon holds every layer
// in every ISA; the best one this CPU runs is taken, so loading needs no compiler.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConvLayer } from '../ir/conv.js';
import { AOT_ISAS, aotPlan } from '../schedule/aot-plan.js';
import type { NativeKernelClass } from '../codegen/compile.js';
import { ISAS, isaSupported } from '../schedule/isa.js';
import { MaskaccError } from '../errors.js';
import { MaskedConv } from './masked-conv.js';
import { loadPool } from './pool.js';
import { defaultCacheDir } from '../codegen/cache.js';

export interface GeneratedLoadOptions {
  threads?: number;
  gradOfPrunedFilters?: boolean;
}

const require = createRequire(import.meta.url);

export async function loadGeneratedModel(
  moduleUrl: string,
  target: string,
  layers: Record<string, { unit: string; spec: ConvLayer }>,
  options: GeneratedLoadOptions = {},
): Promise<Record<string, MaskedConv>> {
  const dir = dirname(fileURLToPath(moduleUrl));
  const addon = join(dir, 'src', 'build', 'Release', `${target}.node`);
  if (!existsSync(addon)) {
    throw new MaskaccError(
      `${addon} is not built: run \`maskacc build <zoo model | model.json> --out ${dir}\` (without --no-compile) first`,
    );
  }
  const { Kernel, key } = require(addon) as { Kernel: NativeKernelClass; key: string };
  await loadPool(defaultCacheDir()); // without a compiler there is no pool: outputs are plain arrays
  const isa = AOT_ISAS.find((i) => isaSupported(ISAS[i]))!;
  const threads = options.threads ?? availableParallelism();
  return Object.fromEntries(
    Object.entries(layers).map(([name, l]) => {
      const kernel = new Kernel(`${l.unit}_${isa}`, threads);
      return [
        name,
        new MaskedConv(l.spec, aotPlan(l.spec, isa), kernel, threads, key, options.gradOfPrunedFilters ?? false),
      ];
    }),
  );
}
