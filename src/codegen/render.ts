// Renders the handlebars templates into C++: one translation unit per layer kernel, plus the
// addon's module.cpp and CMakeLists.txt. Pure functions of (layer, plan, isa): no I/O but reads.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import { layerText, type ConvLayer } from '../ir/conv.js';
import { describePlan, type ConvPassPlan, type Plan, type WeightsPlan } from '../schedule/plan.js';

export const TEMPLATE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'templates');
/**
 * The include directory of every build: the engine headers (engine/*.hpp), the ISA headers
 * (isa/<isa>.hpp) and layer-abi.hpp live here, in the installed package; a generated translation
 * unit includes them. templateSources() hashes them all into the cache key.
 */
export const HEADER_DIR = TEMPLATE_DIR;
export const GENERATOR_VERSION: string = JSON.parse(
  readFileSync(join(TEMPLATE_DIR, '..', 'package.json'), 'utf8'),
).version;

/** Every template file with its contents: what the cache key hashes, so any edit rebuilds. */
export function templateSources(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, prefix: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
      else out[`${prefix}${e.name}`] = readFileSync(join(dir, e.name), 'utf8');
    }
  };
  walk(TEMPLATE_DIR, '');
  return out;
}

const hb = Handlebars.create();
// Compiled per file content: the file is read on every render (the key hashes what is on disk, so
// an edit in a running process, e.g. bench/ab.ts installing another version, must render too).
const compiled = new Map<string, { source: string; render: HandlebarsTemplateDelegate }>();
function template(name: string): HandlebarsTemplateDelegate {
  const source = readFileSync(join(TEMPLATE_DIR, name), 'utf8');
  let t = compiled.get(name);
  if (t?.source !== source) {
    t = { source, render: hb.compile(source, { noEscape: true, strict: true }) };
    compiled.set(name, t);
  }
  return t.render;
}

/** One layer kernel in an addon: its namespace (the export name), file and compile flags. */
export interface KernelUnit {
  readonly ns: string;
  readonly layer: ConvLayer;
  readonly plan: Plan;
  readonly cxxFlags: readonly string[];
}

export function renderKernel(unit: KernelUnit): string {
  const { layer: l, plan } = unit;
  return template('kernel.cpp.hbs')({
    ns: unit.ns,
    isa: plan.isa,
    generatorVersion: GENERATOR_VERSION,
    layerText: layerText(l),
    planLines: describePlan(plan),
    planJson: JSON.stringify(plan),
    L: {
      N: l.batch,
      C: l.inChannels,
      K: l.outChannels,
      H: l.inHeight,
      W: l.inWidth,
      R: l.kernel[0],
      S: l.kernel[1],
      SH: l.stride[0],
      SW: l.stride[1],
      PH: l.padding[0],
      PW: l.padding[1],
      DH: l.dilation[0],
      DW: l.dilation[1],
      P: l.outHeight,
      Q: l.outWidth,
    },
    // Only the engines this plan uses are included: no dead code in a kernel's translation unit.
    uses: {
      gemm: plan.forward.engine === 'gemm' || plan.backwardData?.engine === 'gemm',
      dot: plan.backwardWeights.engine === 'dot',
      pointwiseWeights: plan.backwardWeights.engine === 'pointwise',
      direct: [plan.forward, plan.backwardData, plan.backwardWeights].some((p) => p?.engine === 'direct'),
    },
    fwd: gemmArgs(plan.forward, false),
    inputGrad: plan.backwardData !== null,
    bwd: plan.backwardData ? gemmArgs(plan.backwardData, true) : {},
    wgt: weightsArgs(plan.backwardWeights),
  });
}

function weightsArgs(d: WeightsPlan) {
  if (d.engine === 'pointwise') return { pointwise: true, mt: d.MT, nv: d.NV, vecIsX: d.vectors === 'channels' };
  return d.engine === 'direct'
    ? {
        direct: true,
        engine: d.tile === 'taps' ? 'DirectWeightsTaps' : 'DirectWeights',
        mt: d.MT,
        nv: d.NV,
        imagesPerBlock: d.imagesPerBlock,
        rowsPerBlock: d.blocking === 'rows' ? d.rowsPerBlock : 0,
        images: d.blocking !== 'rows', // DirectWeights::runImages (the template's branch without rowsPerBlock)
      }
    : {
        direct: false,
        lanes: d.source === 'planes' ? 'PlaneLanes' : 'RowLanes',
        mrw: d.filtersPerTile,
        nt: d.columnsPerTile,
      };
}

function gemmArgs(g: ConvPassPlan, isBackwardData: boolean) {
  if (g.engine === 'direct')
    return { direct: true, mq: g.MQ, nv: g.NV, batch: g.tile === 'images', rowsPerBlock: g.rowsPerBlock };
  const call =
    g.source === 'planes'
      ? `template runPlanes<${g.rowsPerBlock}, ${g.rowTiles}>`
      : g.source === 'pointwise'
        ? `template runPointwise<${g.columnsPerBlock}>`
        : `template runIm2col<${g.columnsPerBlock}, ${g.order === 'image' ? 0 : 1}>`;
  // Backward-data in planes mode is a forward conv with the taps flipped.
  return {
    direct: false,
    mr: g.MR,
    nv: g.NV,
    call,
    flip: isBackwardData && g.source === 'planes' ? 'true' : 'false',
    pointwise: g.source === 'pointwise' ? 'true' : 'false',
    view: g.subsampled ? 'SubsampledDxView' : 'BackwardDataView',
    subsampled: g.subsampled,
  };
}

/** The addon's table of layers for the Node binding (templates/binding.cpp, the same for every addon). */
export function renderModule(units: readonly { ns: string }[], key: string): string {
  return template('module.cpp.hbs')({ units, key });
}

/**
 * The addon's CMakeLists.txt. It holds no machine paths: buildAddon passes the include directories
 * of the installed maskacc and node-addon-api as -D definitions (see build.ts).
 */
export function renderCMakeLists(args: {
  target: string;
  baseFlags: readonly string[];
  linkFlags?: readonly string[];
  units: readonly { file: string; flags: readonly string[] }[];
  /** A kernel addon: links the kernel binding (prebuilt archive or binding.cpp); the fixed addons under native/ have their own. */
  kernelBinding?: boolean;
}): string {
  return template('CMakeLists.txt.hbs')({
    target: args.target,
    baseFlags: args.baseFlags.join(' '),
    linkFlags: (args.linkFlags ?? []).join(' '),
    units: args.units.map((u) => ({ file: u.file, flags: u.flags.join(';') })),
    kernelBinding: args.kernelBinding ?? false,
  });
}

/** The CMakeLists.txt that builds the kernel binding alone, as `<target>.a` (see binding.ts). */
export function renderBindingCMakeLists(args: { target: string; baseFlags: readonly string[] }): string {
  return template('CMakeLists.binding.txt.hbs')({ target: args.target, baseFlags: args.baseFlags.join(' ') });
}
