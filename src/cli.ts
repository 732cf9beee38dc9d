// The maskacc command line: compile a spec, explain the plan of a spec or zoo model, time a zoo
// model at a density, build a model ahead of time, list or clean the kernel cache, check the
// toolchain. `--json` on every command that prints data; progress goes to stderr.
// Exit codes: 0 done, 1 failed, 2 usage error (unknown command or option, bad argument).

import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import {
  compileMaskedConvs,
  compileModel,
  conv2d,
  MODEL_ZOO,
  passFlops,
  type ConvLayer,
  type ConvSpec,
  type IsaName,
} from './index.js';
import { defaultCacheDir } from './codegen/cache.js';
import { choosePlan, describePlan } from './schedule/plan.js';
import { ISA_PREFERENCE, ISAS, hostIsa, supportedIsas } from './schedule/isa.js';
import { layerText } from './ir/conv.js';
import type { Model } from './model/model.js';
import { medianTiming, stepBuffers, timeStep } from './model/step.js';
import { AOT_ISAS, aotTarget, ensureEsmScope, generateModel } from './model/aot.js';
import { readModelFile } from './model/model-file.js';
import { buildAddon } from './codegen/build.js';
import { diagnoseToolchain, formatToolchain } from './codegen/toolchain.js';
import { availableParallelism } from 'node:os';
import { progress } from './codegen/progress.js';

type ZooName = keyof typeof MODEL_ZOO;

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

// `maskacc bench`: timed steps per mask setting, at least 3 and about STEPS_MS of them.
const STEPS_MS = 500,
  STEPS_MAX = 200;

/** n flags, exactly max(1, round(density * n)) of them set, at random places. */
function randomMask(n: number, density: number): Uint8Array {
  const order = Array.from({ length: n }, (_, i) => i);
  const keep = Math.min(n, Math.max(1, Math.round(density * n)));
  const mask = new Uint8Array(n);
  for (let i = 0; i < keep; i++) {
    const j = i + Math.floor(Math.random() * (n - i));
    [order[i], order[j]] = [order[j], order[i]];
    mask[order[i]] = 1;
  }
  return mask;
}

