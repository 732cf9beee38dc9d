// IDX reader: files written here byte by byte (big-endian, plain and gzipped) read back exactly,
// and every malformed file fails with an error that says what is wrong.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { IdxFormatError, parseIdx, readIdxFile } from '../../src/data/idx.js';
import { ArgumentError, MaskaccError } from '../../src/errors.js';
import { rng, tempDir } from '../util.js';

const dir = tempDir('maskacc-idx');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The writer is independent of the reader: explicit DataView setters with littleEndian = false.
const TYPES = {
  uint8: { code: 0x08, size: 1, set: (v: DataView, o: number, x: number) => v.setUint8(o, x), Array: Uint8Array },
  int8: { code: 0x09, size: 1, set: (v: DataView, o: number, x: number) => v.setInt8(o, x), Array: Int8Array },
  int16: {
    code: 0x0b,
    size: 2,
    set: (v: DataView, o: number, x: number) => v.setInt16(o, x, false),
    Array: Int16Array,
  },
  int32: {
    code: 0x0c,
    size: 4,
    set: (v: DataView, o: number, x: number) => v.setInt32(o, x, false),
    Array: Int32Array,
  },
  float32: {
    code: 0x0d,
    size: 4,
    set: (v: DataView, o: number, x: number) => v.setFloat32(o, x, false),
    Array: Float32Array,
  },
  float64: {
    code: 0x0e,
    size: 8,
    set: (v: DataView, o: number, x: number) => v.setFloat64(o, x, false),
    Array: Float64Array,
  },
} as const;
type TypeName = keyof typeof TYPES;

function encode(type: TypeName, dims: number[], values: ArrayLike<number>): Uint8Array {
  const t = TYPES[type];
  const header = 4 + 4 * dims.length;
  const bytes = new Uint8Array(header + values.length * t.size);
  const view = new DataView(bytes.buffer);
  bytes.set([0, 0, t.code, dims.length]);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < values.length; i++) t.set(view, header + i * t.size, values[i]);
  return bytes;
}

/** Values that exercise each type's range, sign and byte order. */
function sample(type: TypeName, n: number, seed: number): number[] {
  const r = rng(seed);
  const range: Record<TypeName, [number, number]> = {
    uint8: [0, 255],
    int8: [-128, 127],
    int16: [-32768, 32767],
    int32: [-2147483648, 2147483647],
    float32: [0, 0],
    float64: [0, 0],
  };
  if (type === 'float32') return Array.from(r.normalArray(n)); // exactly representable in float32
  if (type === 'float64') return Array.from({ length: n }, () => (r.next() - 0.5) * 1e6 + r.next() * 1e-9);
  const [lo, hi] = range[type];
  const v = Array.from({ length: n }, () => r.int(lo, hi));
  v[0] = lo;
  v[n - 1] = hi;
  return v;
}

function write(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, none was thrown');
}

describe('readIdxFile', () => {
  const cases: [TypeName, number[]][] = [
    ['uint8', [7]],
    ['int8', [3, 5]],
    ['int16', [2, 3, 4]],
    ['int32', [4, 6]],
    ['float32', [2, 3, 5]],
    ['float64', [9]],
  ];
  for (const [type, dims] of cases) {
    for (const gz of [false, true]) {
      it(`reads ${dims.join('x')} ${type}${gz ? ' gzipped' : ''}`, () => {
        const n = dims.reduce((a, b) => a * b, 1);
        const values = sample(type, n, n + dims.length);
        const raw = encode(type, dims, values);
        const path = write(`${type}-${dims.join('x')}${gz ? '.gz' : ''}`, gz ? gzipSync(raw) : raw);
        const got = readIdxFile(path);
        expect(got.dims).toEqual(dims);
        expect(got.data).toBeInstanceOf(TYPES[type].Array);
        expect(Array.from(got.data)).toEqual(values);
      });
    }
  }

  it('gunzips by magic when the name does not end in .gz', () => {
    const raw = encode('uint8', [2, 2], [1, 2, 3, 4]);
    const got = readIdxFile(write('gz-without-suffix', gzipSync(raw)));
    expect(Array.from(got.data)).toEqual([1, 2, 3, 4]);
  });

  it('returns a copy, not a view of the input bytes', () => {
    const raw = encode('uint8', [3], [5, 6, 7]);
    const got = parseIdx(raw);
    raw[raw.length - 1] = 0;
    expect(Array.from(got.data)).toEqual([5, 6, 7]);
  });

  it('parses a sub-view of a larger buffer (Node Buffer pools)', () => {
    const raw = encode('int16', [2], [-2, 300]);
    const big = new Uint8Array(raw.length + 3);
    big.set(raw, 3);
    expect(Array.from(parseIdx(big.subarray(3)).data)).toEqual([-2, 300]);
  });

  it('reads a file with no elements', () => {
    const got = readIdxFile(write('empty', encode('float32', [0, 28], [])));
    expect(got.dims).toEqual([0, 28]);
    expect(got.data.length).toBe(0);
  });
});

