// The model file format (JSON) for models that are not in the zoo, read into the model DSL:
// file-level checks here (fields, types, unknown keys), layer checks in model() and conv2d().
//
//   { "name": "my-net", "batch": 32, "density": 0.5,
//     "layers": [ { "name": "conv1", "input": null, "spec": { ...ConvSpec }, "group": "g1" }, ... ] }
//
// `batch` (optional) is the batch of every layer whose spec gives none. `density` (optional, in
// (0, 1]) is the expected kept fraction of filters: a spec without `density` gets { out: d, in: d },
// or { out: d, in: 1 } for a layer reading the network input (whose channels are never pruned).

import { readFileSync } from 'node:fs';
import type { ConvSpec } from '../ir/conv.js';
import { SpecError } from '../errors.js';
import { model, type Model, type ModelLayerDef } from './model.js';

const FILE_KEYS = ['name', 'batch', 'density', 'layers'];
const LAYER_KEYS = ['name', 'input', 'spec', 'group'];

/** Read and validate a model file; errors name the file, the layer and the field. */
export function readModelFile(path: string): Model {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SpecError(
      path,
      undefined,
      `a readable model file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new SpecError(path, text.slice(0, 40), `JSON (${(e as Error).message})`);
  }
  return parseModelFile(data, path);
}

/** Validate parsed JSON (`source` names it in errors) and build the Model. */
export function parseModelFile(data: unknown, source = 'model file'): Model {
  if (!isObject(data)) throw new SpecError(source, data, 'an object { name, batch?, density?, layers }');
  unknownKeys(data, FILE_KEYS, source);
  const { name, batch, density, layers } = data;
  if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_-]*$/.test(name)) {
    throw new SpecError(
      `${source}: name`,
      name,
      'a name of letters, digits, - and _ starting with a letter (it names the module and its class)',
    );
  }
  if (batch !== undefined && !(typeof batch === 'number' && Number.isInteger(batch) && batch > 0)) {
    throw new SpecError(`${source}: batch`, batch, 'a positive integer');
  }
  if (density !== undefined && !(typeof density === 'number' && density > 0 && density <= 1)) {
    throw new SpecError(`${source}: density`, density, 'a kept fraction in (0, 1]');
  }
  if (!Array.isArray(layers) || layers.length === 0)
    throw new SpecError(`${source}: layers`, layers, 'a non-empty array of layers');
  const defs = layers.map((l: unknown, i): ModelLayerDef => {
    const where = `${source}: layers[${i}]${isObject(l) && typeof l.name === 'string' ? ` (${l.name})` : ''}`;
    if (!isObject(l)) throw new SpecError(where, l, 'an object { name, input, spec, group? }');
    unknownKeys(l, LAYER_KEYS, where);
    if (typeof l.name !== 'string') throw new SpecError(`${where}.name`, l.name, 'a string');
    if (l.input !== null && typeof l.input !== 'string') {
      throw new SpecError(`${where}.input`, l.input, 'the name of an earlier layer, or null for the network input');
    }
    if (l.group !== undefined && typeof l.group !== 'string')
      throw new SpecError(`${where}.group`, l.group, 'a string (the residual group)');
    if (!isObject(l.spec)) throw new SpecError(`${where}.spec`, l.spec, 'an object (a ConvSpec)');
    const spec = { ...l.spec } as Record<string, unknown>;
    if (spec.batch === undefined && batch !== undefined) spec.batch = batch;
    if (spec.density === undefined && density !== undefined)
      spec.density = { out: density, in: l.input === null ? 1 : density };
    return {
      name: l.name,
      input: l.input,
      spec: spec as unknown as ConvSpec,
      ...(l.group === undefined ? {} : { group: l.group }),
    };
  });
  return model(name, defs);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownKeys(o: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const key of Object.keys(o)) {
    if (!known.includes(key))
      throw new SpecError(`${where}.${key}`, o[key], `no such field (one of ${known.join(', ')})`);
  }
}
