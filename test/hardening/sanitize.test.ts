// The sanitizer build mode (MASKACC_SANITIZE): validation, the cache key, the rendered build
// files. Under `npm run test:sanitize` a canary addon with a deliberate heap overflow and a
// signed overflow also proves that a finding kills the process (so that run can fail at all).
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ArgumentError, compileMaskedConv, conv2d, MaskaccError } from '../../src/index.js';
import type { CacheEvent } from '../../src/codegen/cache.js';
import { addonKey, writeAddonSources } from '../../src/codegen/compile.js';
import {
  addonFlags,
  asanRuntimeLoaded,
  BASE_CXX_FLAGS,
  buildAddon,
  parseSanitize,
  withoutSanitizerPreload,
} from '../../src/codegen/build.js';
import { renderCMakeLists, templateSources } from '../../src/codegen/render.js';
import { choosePlan } from '../../src/schedule/plan.js';
import { ISAS } from '../../src/schedule/isa.js';
import { tempDir } from '../util.js';

const spec = { batch: 1, inChannels: 4, outChannels: 5, inHeight: 6, inWidth: 6, kernel: 3, padding: 1 };
const layer = conv2d(spec);
const units = [{ ns: 'layer0', layer, plan: choosePlan(layer, ISAS.scalar, 1), cxxFlags: [] }];

const savedEnv = process.env.MASKACC_SANITIZE;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.MASKACC_SANITIZE;
  else process.env.MASKACC_SANITIZE = savedEnv;
});

