// The maskacc command line: compile a spec, explain the plan of a spec or zoo model, time a zoo
// model at a density, build a model ahead of time, and list or clean the kernel cache. `--json`
// where the output is data; progress on stderr.

import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { compileMaskedConvs, compileModel, conv2d, MODEL_ZOO, passFlops, type ConvLayer, type ConvSpec, type IsaName } from './index.js';
import { defaultCacheDir } from './codegen/cache.js';
import { choosePlan, describePlan } from './schedule/plan.js';
import { ISA_PREFERENCE, ISAS, supportedIsas } from './schedule/isa.js';
import { layerText } from './codegen/render.js';
import type { Model } from './model/model.js';
import { AOT_ISAS, aotTarget, ensureEsmScope, generateModel } from './codegen/aot.js';
import { readModelFile } from './model/model-file.js';
import { buildAddon } from './codegen/build.js';
import { availableParallelism } from 'node:os';
import { progress } from './runtime/progress.js';

type ZooName = keyof typeof MODEL_ZOO;

const program = new Command('maskacc').description('mask-aware conv2d kernel compiler for filter pruning');

const density = (v: string) => {
  const d = Number(v);
  if (!(d > 0 && d <= 1)) throw new InvalidArgumentError('expected a kept fraction in (0, 1]');
  return d;
};
const isaOption = (v: string) => {
  if (v !== 'auto' && !(v in ISAS)) throw new InvalidArgumentError(`expected auto, ${ISA_PREFERENCE.join(', ')}`);
  return v as IsaName | 'auto';
};

