// Builds (or fetches from the kernel cache) the runtime addon (native/runtime): the process-wide
// pool of output arrays. It creates its arrays through the V8 API, so it needs the V8 headers of
// the running Node (shipped next to it in include/node by the official and Debian packages) and
// is keyed by the Node version; without those headers there is no pool (callers allocate).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadNativeAddon } from './native-addon.js';

export interface PoolStats {
  /** Bytes of free blocks kept for reuse (at most maxKeptBytes). */
  keptBytes: number;
  /** Bytes handed out whose arrays have not been collected yet. */
  liveBytes: number;
  maxKeptBytes: number;
  hugePages: boolean;
  poison: boolean;
  /** Takes served by a free block of the size class. */
  hits: number;
  /** Takes (2 MiB and up) served by a free block of another size class: split, or grown keeping its pages. */
  recycled: number;
  /** Takes served by fresh memory. */
  misses: number;
  /** Blocks returned to the system because the pool was at its bound. */
  dropped: number;
}

/** The addon's functions (documented in native/runtime/module.cpp). */
export interface RuntimeAddon {
  take(length: number, leased: boolean, noFresh?: boolean): Float32Array | undefined;
  stats(): PoolStats;
  configure(o: { maxKeptBytes?: number; hugePages?: boolean; poison?: boolean }): void;
  trim(): void;
}

/** include/node of the running Node when it holds v8.h of exactly this version, else undefined. */
export function nodeIncludeDir(): string | undefined {
  const dir = join(dirname(process.execPath), '..', 'include', 'node');
  try {
    if (!existsSync(join(dir, 'v8.h'))) return undefined;
    const h = readFileSync(join(dir, 'node_version.h'), 'utf8');
    const v = ['MAJOR', 'MINOR', 'PATCH']
      .map((p) => new RegExp(`#define NODE_${p}_VERSION (\\d+)`).exec(h)?.[1])
      .join('.');
    return `v${v}` === process.version ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The runtime addon, built once per cache and Node version; rejects without V8 headers. */
export function compileRuntime(opts: { cacheDir: string; log?: (line: string) => void }): Promise<RuntimeAddon> {
  const include = nodeIncludeDir();
  if (!include)
    return Promise.reject(new Error(`no V8 headers of Node ${process.version} next to ${process.execPath}`));
  return loadNativeAddon<RuntimeAddon>({
    kind: 'runtime',
    cacheDir: opts.cacheDir,
    units: [],
    cxxFlags: [`-I${include}`],
    extraKey: { node: process.version, include },
    log: opts.log,
  });
}