describe('IDX errors', () => {
  const good = encode('int16', [2, 3], [1, 2, 3, 4, 5, 6]);

  it('bad magic', () => {
    const bytes = good.slice();
    bytes[1] = 0x01;
    const e = thrown(() => readIdxFile(write('bad-magic', bytes)));
    expect(e).toBeInstanceOf(IdxFormatError);
    expect((e as IdxFormatError).problem).toBe('magic');
    expect(e.message).toMatch(/bad-magic: bad magic 0x00 0x01 0x0b 0x02; expected 0x00 0x00/);
  });

  it('gzip data given to parseIdx says so', () => {
    const e = thrown(() => parseIdx(gzipSync(good)));
    expect((e as IdxFormatError).problem).toBe('magic');
    expect(e.message).toMatch(/gzip/);
  });

  it('unknown type code', () => {
    const bytes = good.slice();
    bytes[2] = 0x0a;
    const e = thrown(() => parseIdx(bytes));
    expect((e as IdxFormatError).problem).toBe('type');
    expect(e.message).toMatch(/unknown type code 0x0a; expected one of 0x08 uint8, .*0x0e float64/);
  });

  it('truncated header', () => {
    expect((thrown(() => parseIdx(good.subarray(0, 3))) as IdxFormatError).problem).toBe('truncated');
    const e = thrown(() => parseIdx(good.subarray(0, 10)));
    expect((e as IdxFormatError).problem).toBe('truncated');
    expect(e.message).toMatch(/truncated header: 2 dimensions need 12 bytes, the file has 10/);
  });

  it('truncated data', () => {
    const e = thrown(() => readIdxFile(write('short.gz', gzipSync(good.subarray(0, good.length - 1)))));
    expect((e as IdxFormatError).problem).toBe('truncated');
    expect(e.message).toMatch(/short\.gz: truncated data: 2x3 int16 needs 12 bytes after the header, only 11 follow/);
  });

  it('trailing bytes', () => {
    const bytes = new Uint8Array(good.length + 2);
    bytes.set(good);
    const e = thrown(() => parseIdx(bytes));
    expect((e as IdxFormatError).problem).toBe('trailing');
    expect(e.message).toMatch(/2 trailing bytes after the 12 bytes of 2x3 int16 data/);
  });

  it('a .gz name on data that is not gzip', () => {
    const e = thrown(() => readIdxFile(write('plain.gz', good)));
    expect((e as IdxFormatError).problem).toBe('gzip');
    expect(e.message).toMatch(/plain\.gz: not valid gzip data/);
  });

  it('a missing file names the path', () => {
    const path = join(dir, 'nope.idx');
    const e = thrown(() => readIdxFile(path));
    expect(e).toBeInstanceOf(MaskaccError);
    expect(e.message).toContain(`cannot read IDX file ${path}`);
  });

  it('bad arguments', () => {
    expect(thrown(() => parseIdx([0, 0, 8, 0] as unknown as Uint8Array))).toBeInstanceOf(ArgumentError);
    expect((thrown(() => readIdxFile('')) as ArgumentError).argument).toBe('path');
  });
});
