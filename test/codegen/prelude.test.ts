// The precompiled prelude (codegen/prelude.ts) helps only if GCC accepts it, which it does only for
// compiles with the options it was built with; otherwise GCC parses the header and says nothing.
// So: configure a kernel addon as the JIT writes it, take CMake's own compile command of each
// translation unit, and check that GCC loads the .gch for it (`-H` prints `! <file>.gch`).
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { addonFlags, NODE_ADDON_API_DIR } from '../../src/codegen/build.js';
import { writeAddonSources } from '../../src/codegen/compile.js';
import { linkPrelude, preludePch } from '../../src/codegen/prelude.js';
import { HEADER_DIR } from '../../src/codegen/render.js';
import { conv2d } from '../../src/ir/conv.js';
import { choosePlan } from '../../src/schedule/plan.js';
import { ISAS, type IsaName } from '../../src/schedule/isa.js';
import { tempDir } from '../util.js';

const run = promisify(execFile);
const CMAKE_JS = join(dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const dir = tempDir('maskacc-prelude');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('every ISA: CMake compiles the kernel translation units with options the precompiled prelude accepts', async () => {
  const isas: IsaName[] = ['scalar', 'avx2', 'avx512'];
  const layer = conv2d({ batch: 2, inChannels: 9, outChannels: 12, inHeight: 7, inWidth: 6, kernel: 3, padding: 1 });
  const units = isas.map((isa) => ({ ns: `layer_${isa}`, layer, plan: choosePlan(layer, ISAS[isa], 2), cxxFlags: [] }));
  const flags = addonFlags([]);
  const src = join(dir, 'addon');
  const preludes = new Map<string, string>();
  for (const [i, isa] of isas.entries()) {
    const pch = await preludePch(join(dir, 'cache'), flags, ISAS[isa].cxxFlags);
    expect(pch, `${isa}: the prelude precompiles`).toBeDefined();
    preludes.set(ISAS[isa].cxxFlags.join(' '), linkPrelude(pch!, join(src, `prelude-${i}`)));
  }
  writeAddonSources(src, units, 'k', 'maskacc_prelude_check', flags, { preludes, jobs: 2 });
  writeFileSync(
    join(src, 'package.json'),
    JSON.stringify({ name: 't', private: true, binary: { napi_versions: [8] } }),
  );
  await run(process.execPath, [
    CMAKE_JS,
    'configure',
    '--directory',
    src,
    '--out',
    join(src, 'build'),
    '--log-level',
    'error',
    `--CDMASKACC_INCLUDE_DIR=${HEADER_DIR}`,
    `--CDMASKACC_NODE_ADDON_API_DIR=${NODE_ADDON_API_DIR}`,
    '--CDCMAKE_EXPORT_COMPILE_COMMANDS=ON',
  ]);
  const commands = JSON.parse(readFileSync(join(src, 'build', 'compile_commands.json'), 'utf8')) as {
    file: string;
    command: string;
  }[];
  for (const isa of isas) {
    const c = commands.find((e) => e.file.endsWith(`layer_${isa}.cpp`));
    expect(c, `${isa}: a compile command`).toBeDefined();
    expect(c!.command, isa).toContain(`-include ${preludes.get(ISAS[isa].cxxFlags.join(' '))}`);
    // The same command, checking syntax only, with -H: the first header GCC reports is the loaded .gch.
    const argv = c!.command.split(' ').filter((a) => a !== '');
    const at = argv.indexOf('-o');
    argv.splice(at, 2);
    argv.splice(argv.indexOf('-c'), 1);
    const { stderr } = await run(argv[0], [...argv.slice(1), '-fsyntax-only', '-H', '-Winvalid-pch'], {
      cwd: join(src, 'build'),
      maxBuffer: 1 << 24,
    });
    expect(stderr, isa).not.toMatch(/invalid-pch/);
    expect(stderr.split('\n')[0], `${isa}: GCC uses the precompiled prelude`).toMatch(/^! .*prelude\.hpp\.gch$/);
  }
}, 120_000);