describe('MASKACC_SANITIZE', () => {
  it('accepts address, undefined or both, in any order; unset or empty means none', () => {
    delete process.env.MASKACC_SANITIZE;
    expect(parseSanitize()).toEqual([]);
    expect(parseSanitize('')).toEqual([]);
    expect(parseSanitize('address')).toEqual(['address']);
    expect(parseSanitize('undefined')).toEqual(['undefined']);
    expect(parseSanitize('undefined,address')).toEqual(['address', 'undefined']);
    expect(parseSanitize(' address , undefined ')).toEqual(['address', 'undefined']);
  });

  it.each(['thread', 'memory', 'addres', 'address,', 'address;undefined', '1', 'address,leak'])(
    'refuses %j naming the variable and the allowed values',
    (bad) => {
      const err = (() => {
        try {
          parseSanitize(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ArgumentError);
      expect((err as ArgumentError).argument).toBe('MASKACC_SANITIZE');
      expect((err as Error).message).toContain(JSON.stringify(bad));
      expect((err as Error).message).toMatch(/'address', 'undefined' or 'address,undefined'/);
    },
  );

  it('a bad value fails compileMaskedConv before any cache lookup or build', async () => {
    process.env.MASKACC_SANITIZE = 'thread';
    const events: CacheEvent[] = [];
    const err = await compileMaskedConv(spec, {
      isa: 'scalar',
      respecialize: false,
      onCacheEvent: (e) => events.push(e),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArgumentError);
    expect((err as Error).message).toMatch(/^MASKACC_SANITIZE: got "thread"; expected/);
    expect(events).toEqual([]);
  });

  it.skipIf(asanRuntimeLoaded())(
    'address without the ASan runtime preloaded is refused with the command to use, before building',
    async () => {
      process.env.MASKACC_SANITIZE = 'address';
      const events: CacheEvent[] = [];
      const err = await compileMaskedConv(spec, {
        isa: 'scalar',
        respecialize: false,
        onCacheEvent: (e) => events.push(e),
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MaskaccError);
      expect((err as Error).message).toMatch(/LD_PRELOAD=\$\(g\+\+ -print-file-name=libasan\.so\)/);
      expect(events).toEqual([]);
    },
  );

  it('is part of the cache key: each setting has its own key, and the default follows the environment', () => {
    const templates = templateSources();
    const keys = [[], ['address'], ['undefined'], ['address', 'undefined']].map((s) =>
      addonKey(units, templates, addonFlags(s as never)),
    );
    expect(new Set(keys).size).toBe(4);
    delete process.env.MASKACC_SANITIZE;
    expect(addonKey(units, templates)).toBe(keys[0]);
    process.env.MASKACC_SANITIZE = 'undefined,address';
    expect(addonKey(units, templates)).toBe(keys[3]);
    process.env.MASKACC_SANITIZE = 'undefined';
    expect(addonKey(units, templates)).toBe(keys[2]);
  });

  it('adds -fsanitize to the compile and link flags of the rendered CMakeLists, and nothing without it', () => {
    const san = addonFlags(['address', 'undefined']);
    expect(san.cxx).toEqual(
      expect.arrayContaining([
        ...BASE_CXX_FLAGS,
        '-fsanitize=address,undefined',
        '-fno-omit-frame-pointer',
        '-g',
        '-fno-sanitize-recover=all',
        '-fvisibility=hidden',
      ]),
    );
    expect(san.link).toEqual(['-fsanitize=address,undefined']);
    expect(addonFlags([])).toEqual({ sanitize: [], cxx: BASE_CXX_FLAGS, link: [] });

    const dir = tempDir('maskacc-sanitize');
    try {
      writeAddonSources(join(dir, 'san'), units, 'k', 'maskacc_san', san);
      const cm = readFileSync(join(dir, 'san', 'CMakeLists.txt'), 'utf8');
      expect(cm).toMatch(
        /^target_compile_options\(\$\{PROJECT_NAME\} PRIVATE .*-O2 .*-fsanitize=address,undefined .*-fno-omit-frame-pointer -g( .*)?\)$/m,
      );
      expect(cm).toMatch(/^target_link_options\(\$\{PROJECT_NAME\} PRIVATE -fsanitize=address,undefined\)$/m);

      // The default is a normal build whatever the environment says (ahead-of-time sources must not depend on it).
      process.env.MASKACC_SANITIZE = 'address';
      writeAddonSources(join(dir, 'plain'), units, 'k', 'maskacc_plain');
      const plain = readFileSync(join(dir, 'plain', 'CMakeLists.txt'), 'utf8');
      expect(plain).not.toMatch(/sanitize|target_link_options/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cmake and g++ run without a sanitizer runtime preloaded for this process', () => {
    const env = { LD_PRELOAD: '/usr/lib/gcc/x86_64-linux-gnu/12/libasan.so:/opt/libfoo.so', PATH: '/bin' };
    expect(withoutSanitizerPreload(env)).toEqual({ LD_PRELOAD: '/opt/libfoo.so', PATH: '/bin' });
    expect(withoutSanitizerPreload({ LD_PRELOAD: '/x/libasan.so.8 /x/libubsan.so.1', PATH: '/bin' })).toEqual({
      PATH: '/bin',
    });
    expect(withoutSanitizerPreload({ PATH: '/bin' })).toEqual({ PATH: '/bin' });
  });
});

// A heap overflow and a signed overflow behind a working call: built with the flags and the
// CMakeLists template of the JIT, loaded in a child that inherits this run's LD_PRELOAD.
const CANARY = `#include <napi.h>
static Napi::Value Ok(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  int* p = new int[n]();
  for (int i = 0; i < n; i++) p[i] = i;
  int s = p[n - 1];
  delete[] p;
  return Napi::Number::New(info.Env(), s);
}
static Napi::Value HeapOverflow(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  int* p = new int[n]();
  volatile int i = n;  // one past the end
  int v = p[i];
  delete[] p;
  return Napi::Number::New(info.Env(), v);
}
static Napi::Value AddOne(const Napi::CallbackInfo& info) {
  int a = info[0].As<Napi::Number>().Int32Value();
  return Napi::Number::New(info.Env(), a + 1);  // signed overflow for INT_MAX
}
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("ok", Napi::Function::New(env, Ok));
  exports.Set("heapOverflow", Napi::Function::New(env, HeapOverflow));
  exports.Set("addOne", Napi::Function::New(env, AddOne));
  return exports;
}
NODE_API_MODULE(canary, Init)
`;

// The canary always runs: a child node with the ASan runtime preloaded loads an addon built with
// both sanitizers, as `npm run test:sanitize` does for the kernels.
const sanitizers = parseSanitize('address,undefined');
const childEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  LD_PRELOAD: spawnSync('g++', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout.trim(),
  ASAN_OPTIONS: 'detect_leaks=0',
  UBSAN_OPTIONS: '',
  ...extra,
});

describe('sanitizer canary: the sanitized build flags catch real bugs', () => {
  let addon = '';
  let dir = '';
  afterAll(() => dir && rmSync(dir, { recursive: true, force: true }));
  const run = (call: string, env: NodeJS.ProcessEnv = childEnv()) => {
    const r = spawnSync(
      process.execPath,
      ['-e', `const a = require(${JSON.stringify(addon)}); console.log('result', ${call});`],
      { encoding: 'utf8', env },
    );
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  };

  it('builds a sanitized canary addon with the JIT build files; a correct call passes', async () => {
    dir = tempDir('maskacc-canary');
    const flags = addonFlags(sanitizers);
    writeFileSync(join(dir, 'module.cpp'), CANARY);
    writeFileSync(
      join(dir, 'CMakeLists.txt'),
      renderCMakeLists({
        target: 'canary',
        baseFlags: flags.cxx,
        linkFlags: flags.link,
        units: [],
      }),
    );
    addon = await buildAddon(dir, 'canary', 'module.cpp', 2);
    const r = run('a.ok(8)');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('result 7\n');
  }, 120_000);

  it('ASan kills the process on a heap overflow', () => {
    const r = run('a.heapOverflow(8)');
    expect(r.stdout).not.toContain('result');
    expect(r.status === 0 && r.signal === null).toBe(false);
    expect(r.stderr).toMatch(/ERROR: AddressSanitizer: heap-buffer-overflow/);
    expect(r.stderr).toMatch(/HeapOverflow.*module\.cpp:\d+/);
  });

  it('UBSan kills the process on signed overflow, even without halt_on_error', () => {
    expect(run('a.addOne(41)').stdout).toBe('result 42\n');
    const r = run('a.addOne(2147483647)', childEnv({ UBSAN_OPTIONS: 'print_stacktrace=1' }));
    expect(r.stdout).not.toContain('result');
    expect(r.status === 0 && r.signal === null).toBe(false);
    expect(r.stderr).toMatch(/module\.cpp:\d+:\d+: runtime error: signed integer overflow/);
  });
});
