// Persistent, content-addressed cache of built kernel addons: `<cacheDir>/<key>.node` plus `<key>.json` metadata
// (other artifacts, such as the kernel binding's archive, take their own extension).
// Safe under concurrency: one build per key per process (shared promise) and across processes (stale-aware lock file).

import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import envPaths from 'env-paths';
import lockfile from 'proper-lockfile';
import { ArgumentError, MaskaccError } from '../errors.js';

export interface CacheEvent {
  type: 'hit' | 'miss' | 'wait' | 'built' | 'stale-lock' | 'corrupt';
  key: string;
  /** The artifact path (for 'wait' and 'stale-lock': the lock path). */
  path: string;
  /** 'hit': lookup time including any wait; 'built': build + publish time. */
  ms?: number;
}

export interface GetOrBuildOptions {
  cacheDir: string;
  /** Hex digest from cacheKey(). */
  key: string;
  /** Builds inside `workDir` (fresh, empty, inside cacheDir) and returns the path of the produced file. */
  build: (workDir: string) => Promise<string>;
  /** The artifact's file extension (default 'node'): `<cacheDir>/<key>.<extension>`. */
  extension?: string;
  /** Stored in `<key>.json` for humans and debugging; never consulted for hits. */
  meta?: Record<string, unknown>;
  onEvent?: (e: CacheEvent) => void;
}

/** A live holder refreshes its lock every UPDATE ms; one untouched for STALE ms belongs to a dead process. */
const LOCK_STALE_MS = 15_000;
const LOCK_UPDATE_MS = 3_000;
/** Long enough for any real build (2-30 s) plus a queue of them; only a live but hung holder hits it. */
const LOCK_WAIT_LIMIT_MS = 10 * 60_000;
const WAIT_MIN_MS = 50;
const WAIT_MAX_MS = 1_000;

export function defaultCacheDir(): string {
  const fromEnv = process.env.MASKACC_CACHE_DIR;
  return fromEnv ? path.resolve(fromEnv) : envPaths('maskacc', { suffix: '' }).cache;
}

interface InFlight {
  promise: Promise<string>;
  listeners: Set<(e: CacheEvent) => void>;
}

/** Keyed by cacheDir + key, so concurrent callers in this process join one lookup/build. */
const inFlight = new Map<string, InFlight>();

/**
 * Returns the absolute path of the cached artifact for `key`, building it (once) on a miss.
 * Callers joining an in-flight lookup of the same key share the first caller's `build` and `meta`
 * (same key = same binary) and receive its events from the moment they join.
 */
export function getOrBuildArtifact(opts: GetOrBuildOptions): Promise<string> {
  if (typeof opts.key !== 'string' || !/^[0-9a-f]{16,128}$/.test(opts.key)) {
    // The key becomes a file name; anything but a hex digest could escape cacheDir.
    return Promise.reject(new ArgumentError('key', opts.key, 'a lowercase hex digest from cacheKey()'));
  }
  if (opts.extension !== undefined && !/^[a-z0-9]{1,8}$/.test(opts.extension)) {
    return Promise.reject(new ArgumentError('extension', opts.extension, 'a short lowercase file extension, no dot'));
  }
  const cacheDir = path.resolve(opts.cacheDir);
  const id = `${cacheDir}\0${opts.key}`;
  const entry = inFlight.get(id);
  if (!entry) {
    const listeners = new Set<(e: CacheEvent) => void>();
    const emit = (e: CacheEvent): void => {
      for (const l of listeners) {
        try {
          l(e);
        } catch {
          // A throwing observer must not break the cache (or leave a lock behind).
        }
      }
    };
    // Subscribe the first caller before starting, so it cannot miss an early event.
    if (opts.onEvent) listeners.add(opts.onEvent);
    const promise = lookupOrBuild(cacheDir, opts, emit).finally(() => inFlight.delete(id));
    inFlight.set(id, { promise, listeners });
    return promise;
  }
  if (opts.onEvent) entry.listeners.add(opts.onEvent);
  return entry.promise;
}

type Emit = (e: CacheEvent) => void;

