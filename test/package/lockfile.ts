// A package-lock.json for a fresh project that installs the packed maskacc tarball: maskacc's runtime
// dependency tree, cut from the repository's own lockfile. With it `npm install --offline` needs only
// the tarballs `npm ci` put in the npm cache; without it npm would need each dependency's registry
// metadata, which `npm ci` does not cache.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [field: string]: unknown;
}

/** The lock entries of `deps` and everything they need, found the way Node resolves packages. */
export function dependencyClosure(
  entries: Record<string, LockEntry>,
  deps: Record<string, string>,
): Record<string, LockEntry> {
  const out: Record<string, LockEntry> = {};
  const resolve = (from: string, name: string): string | undefined => {
    for (let base = from; ;) {
      const path = `${base ? `${base}/` : ''}node_modules/${name}`;
      if (entries[path]) return path;
      if (!base) return undefined;
      const i = base.lastIndexOf('/node_modules/');
      base = i < 0 ? '' : base.slice(0, i);
    }
  };
  const visit = (from: string, names: Record<string, string> | undefined) => {
    for (const name of Object.keys(names ?? {})) {
      const path = resolve(from, name);
      if (!path)
        throw new Error(`${name} (needed by ${from || 'maskacc'}) is not in the repository's package-lock.json`);
      if (out[path]) continue;
      out[path] = entries[path];
      visit(path, { ...entries[path].dependencies, ...entries[path].optionalDependencies });
    }
  };
  visit('', deps);
  return out;
}

/** Writes package.json and package-lock.json of a project `dir` that depends on `tarball` only. */
export function writeConsumerProject(repo: string, dir: string, tarball: string): void {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8'));
  const dependencies = { maskacc: `file:${tarball}` };
  const project = { name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(project, null, 2));
  const fields = ['license', 'dependencies', 'peerDependencies', 'peerDependenciesMeta', 'bin', 'engines', 'os', 'cpu'];
  const maskacc = {
    version: pkg.version,
    resolved: `file:${tarball}`,
    ...Object.fromEntries(fields.map((f) => [f, pkg[f]])),
  };
  const packages = {
    '': { name: 'consumer', version: '1.0.0', dependencies },
    'node_modules/maskacc': maskacc,
    ...dependencyClosure(lock.packages, pkg.dependencies),
  };
  writeFileSync(
    join(dir, 'package-lock.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2),
  );
}
