// Reader for the IDX format of MNIST and Fashion-MNIST: magic 0x00 0x00 <type code> <ndims>,
// ndims big-endian uint32 dimensions, then the elements row-major and big-endian.
// Every malformed file fails with an IdxFormatError that says what is wrong and where.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ArgumentError, MaskaccError } from '../errors.js';

/** The element arrays an IDX file can hold, one per type code. */
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** A parsed IDX file: its dimensions (outermost first) and its elements in row-major order. */
export interface IdxArray {
  dims: number[];
  data: IdxData;
}

/** How one IDX type code is stored and decoded. */
export interface IdxType {
  readonly name: string;
  readonly bytes: number;
  /** Allocates the result array of n elements. */
  readonly alloc: (n: number) => IdxData;
  /** Reads one big-endian element; DataView does the byte swap on little-endian hosts. */
  readonly read: (view: DataView, offset: number) => number;
}

/** The type codes of the IDX format. */
export const IDX_TYPES: ReadonlyMap<number, IdxType> = new Map<number, IdxType>([
  [0x08, { name: 'uint8', bytes: 1, alloc: (n) => new Uint8Array(n), read: (v, o) => v.getUint8(o) }],
  [0x09, { name: 'int8', bytes: 1, alloc: (n) => new Int8Array(n), read: (v, o) => v.getInt8(o) }],
  [0x0b, { name: 'int16', bytes: 2, alloc: (n) => new Int16Array(n), read: (v, o) => v.getInt16(o) }],
  [0x0c, { name: 'int32', bytes: 4, alloc: (n) => new Int32Array(n), read: (v, o) => v.getInt32(o) }],
  [0x0d, { name: 'float32', bytes: 4, alloc: (n) => new Float32Array(n), read: (v, o) => v.getFloat32(o) }],
  [0x0e, { name: 'float64', bytes: 8, alloc: (n) => new Float64Array(n), read: (v, o) => v.getFloat64(o) }],
]);

/** What is wrong with an IDX file. */
export type IdxProblem = 'magic' | 'type' | 'truncated' | 'trailing' | 'gzip';

/** A malformed IDX file: `problem` says which check failed, `source` names the file (or 'IDX data'). */
export class IdxFormatError extends MaskaccError {
  constructor(
    readonly source: string,
    readonly problem: IdxProblem,
    detail: string,
  ) {
    super(`${source}: ${detail}`);
  }
}

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

/**
 * Parses the bytes of an (uncompressed) IDX file.
 *
 * @param bytes - the whole file; it must hold exactly the header and the data the header announces.
 * @param source - names the data in error messages (readIdxFile passes the path).
 * @returns the dimensions and a fresh array (never a view of `bytes`) of the type the file declares.
 * @throws ArgumentError if `bytes` is not a Uint8Array; IdxFormatError on a bad magic, an unknown
 *   type code, a truncated header or data, or trailing bytes.
 */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  if (!(bytes instanceof Uint8Array)) throw new ArgumentError('bytes', bytes, 'a Uint8Array');
  const fail = (problem: IdxProblem, detail: string): never => {
    throw new IdxFormatError(source, problem, detail);
  };
  if (bytes.length < 4) fail('truncated', `truncated header: ${bytes.length} bytes, the magic alone needs 4`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const seen = Array.from(bytes.subarray(0, 4), hex).join(' ');
    const gz = bytes[0] === 0x1f && bytes[1] === 0x8b ? ' (this is gzip data: use readIdxFile or gunzip it first)' : '';
    fail('magic', `bad magic ${seen}; expected 0x00 0x00 <type code> <ndims>${gz}`);
  }
  const type = IDX_TYPES.get(bytes[2]);
  if (type === undefined) {
    const known = [...IDX_TYPES].map(([code, t]) => `${hex(code)} ${t.name}`).join(', ');
    fail('type', `unknown type code ${hex(bytes[2])}; expected one of ${known}`);
  }
  const { name, bytes: size, alloc, read } = type!;
  const ndims = bytes[3];
  const header = 4 + 4 * ndims;
  if (bytes.length < header) {
    fail('truncated', `truncated header: ${ndims} dimensions need ${header} bytes, the file has ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, d) => a * d, 1);
  const dataBytes = count * size;
  const shape = `${dims.join('x') || 'scalar'} ${name}`;
  const have = bytes.length - header;
  if (have < dataBytes)
    fail('truncated', `truncated data: ${shape} needs ${dataBytes} bytes after the header, only ${have} follow`);
  if (have > dataBytes)
    fail('trailing', `${have - dataBytes} trailing bytes after the ${dataBytes} bytes of ${shape} data`);

  const data = alloc(count);
  if (size === 1) {
    // One-byte types have no byte order: copy the bytes as they are.
    new Uint8Array(data.buffer).set(bytes.subarray(header));
  } else {
    for (let i = 0, o = header; i < count; i++, o += size) data[i] = read(view, o);
  }
  return { dims, data };
}

/**
 * Reads an IDX file, gunzipping it first if its name ends in `.gz` or its bytes start with the
 * gzip magic (0x1f 0x8b), as the MNIST distributions ship them.
 *
 * @throws MaskaccError naming the path if the file cannot be read; IdxFormatError if it is not
 *   valid gzip (problem 'gzip') or not a valid IDX file (see parseIdx).
 */
export function readIdxFile(path: string): IdxArray {
  if (typeof path !== 'string' || path === '') throw new ArgumentError('path', path, 'a file path');
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new MaskaccError(`cannot read IDX file ${path}: ${(e as Error).message}`);
  }
  if (path.endsWith('.gz') || (bytes[0] === 0x1f && bytes[1] === 0x8b)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new IdxFormatError(path, 'gzip', `not valid gzip data: ${(e as Error).message}`);
    }
  }
  return parseIdx(bytes, path);
}
