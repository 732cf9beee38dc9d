// Ahead-of-time generation for fixed models: C++ for every unique layer in every ISA (one addon,
// the runtime picks the ISA the CPU has) and a typed module (index.js + index.d.ts, written as TS
// with ts-morph and emitted in memory) that imports maskacc by package name, so it runs in plain
// JavaScript projects. The sources are deterministic (no machine paths, no compiler id), so
// generated/ can be diffed; the build passes the installed headers' paths (see build.ts).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Model } from './model.js';
import { AOT_ISAS, aotPlan } from '../schedule/aot-plan.js';
import type { ConvLayer } from '../ir/conv.js';
import { cacheKey } from '../codegen/cache-key.js';
import { writeAddonSources } from '../codegen/compile.js';
import { GENERATOR_VERSION, templateSources, type KernelUnit } from '../codegen/render.js';
import { MaskaccError } from '../errors.js';

export function aotTarget(model: Model): string {
  return `maskacc_${model.name.replace(/[^a-zA-Z0-9]/g, '_')}`;
}

export { AOT_ISAS };

/**
 * Write `outDir/src` (C++, CMakeLists, package.json for cmake-js) and `outDir/index.js` with its
 * `index.d.ts`; returns the file list, relative to `outDir`.
 */
export async function generateModel(model: Model, outDir: string): Promise<string[]> {
  const unique = new Map<string, { id: string; layer: ConvLayer }>();
  const unitOfLayer = model.layers.map((l) => {
    const k = JSON.stringify(l.layer);
    if (!unique.has(k)) unique.set(k, { id: `u${unique.size}`, layer: l.layer });
    return unique.get(k)!.id;
  });
  const units: KernelUnit[] = [...unique.values()].flatMap(({ id, layer }) =>
    AOT_ISAS.map((isa) => ({ ns: `${id}_${isa}`, layer, plan: aotPlan(layer, isa), cxxFlags: [] })),
  );
  const key = cacheKey({ generator: GENERATOR_VERSION, templates: templateSources(), units });
  const target = aotTarget(model);
  const src = join(outDir, 'src');
  const { layerFiles, unityFiles } = writeAddonSources(src, units, key, target);
  writeFileSync(
    join(src, 'package.json'),
    JSON.stringify({ name: target, private: true, binary: { napi_versions: [8] } }),
  );
  const module = await typedModule(model, unitOfLayer, target, key);
  writeFileSync(join(outDir, 'index.js'), module.js);
  writeFileSync(join(outDir, 'index.d.ts'), module.dts);
  return [...layerFiles, ...unityFiles, 'module.cpp', 'CMakeLists.txt', 'package.json']
    .map((f) => join('src', f))
    .concat('index.js', 'index.d.ts');
}

/** A layer name as a property name: quoted unless it is an identifier (model files allow conv-1). */
function propertyName(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
}

function className(model: Model): string {
  return model.name
    .split(/[^a-zA-Z0-9]/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');
}

/**
 * The typed module: layer shapes as const data and a class with one typed accessor per layer,
 * written as TS and emitted as ES module JS plus declarations (the types carry the shapes).
 */
async function typedModule(
  model: Model,
  unitOfLayer: string[],
  target: string,
  key: string,
): Promise<{ js: string; dts: string }> {
  // Loaded here, not at the top: only generation needs ts-morph (and its TypeScript compiler).
  const { ModuleKind, ModuleResolutionKind, Project, ScriptTarget, VariableDeclarationKind } = await import('ts-morph');
  const project = new Project({
    useInMemoryFileSystem: true,
    compilerOptions: {
      target: ScriptTarget.ES2022,
      module: ModuleKind.ES2022,
      moduleResolution: ModuleResolutionKind.Bundler,
      declaration: true,
      strict: true,
      noResolve: true,
      skipLibCheck: true,
      newLine: 1 /* LF */,
    },
  });
  const file = project.createSourceFile('/index.ts');
  const name = className(model);
  file.addImportDeclaration({
    moduleSpecifier: 'maskacc',
    namedImports: ['loadGeneratedModel', 'type GeneratedLoadOptions', 'type MaskedConv'],
  });
  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['Every layer: its normalized shape (the types carry the sizes), its mask links and its compiled unit.'],
    declarations: [
      {
        name: 'layers',
        initializer: `{\n${model.layers
          .map(
            (l, i) =>
              `  ${propertyName(l.name)}: ${JSON.stringify({
                unit: unitOfLayer[i],
                input: l.input,
                maskGroup: l.maskGroup,
                spec: l.layer,
              })},`,
          )
          .join('\n')}\n} as const`,
      },
    ],
  });
  file.addInterface({
    name: `${name}Layers`,
    isExported: true,
    properties: model.layers.map((l) => ({
      name: propertyName(l.name),
      isReadonly: true,
      type: `MaskedConv & { readonly spec: (typeof layers)[${JSON.stringify(l.name)}]["spec"] }`,
    })),
  });
  file.addClass({
    name,
    isExported: true,
    docs: [`${model.name}: load the prebuilt addon (no compiler needed) and get one MaskedConv per layer.`],
    ctors: [{ scope: undefined, parameters: [{ name: 'layers', isReadonly: true, type: `${name}Layers` }] }],
    methods: [
      {
        name: 'load',
        isStatic: true,
        isAsync: true,
        parameters: [{ name: 'options', type: 'GeneratedLoadOptions', initializer: '{}' }],
        returnType: `Promise<${name}>`,
        statements: [
          `return new ${name}((await loadGeneratedModel(import.meta.url, '${target}', layers, options)) as unknown as ${name}Layers);`,
        ],
      },
    ],
  });
  const header = [
    `// Generated by maskacc ${GENERATOR_VERSION} (\`maskacc build ${model.name}\`); do not edit by hand.`,
    `// ${model.layers.length} conv layers, ${new Set(unitOfLayer).size} unique, kernels for ${AOT_ISAS.join(', ')}; addon key ${key.slice(0, 16)}.`,
    `// Load with \`await ${name}.load()\` once \`maskacc build\` has built src/build/Release (no compiler needed then).`,
  ].join('\n');
  const emitted = project.emitToMemory().getFiles();
  const text = (ext: string) => `${header}\n${emitted.find((f) => f.filePath.endsWith(ext))!.text}`;
  return { js: text('/index.js'), dts: text('/index.d.ts') };
}

/**
 * The generated index.js is an ES module. When the nearest package.json above `outDir` does not
 * say `"type": "module"` (a CommonJS project), write `outDir/package.json` saying so; returns its
 * path, or undefined when nothing was needed. Refuses to replace a package.json of the user's.
 */
export function ensureEsmScope(outDir: string): string | undefined {
  const own = join(resolve(outDir), 'package.json');
  for (let dir = resolve(outDir); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      const type = (JSON.parse(readFileSync(pkg, 'utf8')) as { type?: unknown }).type;
      if (type === 'module') return undefined;
      if (pkg === own)
        throw new MaskaccError(
          `${pkg}: the generated index.js is an ES module; set "type": "module" here or choose another --out`,
        );
      break;
    }
    if (dirname(dir) === dir) break;
  }
  mkdirSync(dirname(own), { recursive: true });
  writeFileSync(own, `${JSON.stringify({ type: 'module' }, null, 2)}\n`);
  return own;
}