const program = new Command('maskacc')
  .description('mask-aware conv2d kernel compiler for filter pruning')
  .version(version)
  // Throw instead of exiting, so usage errors exit with 2 (below); subcommands inherit this.
  .exitOverride();

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
function loadTarget(
  target: string,
  d: number,
  batch?: number,
): { name: string; specs: (ConvSpec | ConvLayer)[]; model?: Model } {
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

program
  .command('compile <spec.json>')
  .description('compile one ConvSpec (or an array of them) into the kernel cache')
  .option('--isa <isa>', 'auto | avx512 | avx2 | scalar', isaOption, 'auto')
  .option('--threads <n>', 'threads per call', (v) => Number(v))
  .option('--json', 'print the cache key and plans as JSON')
  .action(async (file: string, o: { isa: IsaName | 'auto'; threads?: number; json?: boolean }) => {
    const { specs } = loadTarget(file, 1);
    const t0 = performance.now();
    const convs = await compileMaskedConvs(specs, {
      isa: o.isa,
      threads: o.threads,
      respecialize: false,
      verbose: !o.json,
    });
    const seconds = (performance.now() - t0) / 1000;
    if (o.json)
      console.log(JSON.stringify({ key: convs[0].cacheKey, seconds, plans: convs.map((c) => c.plan) }, null, 1));
    else convs.forEach((c) => console.log(`${c.explain()}\n`));
  });

program
  .command('explain <target>')
  .description('print the plan the scheduler picks for a spec file or a zoo model (nothing is compiled)')
  .option('--density <d>', 'expected kept fraction of filters and channels', density, 1)
  .option('--isa <isa>', 'auto | avx512 | avx2 | scalar', isaOption, 'auto')
  .option('--threads <n>', 'threads the plans are blocked for (kernels run with any count)', (v) => Number(v), 2)
  .option('--json', 'print the plans as JSON')
  .action((target: string, o: { density: number; isa: IsaName | 'auto'; threads: number; json?: boolean }) => {
    const isa = hostIsa(o.isa === 'auto' ? supportedIsas()[0] : o.isa);
    const { specs, model } = loadTarget(target, o.density);
    const rows = specs.map((s, i) => ({
      layer: model?.layers[i].name ?? String(i),
      spec: conv2d(s as ConvSpec),
      plan: choosePlan(conv2d(s as ConvSpec), isa, o.threads),
    }));
    if (o.json)
      console.log(
        JSON.stringify(
          rows.map((r) => ({ layer: r.layer, plan: r.plan })),
          null,
          1,
        ),
      );
    else
      for (const r of rows) console.log(`${r.layer}: ${layerText(r.spec)}\n  ${describePlan(r.plan).join('\n  ')}\n`);
  });

program
  .command('bench <model>')
  .description('time a training step of a zoo model with random linked masks against full masks')
  .option('--density <d>', 'kept fraction of filters per layer', density, 0.5)
  .option('--batch <n>', 'batch size', (v) => Number(v), 64)
  .option('--json', 'print the per-layer times as JSON')
  .action(async (name: string, o: { density: number; batch: number; json?: boolean }) => {
    if (!(name in MODEL_ZOO)) throw new Error(`${name}: not a model (${Object.keys(MODEL_ZOO).join(', ')})`);
    const start = performance.now();
    const model = MODEL_ZOO[name as ZooName]({ density: o.density, batch: o.batch });
    const compiled = await compileModel(model, { respecialize: false, verbose: !o.json });
    const bar = o.json ? undefined : progress();
    // A training step as a framework runs it: every layer's three passes in order, on buffers
    // allocated once outside the timed steps; the step's wall time and the per-layer sum both count.
    const buffers = stepBuffers(model);
    const timed = { wallMs: 0, systemUs: 0 }; // the timed steps' share of system time (page faults)
    const stepCounts: number[] = [];
    const time = (label: string) => {
      bar?.update(`timing ${name} (${label}): warm-up`);
      const warm = timeStep(compiled, buffers).stepMs;
      // At least 3 steps and ~0.5 s of them: the medians of 3 steps of a millisecond (ResNet-20
      // at batch 1) moved by a third between runs.
      const steps = Math.max(3, Math.min(STEPS_MAX, Math.ceil(STEPS_MS / warm)));
      const [t0, cpu0] = [performance.now(), process.cpuUsage()];
      const runs = Array.from({ length: steps }, (_, i) => {
        bar?.update(`timing ${name} (${label}): step ${i + 1}/${steps}`);
        return timeStep(compiled, buffers);
      });
      stepCounts.push(steps);
      timed.wallMs += performance.now() - t0;
      timed.systemUs += process.cpuUsage(cpu0).system;
      return medianTiming(runs);
    };
    const denseTimes = time('full masks');
    for (const l of model.layers) {
      // Exactly round(density x K) filters per layer (at least one), which ones at random, linked
      // through the model: a coin flip per filter moved the step's kept FLOPs, and its time, by
      // +-15% from run to run on ResNet-56.
      compiled.setFilterMask(l.name, randomMask(l.layer.outChannels, o.density));
    }
    const maskedTimes = time('masked');
    bar?.done(`timed ${model.layers.length} layers of ${name}`);
    const sum = (ms: number[]) => ms.reduce((a, b) => a + b, 0);
    const rows = maskedTimes.layers.map((m, i) => {
      const L = model.layers[i].layer,
        c = compiled.convs.get(m.name)!;
      const maskedMs = sum(m.ms),
        gflop = (3 * passFlops(L, c.kept.out.length, c.kept.in.length)) / 1e9;
      return {
        layer: m.name,
        maskedMs,
        denseMs: sum(denseTimes.layers[i].ms),
        passesMs: m.ms,
        gflops: (gflop / maskedMs) * 1e3,
      };
    });
    const m = sum(rows.map((r) => r.maskedMs)),
      d = sum(rows.map((r) => r.denseMs));
    if (o.json) {
      return void console.log(
        JSON.stringify(
          {
            layers: rows,
            layerSum: { maskedMs: m, denseMs: d },
            step: { maskedMs: maskedTimes.stepMs, denseMs: denseTimes.stepMs },
          },
          null,
          1,
        ),
      );
    }
    for (const r of rows)
      console.log(
        `${r.layer.padEnd(12)} ${r.maskedMs.toFixed(2).padStart(8)} ms  dense ${r.denseMs.toFixed(2).padStart(8)} ms  ${(r.denseMs / r.maskedMs).toFixed(2)}x  ${r.gflops.toFixed(0)} GFLOP/s`,
      );
    console.log(`per-layer total: ${m.toFixed(1)} ms vs ${d.toFixed(1)} ms dense = ${(d / m).toFixed(2)}x`);
    console.log(
      `full step:       ${maskedTimes.stepMs.toFixed(1)} ms vs ${denseTimes.stepMs.toFixed(1)} ms dense = ${(denseTimes.stepMs / maskedTimes.stepMs).toFixed(2)}x` +
        ` (all layers' passes in order, buffers reused; medians of ${stepCounts.join(' and ')} steps after 1 warm-up)`,
    );
    const all = process.cpuUsage();
    console.log(
      `system time: ${(timed.systemUs / 1e6).toFixed(1)} s in the timed steps (${((100 * timed.systemUs) / 1e3 / timed.wallMs).toFixed(1)}% of their wall time), ` +
        `${(all.system / 1e6).toFixed(1)} s in all (${((100 * all.system) / 1e3 / (performance.now() - start)).toFixed(1)}% of the command's wall time; ` +
        `allocating and filling the step's buffers faults in their pages once)`,
    );
  });

program
  .command('build <model>')
  .description(
    'generate a zoo model or a model file (model.json) ahead of time: C++ for all ISAs and a typed ES module ' +
      '(index.js + index.d.ts) that imports maskacc, then build its addon against the installed maskacc and node-addon-api',
  )
  .option('--out <dir>', 'output folder (default generated/<model name>)')
  .option('--batch <n>', 'batch size of a zoo model (default 64; a model file sets its own)', (v) => Number(v))
  .option('--density <d>', 'expected kept fraction, zoo models (default 1; a model file sets its own)', density)
  .option('--no-compile', 'write the sources only')
  .option('--json', 'print the output folder, the files written and the built addon as JSON')
  .action(
    async (target: string, o: { out?: string; batch?: number; density?: number; compile: boolean; json?: boolean }) => {
      let model: Model;
      if (target in MODEL_ZOO) {
        model = MODEL_ZOO[target as ZooName]({ batch: o.batch ?? 64, density: o.density ?? 1 });
      } else if (target.endsWith('.json') || existsSync(target)) {
        if (o.batch !== undefined || o.density !== undefined)
          throw new Error(`--batch and --density apply to zoo models; ${target} sets its own`);
        model = readModelFile(target);
      } else {
        throw new Error(
          `${target}: neither a zoo model (${Object.keys(MODEL_ZOO).join(', ')}) nor a model file (.json)`,
        );
      }
      const out = o.out ?? join('generated', model.name);
      const scope = ensureEsmScope(out);
      const files = await generateModel(model, out);
      const bar = progress();
      bar.done(
        `${out}: wrote ${files.length} files (${model.layers.length} layers x ${AOT_ISAS.length} ISAs)${scope ? `, and ${scope} ("type": "module")` : ''}`,
      );
      let built: string | undefined;
      if (o.compile) {
        const t0 = performance.now();
        bar.update(
          `building ${aotTarget(model)} (${files.filter((f) => /\/u\d+_\w+\.cpp$/.test(f)).length} layer kernels, ${availableParallelism()} jobs)`,
        );
        built = await buildAddon(join(out, 'src'), aotTarget(model), basename(files[0]), availableParallelism());
        bar.done(
          `built ${built} in ${((performance.now() - t0) / 1000).toFixed(1)} s; import ${join(out, 'index.js')}`,
        );
      }
      if (o.json) console.log(JSON.stringify({ out, files, addon: built ?? null }, null, 1));
      else console.log(built ?? `${out}: sources only (--no-compile)`);
    },
  );

program
  .command('doctor')
  .description("check the toolchain (C++17 + OpenMP compiler, cmake, make), the CPU's ISAs and the cache directory")
  .option('--json', 'print the findings as JSON')
  .action((o: { json?: boolean }) => {
    const report = diagnoseToolchain();
    if (o.json) console.log(JSON.stringify(report, null, 1));
    else
      console.log(
        [
          ...formatToolchain(report),
          report.ok ? 'maskacc can build kernels here' : 'maskacc cannot build kernels here yet',
        ].join('\n'),
      );
    if (!report.ok) process.exitCode = 1;
  });

const cache = program.command('cache').description('the kernel cache (MASKACC_CACHE_DIR or the user cache dir)');
cache
  .command('ls')
  .option('--json', 'print entries as JSON')
  .action((o: { json?: boolean }) => {
    const dir = defaultCacheDir();
    let files: string[] = [];
    try {
      files = readdirSync(dir);
    } catch {
      /* no cache yet */
    }
    const entries = files
      .filter((f) => f.endsWith('.node'))
      .map((f) => {
        const key = f.slice(0, -'.node'.length);
        let meta: { createdAt?: string; units?: { layer: string }[] } = {};
        try {
          meta = JSON.parse(readFileSync(join(dir, `${key}.json`), 'utf8'));
        } catch {
          /* missing metadata: the cache treats the entry as corrupt and rebuilds it */
        }
        return {
          key,
          bytes: statSync(join(dir, f)).size,
          createdAt: meta.createdAt,
          layers: (meta.units ?? []).map((u) => u.layer),
        };
      });
    if (o.json) return void console.log(JSON.stringify({ dir, entries }, null, 1));
    console.log(`${dir}: ${entries.length} kernel addon(s)`);
    for (const e of entries)
      console.log(
        `  ${e.key.slice(0, 16)}  ${(e.bytes / 1024).toFixed(0)} KiB  ${e.createdAt ?? '?'}  ${e.layers.length} layer(s)`,
      );
  });
cache
  .command('clean')
  .option('--all', 'also remove the tuning file')
  .option('--json', 'print what was removed as JSON')
  .action((o: { all?: boolean; json?: boolean }) => {
    const dir = defaultCacheDir();
    let removed = 0;
    for (const f of (() => {
      try {
        return readdirSync(dir);
      } catch {
        return [];
      }
    })()) {
      if (f === 'tuning.json' && !o.all) continue;
      rmSync(join(dir, f), { recursive: true, force: true });
      removed++;
    }
    if (o.json) return void console.log(JSON.stringify({ dir, removed }));
    console.log(`${dir}: removed ${removed} entr${removed === 1 ? 'y' : 'ies'}`);
  });

// Output piped into `head` and closed early is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));

program.parseAsync().catch((e: Error) => {
  if (e instanceof CommanderError) {
    // commander printed its message already; --help and --version are not errors.
    const done =
      ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(e.code) && e.exitCode === 0;
    process.exit(done ? 0 : 2);
  }
  console.error(`maskacc: ${e.message}`);
  process.exit(1);
});
