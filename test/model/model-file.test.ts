// The model file format: a valid file maps onto the model DSL (file-level batch and density
// fill the specs), and each mistake fails alone with a SpecError naming the layer and the field.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SpecError } from '../../src/index.js';
import { parseModelFile, readModelFile } from '../../src/model/model-file.js';
import { tempDir } from '../util.js';

const spec = (c: number, k: number) => ({
  inChannels: c,
  outChannels: k,
  inHeight: 8,
  inWidth: 8,
  kernel: 3,
  padding: 1,
});
const valid = () => ({
  name: 'tiny-net',
  batch: 2,
  density: 0.5,
  layers: [
    { name: 'conv1', input: null, spec: spec(3, 8), group: 'g' } as Record<string, unknown>,
    { name: 'conv2', input: 'conv1', spec: spec(8, 8) } as Record<string, unknown>,
    { name: 'conv3', input: 'conv2', spec: { ...spec(8, 8), batch: 4, density: { out: 0.25 } }, group: 'g' } as Record<
      string,
      unknown
    >,
  ],
});

/** Expect `data` to fail with a SpecError whose message matches every pattern. */
function fails(data: unknown, ...patterns: RegExp[]) {
  let err: unknown;
  try {
    parseModelFile(data, 'net.json');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SpecError);
  for (const p of patterns) expect((err as Error).message).toMatch(p);
}

describe('model file', () => {
  it('maps onto the model DSL: file batch and density fill specs that give none', () => {
    const m = parseModelFile(valid());
    expect(m.name).toBe('tiny-net');
    expect(m.layers.map((l) => [l.name, l.input, l.maskGroup])).toEqual([
      ['conv1', null, 'g'],
      ['conv2', 'conv1', 'conv2'],
      ['conv3', 'conv2', 'g'],
    ]);
    expect(m.layers.map((l) => l.layer.batch)).toEqual([2, 2, 4]);
    // The network input's channels are never pruned; a spec's own density wins.
    expect(m.layers.map((l) => l.layer.density)).toEqual([
      { out: 0.5, in: 1 },
      { out: 0.5, in: 0.5 },
      { out: 0.25, in: 1 },
    ]);
  });

  it('reads a file from disk', () => {
    const dir = tempDir('maskacc-model-file');
    try {
      writeFileSync(join(dir, 'net.json'), JSON.stringify(valid()));
      expect(readModelFile(join(dir, 'net.json')).layers).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('model file mistakes, one by one', () => {
  const dir = tempDir('maskacc-model-file');
  it('a missing file', () => {
    expect(() => readModelFile(join(dir, 'nope.json'))).toThrowError(SpecError);
    expect(() => readModelFile(join(dir, 'nope.json'))).toThrowError(/nope\.json.*readable model file \(ENOENT\)/);
  });
  it('a file that is not JSON', () => {
    writeFileSync(join(dir, 'bad.json'), '{ "name": "x", ');
    expect(() => readModelFile(join(dir, 'bad.json'))).toThrowError(SpecError);
    expect(() => readModelFile(join(dir, 'bad.json'))).toThrowError(/bad\.json = .*expected JSON/);
  });
  it('not an object', () => fails([valid()], /net\.json = Array\(1\); expected an object/));
  it('an unknown file-level key', () =>
    fails(
      { ...valid(), denisty: 0.5 },
      /net\.json\.denisty = 0\.5; expected no such field \(one of name, batch, density, layers\)/,
    ));
  it('a missing name', () => fails({ ...valid(), name: undefined }, /net\.json: name = undefined/));
  it('a name that cannot name a module', () => fails({ ...valid(), name: '1 net' }, /net\.json: name = "1 net"/));
  it('a batch that is not a positive integer', () =>
    fails({ ...valid(), batch: 2.5 }, /net\.json: batch = 2\.5; expected a positive integer/));
  it('a batch of the wrong type', () => fails({ ...valid(), batch: '2' }, /net\.json: batch = "2"/));
  it('a density out of range', () =>
    fails({ ...valid(), density: 0 }, /net\.json: density = 0; expected a kept fraction in \(0, 1\]/));
  it('no layers', () =>
    fails({ ...valid(), layers: [] }, /net\.json: layers = Array\(0\); expected a non-empty array/));
  it('layers that are not an array', () =>
    fails({ ...valid(), layers: { conv1: {} } }, /net\.json: layers = .*expected a non-empty array/));
  it('a layer that is not an object', () => {
    const f = valid();
    f.layers[1] = 'conv2' as never;
    fails(f, /net\.json: layers\[1\] = "conv2"; expected an object/);
  });
  it('an unknown layer key', () => {
    const f = valid();
    f.layers[1] = { ...f.layers[1], inputs: 'conv1' };
    fails(f, /net\.json: layers\[1\] \(conv2\)\.inputs = "conv1"; expected no such field/);
  });
  it('a layer name of the wrong type', () => {
    const f = valid();
    f.layers[0] = { ...f.layers[0], name: 7 };
    fails(f, /net\.json: layers\[0\]\.name = 7; expected a string/);
  });
  it('a missing input (it must be null for the network input)', () => {
    const f = valid();
    const { input: _input, ...rest } = f.layers[0];
    f.layers[0] = rest;
    fails(f, /layers\[0\] \(conv1\)\.input = undefined; expected the name of an earlier layer, or null/);
  });
  it('a group of the wrong type', () => {
    const f = valid();
    f.layers[2] = { ...f.layers[2], group: 1 };
    fails(f, /layers\[2\] \(conv3\)\.group = 1; expected a string/);
  });
  it('a missing spec', () => {
    const f = valid();
    f.layers[1] = { name: 'conv2', input: 'conv1' };
    fails(f, /layers\[1\] \(conv2\)\.spec = undefined; expected an object/);
  });
  it('a spec with a typo names the layer and the field', () => {
    const f = valid();
    f.layers[1] = { ...f.layers[1], spec: { ...spec(8, 8), kernal: 3 } };
    fails(f, /model tiny-net, layer 1 \(conv2\): conv spec: kernal = 3; expected no such field/);
  });
  it('a spec with a bad value names the layer and the field', () => {
    const f = valid();
    f.layers[2] = { ...f.layers[2], spec: { ...spec(8, 8), stride: 0 } };
    fails(f, /model tiny-net, layer 2 \(conv3\): conv spec: stride/);
  });
  it('a spec without batch when the file gives none', () => {
    const { batch: _batch, ...f } = valid();
    fails(f, /layer 0 \(conv1\): conv spec: batch = undefined/);
  });
  it('an input that names no earlier layer', () => {
    const f = valid();
    f.layers[1] = { ...f.layers[1], input: 'conv3' };
    fails(f, /layer 1 \(conv2\): input = "conv3"/);
  });
  it('channels that do not match the input layer', () => {
    const f = valid();
    f.layers[1] = { ...f.layers[1], spec: spec(4, 8) };
    fails(f, /layer 1 \(conv2\): spec\.inChannels = 4; expected 8/);
  });
  it('a duplicate layer name', () => {
    const f = valid();
    f.layers[2] = { ...f.layers[2], name: 'conv1' };
    fails(f, /layer 2 \(conv1\): name = "conv1"; expected a unique non-empty name/);
  });
});