async function lookupOrBuild(cacheDir: string, opts: GetOrBuildOptions, emit: Emit): Promise<string> {
  const { key } = opts;
  const t0 = Date.now();
  const artifact = path.join(cacheDir, `${key}.${opts.extension ?? 'node'}`);
  const metaPath = path.join(cacheDir, `${key}.json`);
  const lockPath = path.join(cacheDir, `${key}.lock`);
  // Fail before a possibly long build rather than after it.
  const metaJson = opts.meta === undefined ? '{}' : JSON.stringify(opts.meta);

  try {
    await fs.mkdir(cacheDir, { recursive: true });
  } catch (err) {
    throw dirError(cacheDir, err);
  }

  let state = await inspect(artifact, metaPath, key);
  if (state === 'hit') {
    emit({ type: 'hit', key, path: artifact, ms: Date.now() - t0 });
    return artifact;
  }
  emit({ type: state, key, path: artifact });
  let corruptReported = state === 'corrupt';

  // Checked only on a miss so that a read-only, pre-populated cache still serves hits.
  try {
    await fs.access(cacheDir, fsc.W_OK);
  } catch (err) {
    throw dirError(cacheDir, err);
  }

  // While waiting, another process may publish: take its artifact without waiting for its unlock.
  const release = await acquireLock(
    cacheDir,
    key,
    lockPath,
    emit,
    async () => (await inspect(artifact, metaPath, key)) === 'hit',
  );
  if (release === 'hit') {
    emit({ type: 'hit', key, path: artifact, ms: Date.now() - t0 });
    return artifact;
  }

  try {
    // Another process may have built it between our first look and taking the lock.
    state = await inspect(artifact, metaPath, key);
    if (state === 'hit') {
      emit({ type: 'hit', key, path: artifact, ms: Date.now() - t0 });
      return artifact;
    }
    if (state === 'corrupt' && !corruptReported) {
      corruptReported = true;
      emit({ type: 'corrupt', key, path: artifact });
    }
    await removeDeadTempDirs(cacheDir, key);

    const tBuild = Date.now();
    let workDir: string;
    try {
      workDir = await fs.mkdtemp(path.join(cacheDir, `tmp-${key.slice(0, 16)}-${process.pid}-`));
    } catch (err) {
      throw dirError(cacheDir, err);
    }
    try {
      const produced = await opts.build(workDir);
      await publish(workDir, produced, artifact, metaPath, key, metaJson).catch((err: unknown) => {
        throw isFsError(err) ? publishError(cacheDir, key, err) : err;
      });
    } finally {
      await fs.rm(workDir, { recursive: true, force: true }).catch(() => {});
    }
    emit({ type: 'built', key, path: artifact, ms: Date.now() - tBuild });
    return artifact;
  } finally {
    await release().catch(() => {
      // Already released (compromised lock) or lock dir removed: nothing left to undo.
    });
  }
}

type EntryState = 'hit' | 'miss' | 'corrupt';

async function inspect(artifact: string, metaPath: string, key: string): Promise<EntryState> {
  let size: number;
  try {
    const st = await fs.stat(artifact);
    if (!st.isFile()) return 'corrupt';
    size = st.size;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return 'miss';
    throw err;
  }
  if (size === 0) return 'corrupt';
  try {
    const meta = JSON.parse(await fs.readFile(metaPath, 'utf8')) as { key?: unknown; artifactBytes?: unknown };
    if (meta.key !== key) return 'corrupt';
    // Catches truncation that a mere existence check would miss (e.g. a crash mid-copy by an older tool).
    if (typeof meta.artifactBytes === 'number' && meta.artifactBytes !== size) return 'corrupt';
    return 'hit';
  } catch {
    return 'corrupt';
  }
}

