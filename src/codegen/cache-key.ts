// The single place where an artifact-cache key is computed: SHA-256 over a canonical JSON of every input that changes the binary.
// Canonical = object keys sorted recursively, arrays in order, and only plain JSON data, so equal inputs always give equal keys.

import { createHash } from 'node:crypto';

/**
 * Hex SHA-256 of `canonicalJson(parts)`. Callers pass everything that changes the built binary
 * (generator version, template contents, normalized spec, plan, ISA, compiler id/version, flags).
 */
export function cacheKey(parts: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(parts), 'utf8').digest('hex');
}

/**
 * Deterministic JSON text of plain data. Throws on anything JSON would drop or mangle silently
 * (undefined, functions, NaN/Infinity, Map, typed arrays, cycles), because a silently dropped
 * field would make two different kernels share a key and load the wrong binary.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, 'parts', new Set());
}

function encode(v: unknown, at: string, stack: Set<object>): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) reject(at, String(v));
      // -0 and 0 print the same through JSON.stringify; they never change generated code.
      return JSON.stringify(v);
    case 'undefined':
      return reject(at, 'undefined');
    case 'function':
      return reject(at, 'a function');
    case 'symbol':
      return reject(at, 'a symbol');
    case 'bigint':
      return reject(at, 'a bigint', 'use a number or a decimal string');
  }
  if (v === null) return 'null';
  const obj = v as object;
  if (stack.has(obj)) reject(at, 'a circular reference');
  stack.add(obj);
  try {
    if (Array.isArray(obj)) {
      const items: string[] = [];
      // An index loop (not map) so holes in sparse arrays are seen as undefined and rejected.
      for (let i = 0; i < obj.length; i++) items.push(encode(obj[i], `${at}[${i}]`, stack));
      return `[${items.join(',')}]`;
    }
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      const name = ArrayBuffer.isView(obj) ? obj.constructor.name : (proto?.constructor?.name ?? 'object');
      reject(
        at,
        `a ${name}`,
        ArrayBuffer.isView(obj) ? 'use Array.from(...)' : 'convert it to a plain object or array',
      );
    }
    const rec = obj as Record<string, unknown>;
    const fields = Object.keys(rec)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${encode(rec[k], `${at}${propPath(k)}`, stack)}`);
    return `{${fields.join(',')}}`;
  } finally {
    stack.delete(obj);
  }
}

function propPath(k: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
}

function reject(
  at: string,
  what: string,
  hint = 'cache key parts must be plain JSON data (null, boolean, finite number, string, array, plain object)',
): never {
  throw new TypeError(`cacheKey: ${at} is ${what}; ${hint}`);
}