/** A zoo model name, or a JSON file holding one ConvSpec or an array of them. */
function loadTarget(target: string, d: number, batch?: number): { name: string; specs: (ConvSpec | ConvLayer)[]; model?: Model } {
  if (target in MODEL_ZOO) {
    const model = MODEL_ZOO[target as ZooName]({ density: d, ...(batch ? { batch } : {}) });
    return { name: target, specs: model.layers.map((l) => l.layer), model };
  }
  let text: string;
  try {
    text = readFileSync(target, 'utf8');
  } catch {
    throw new Error(`${target}: neither a model (${Object.keys(MODEL_ZOO).join(', ')}) nor a readable spec file`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${target}: not valid JSON (${(e as Error).message})`);
  }
  const specs = (Array.isArray(parsed) ? parsed : [parsed]) as ConvSpec[];
  specs.forEach((s, i) => {
    try {
      conv2d(s as ConvSpec);
    } catch (e) {
      throw new Error(`${target}${Array.isArray(parsed) ? ` [${i}]` : ''}: ${(e as Error).message}`);
    }
  });
  return { name: target, specs };
}

program.command('compile <spec.json>')
  .description('compile one ConvSpec (or an array of them) into the kernel cache')
  .option('--isa <isa>', 'auto | avx512 | avx2 | scalar', isaOption, 'auto')
  .option('--threads <n>', 'threads per call', (v) => Number(v))
  .option('--json', 'print the cache key and plans as JSON')
  .action(async (file: string, o: { isa: IsaName | 'auto'; threads?: number; json?: boolean }) => {
    const { specs } = loadTarget(file, 1);
    const t0 = performance.now();
    const convs = await compileMaskedConvs(specs, { isa: o.isa, threads: o.threads, respecialize: false, verbose: !o.json });
    const seconds = (performance.now() - t0) / 1000;
    if (o.json) console.log(JSON.stringify({ key: convs[0].cacheKey, seconds, plans: convs.map((c) => c.plan) }, null, 1));
    else convs.forEach((c) => console.log(`${c.explain()}\n`));
  });

program.command('explain <target>')
  .description('print the plan the scheduler picks for a spec file or a zoo model (nothing is compiled)')
  .option('--density <d>', 'expected kept fraction of filters and channels', density, 1)
  .option('--isa <isa>', 'auto | avx512 | avx2 | scalar', isaOption, 'auto')
  .option('--threads <n>', 'threads per call', (v) => Number(v), 2)
  .option('--json', 'print the plans as JSON')
  .action((target: string, o: { density: number; isa: IsaName | 'auto'; threads: number; json?: boolean }) => {
    const isa = ISAS[o.isa === 'auto' ? supportedIsas()[0] : o.isa];
    const { specs, model } = loadTarget(target, o.density);
    const rows = specs.map((s, i) => ({ layer: model?.layers[i].name ?? String(i), spec: conv2d(s as ConvSpec), plan: choosePlan(conv2d(s as ConvSpec), isa, o.threads) }));
    if (o.json) console.log(JSON.stringify(rows.map((r) => ({ layer: r.layer, plan: r.plan })), null, 1));
    else for (const r of rows) console.log(`${r.layer}: ${layerText(r.spec)}\n  ${describePlan(r.plan).join('\n  ')}\n`);
  });

program.command('bench <model>')
  .description('time a training step of a zoo model with random linked masks against full masks')
  .option('--density <d>', 'kept fraction of filters per layer', density, 0.5)
  .option('--batch <n>', 'batch size', (v) => Number(v), 64)
  .option('--json', 'print the per-layer times as JSON')
  .action(async (name: string, o: { density: number; batch: number; json?: boolean }) => {
    if (!(name in MODEL_ZOO)) throw new Error(`${name}: not a model (${Object.keys(MODEL_ZOO).join(', ')})`);
    const model = MODEL_ZOO[name as ZooName]({ density: o.density, batch: o.batch });
    const compiled = await compileModel(model, { respecialize: false, verbose: !o.json });
    const bar = o.json ? undefined : progress();
    const step = () => model.layers.map((l, i) => {
      bar?.update(`timing ${name}: layer ${i + 1}/${model.layers.length} (${l.name})`);
      const c = compiled.convs.get(l.name)!, L = l.layer;
      const x = new Float32Array(L.batch * L.inChannels * L.inHeight * L.inWidth).fill(0.5);
      const w = new Float32Array(L.outChannels * L.inChannels * L.kernel[0] * L.kernel[1]).fill(0.01);
      const dy = new Float32Array(L.batch * L.outChannels * L.outHeight * L.outWidth).fill(0.1);
      const t0 = performance.now();
      c.forward(x, w);
      c.backwardData(dy, w);
      c.backwardWeights(dy, x);
      return { layer: l.name, ms: performance.now() - t0, gflop: 3 * passFlops(L, c.kept.out.length, c.kept.in.length) / 1e9 };
    });
    const median = (runs: ReturnType<typeof step>[]) => runs[0].map((r, i) => ({ ...r, ms: runs.map((x) => x[i].ms).sort((a, b) => a - b)[runs.length >> 1] }));
    const time = () => { step(); return median([step(), step(), step()]); };
    const denseTimes = time();
    for (const l of model.layers) {  // random filter masks at the density, linked through the model
      const keep = Array.from({ length: l.layer.outChannels }, () => (Math.random() < o.density ? 1 : 0));
      compiled.setFilterMask(l.name, keep);
    }
    const maskedTimes = time();
    bar?.done(`timed ${model.layers.length} layers of ${name}`);
    const rows = maskedTimes.map((m, i) => ({ layer: m.layer, maskedMs: m.ms, denseMs: denseTimes[i].ms, gflops: m.gflop / m.ms * 1e3 }));
    if (o.json) return void console.log(JSON.stringify(rows, null, 1));
    for (const r of rows) console.log(`${r.layer.padEnd(12)} ${r.maskedMs.toFixed(2).padStart(8)} ms  dense ${r.denseMs.toFixed(2).padStart(8)} ms  ${(r.denseMs / r.maskedMs).toFixed(2)}x  ${r.gflops.toFixed(0)} GFLOP/s`);
    const m = rows.reduce((s, r) => s + r.maskedMs, 0), d = rows.reduce((s, r) => s + r.denseMs, 0);
    console.log(`total: ${m.toFixed(1)} ms vs ${d.toFixed(1)} ms dense = ${(d / m).toFixed(2)}x`);
  });

program.command('build <model>')
  .description('generate a zoo model or a model file (model.json) ahead of time: C++ for all ISAs and a typed ES module ' +
    '(index.js + index.d.ts) that imports maskacc, then build its addon against the installed maskacc and node-addon-api')
  .option('--out <dir>', 'output folder (default generated/<model name>)')
  .option('--batch <n>', 'batch size of a zoo model (default 64; a model file sets its own)', (v) => Number(v))
  .option('--density <d>', 'expected kept fraction, zoo models (default 1; a model file sets its own)', density)
  .option('--no-compile', 'write the sources only')
  .action(async (target: string, o: { out?: string; batch?: number; density?: number; compile: boolean }) => {
    let model: Model;
    if (target in MODEL_ZOO) {
      model = MODEL_ZOO[target as ZooName]({ batch: o.batch ?? 64, density: o.density ?? 1 });
    } else if (target.endsWith('.json') || existsSync(target)) {
      if (o.batch !== undefined || o.density !== undefined) throw new Error(`--batch and --density apply to zoo models; ${target} sets its own`);
      model = readModelFile(target);
    } else {
      throw new Error(`${target}: neither a zoo model (${Object.keys(MODEL_ZOO).join(', ')}) nor a model file (.json)`);
    }
    const out = o.out ?? join('generated', model.name);
    const scope = ensureEsmScope(out);
    const files = generateModel(model, out);
    const bar = progress();
    bar.done(`${out}: wrote ${files.length} files (${model.layers.length} layers x ${AOT_ISAS.length} ISAs)${scope ? `, and ${scope} ("type": "module")` : ''}`);
    if (!o.compile) return;
    const t0 = performance.now();
    bar.update(`building ${aotTarget(model)} (${files.filter((f) => f.endsWith('.cpp')).length} translation units, ${availableParallelism()} jobs)`);
    const built = await buildAddon(join(out, 'src'), aotTarget(model), basename(files[0]), availableParallelism());
    bar.done(`built ${built} in ${((performance.now() - t0) / 1000).toFixed(1)} s; import ${join(out, 'index.js')}`);
  });

const cache = program.command('cache').description('the kernel cache (MASKACC_CACHE_DIR or the user cache dir)');
cache.command('ls').option('--json', 'print entries as JSON').action((o: { json?: boolean }) => {
  const dir = defaultCacheDir();
  let files: string[] = [];
  try {
    files = readdirSync(dir);
  } catch {
    /* no cache yet */
  }
  const entries = files.filter((f) => f.endsWith('.node')).map((f) => {
    const key = f.slice(0, -'.node'.length);
    let meta: { createdAt?: string; units?: { layer: string }[] } = {};
    try {
      meta = JSON.parse(readFileSync(join(dir, `${key}.json`), 'utf8'));
    } catch {
      /* missing metadata: the cache treats the entry as corrupt and rebuilds it */
    }
    return { key, bytes: statSync(join(dir, f)).size, createdAt: meta.createdAt, layers: (meta.units ?? []).map((u) => u.layer) };
  });
  if (o.json) return void console.log(JSON.stringify({ dir, entries }, null, 1));
  console.log(`${dir}: ${entries.length} kernel addon(s)`);
  for (const e of entries) console.log(`  ${e.key.slice(0, 16)}  ${(e.bytes / 1024).toFixed(0)} KiB  ${e.createdAt ?? '?'}  ${e.layers.length} layer(s)`);
});
cache.command('clean').option('--all', 'also remove the tuning file').action((o: { all?: boolean }) => {
  const dir = defaultCacheDir();
  let removed = 0;
  for (const f of (() => { try { return readdirSync(dir); } catch { return []; } })()) {
    if (f === 'tuning.json' && !o.all) continue;
    rmSync(join(dir, f), { recursive: true, force: true });
    removed++;
  }
  console.log(`${dir}: removed ${removed} entr${removed === 1 ? 'y' : 'ies'}`);
});

// Output piped into `head` and closed early is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));

program.parseAsync().catch((e: Error) => {
  console.error(`maskacc: ${e.message}`);
  process.exit(1);
});