async function publish(
  workDir: string,
  produced: string,
  artifact: string,
  metaPath: string,
  key: string,
  metaJson: string,
): Promise<void> {
  if (typeof produced !== 'string') {
    throw new Error(
      `maskacc cache: build() for key ${key} returned ${typeof produced}, expected the path of the produced file`,
    );
  }
  const src = path.resolve(workDir, produced);
  const st = await fs.stat(src).catch(() => null);
  if (!st?.isFile() || st.size === 0) {
    throw new Error(
      `maskacc cache: build() for key ${key} returned '${src}', which is ${st ? 'empty or not a file' : 'missing'}`,
    );
  }
  // rename() only works within one file system, so a file produced elsewhere is first copied next to the cache.
  const staged = path.join(workDir, `${path.basename(artifact)}.staged`);
  const rel = path.relative(workDir, src);
  if (rel.startsWith('..') || path.isAbsolute(rel)) await fs.copyFile(src, staged);
  else await fs.rename(src, staged);
  // fsync before the rename: otherwise a power loss can leave a valid-looking name over missing data.
  await fsyncFile(staged);

  const own = { key, createdAt: new Date().toISOString(), artifactBytes: st.size };
  // `own` first for field order in the file, and again last because `key` and `artifactBytes` decide hits.
  const meta = Object.assign({ ...own }, JSON.parse(metaJson) as Record<string, unknown>, own);
  const stagedMeta = path.join(workDir, `${key}.json.staged`);
  await fs.writeFile(stagedMeta, `${JSON.stringify(meta, null, 2)}\n`);
  await fsyncFile(stagedMeta);
  // The json goes first and the .node last: the .node rename is the commit point readers test.
  await fs.rename(stagedMeta, metaPath);
  try {
    await fs.rename(staged, artifact);
  } catch (err) {
    // No .json without its .node (we hold the lock, so the .json is ours to take back).
    await fs.rm(metaPath, { force: true }).catch(() => {});
    throw err;
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fs.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Takes the per-key lock, waiting (with backoff) while a live process holds it. Returns 'hit' if the
 * artifact got published while waiting, else the release function.
 */
async function acquireLock(
  cacheDir: string,
  key: string,
  lockPath: string,
  emit: Emit,
  publishedMeanwhile: () => Promise<boolean>,
): Promise<(() => Promise<void>) | 'hit'> {
  const deadline = Date.now() + LOCK_WAIT_LIMIT_MS;
  let delay = WAIT_MIN_MS;
  let waited = false;
  let staleReported = false;
  for (;;) {
    if (!staleReported && (await isStale(lockPath))) {
      // proper-lockfile will silently take over this lock; say so, it means a build died.
      staleReported = true;
      emit({ type: 'stale-lock', key, path: lockPath });
    }
    try {
      return await lockfile.lock(path.join(cacheDir, key), {
        lockfilePath: lockPath,
        realpath: false,
        stale: LOCK_STALE_MS,
        update: LOCK_UPDATE_MS,
        retries: 0,
        onCompromised: () => {
          // The default throws from a timer and would crash the process. Going on is safe: publishing
          // is an atomic rename of same-key content, so a duplicate build costs time, never correctness.
          emit({ type: 'stale-lock', key, path: lockPath });
        },
      });
    } catch (err) {
      if (!isCode(err, 'ELOCKED')) throw isDirProblem(err) ? dirError(cacheDir, err) : err;
    }
    if (!waited) {
      waited = true;
      emit({ type: 'wait', key, path: lockPath });
    }
    if (Date.now() > deadline) {
      throw new MaskaccError(
        `timed out after ${LOCK_WAIT_LIMIT_MS / 1000} s waiting for lock '${lockPath}', which another live maskacc process keeps refreshing; ` +
          `if no maskacc build is running, delete that directory`,
      );
    }
    await sleep(delay * (0.75 + Math.random() * 0.5));
    delay = Math.min(delay * 1.5, WAIT_MAX_MS);
    if (await publishedMeanwhile()) return 'hit';
  }
}

async function isStale(lockPath: string): Promise<boolean> {
  try {
    const st = await fs.stat(lockPath);
    return st.mtimeMs < Date.now() - LOCK_STALE_MS;
  } catch {
    return false;
  }
}

/**
 * Removes temp dirs of this key left by killed builds. Called only while holding the key's lock, so
 * no live build of this key can own them; the pid check spares our own and any still-running process.
 */
async function removeDeadTempDirs(cacheDir: string, key: string): Promise<void> {
  const prefix = `tmp-${key.slice(0, 16)}-`;
  let names: string[];
  try {
    names = await fs.readdir(cacheDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || isAlive(pid)) continue;
    await fs.rm(path.join(cacheDir, name), { recursive: true, force: true }).catch(() => {});
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isCode(err, 'EPERM');
  }
}

function isDirProblem(err: unknown): boolean {
  return ['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'ENOTDIR', 'EEXIST', 'ENOENT'].some((c) => isCode(err, c));
}

function dirError(dir: string, err: unknown): MaskaccError {
  const why = err instanceof Error ? err.message : String(err);
  return new MaskaccError(
    `maskacc cache directory '${dir}' cannot be created or written (${why}); ` +
      `set MASKACC_CACHE_DIR to a writable directory`,
  );
}

function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';
}

/** A failed publish after a (possibly long) build: say where and what to do; keep `code` for callers. */
function publishError(dir: string, key: string, err: NodeJS.ErrnoException): MaskaccError {
  const full = err.code === 'ENOSPC' || err.code === 'EDQUOT';
  const e = new MaskaccError(
    `maskacc cache: the kernel addon ${key.slice(0, 16)} was built but could not be stored in '${dir}' (${err.message}); ` +
      (full ? 'free space there or ' : '') +
      `set MASKACC_CACHE_DIR to a writable directory${full ? ' with room' : ''}`,
  );
  return Object.assign(e, { code: err.code, cause: err });
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
