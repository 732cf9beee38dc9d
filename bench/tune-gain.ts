// How much opt-in tuning gains over the scheduler's heuristic, per model and density: tunes every
// unique layer (fresh tuning file) and sums the tuner's own medians, weighted by layer counts.
// Usage: npx tsx bench/tune-gain.ts [--densities 1,0.5] [--models vgg16,resnet56,resnet50]
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compileMaskedConvs } from '../src/index.js';
import { MODELS } from './models.js';

const { values } = parseArgs({
  options: {
    densities: { type: 'string', default: '1,0.5' },
    models: { type: 'string', default: Object.keys(MODELS).join(',') },
  },
});
const densities = values.densities.split(',').map(Number);
const wanted = values.models.split(',');
console.log('| model | density | heuristic ms | tuned ms | gain | tuning time s |\n|:--|--:|--:|--:|--:|--:|');
for (const [key, model] of Object.entries(MODELS).filter(([k]) => wanted.includes(k))) {
  for (const d of densities) {
    const tuningFile = join(mkdtempSync(join(tmpdir(), 'maskacc-tune-gain-')), 'tuning.json');
    const specs = model.layers.map((l) => ({ ...l.spec, density: { out: d, in: l.spec.inChannels === 3 ? 1 : d } }));
    const t0 = performance.now();
    await compileMaskedConvs(specs, { tune: true, tuningFile, respecialize: false });
    const seconds = (performance.now() - t0) / 1000;
    const entries = JSON.parse(readFileSync(tuningFile, 'utf8')) as Record<
      string,
      { layer: string; tunedMs: number; heuristicMs: number }
    >;
    let heuristic = 0,
      tuned = 0;
    for (const e of Object.values(entries)) {
      const layer = JSON.parse(e.layer);
      const count =
        model.layers.find(
          (l) =>
            l.spec.inChannels === layer.inChannels &&
            l.spec.outChannels === layer.outChannels &&
            l.spec.inHeight === layer.inHeight &&
            JSON.stringify([l.spec.stride ?? 1].flat()[0]) === JSON.stringify(layer.stride[0]),
        )?.count ?? 1;
      heuristic += e.heuristicMs * count;
      tuned += e.tunedMs * count;
    }
    console.log(
      `| ${key} | ${d} | ${heuristic.toFixed(1)} | ${tuned.toFixed(1)} | ${(heuristic / tuned).toFixed(3)}x | ${seconds.toFixed(0)} |`,
    );
  }
}
