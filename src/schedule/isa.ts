// Instruction sets as data: what the scheduler needs to know (vector width, registers, compiler
// flags, CPU flags) and which template implements the vector ops. Adding an ISA adds a row here
// and a templates/isa/<name>.hpp header; no scheduler logic changes.

import { readFileSync } from 'node:fs';

export type IsaName = 'avx512' | 'avx2' | 'scalar';

export interface Isa {
  readonly name: IsaName;
  /** Floats per vector register. */
  readonly vectorWidth: number;
  /** Architectural vector registers available for accumulators and operands. */
  readonly registers: number;
  /**
   * Fixed cost of a direct-engine tile step, in FMAs: the loop, the two tap-offset loads and the
   * FMA latency a small tile leaves exposed. Tiles are scored by (1 + directStepCost / FMAs a step).
   */
  readonly directStepCost: number;
  /**
   * Loads (broadcasts and vector loads) per FMA a tile can issue before the loads, not the FMAs,
   * set its pace. AVX-512 folds a broadcast into its FMA; AVX2 spends a register and a load slot.
   */
  readonly loadsPerFma: number;
  /**
   * The CPU issues one full-width FMA every other cycle (AMD Zen 4 runs AVX-512 on 256-bit units;
   * Zen 5 and Xeons with two 512-bit FMA units issue two a cycle), so a tile's loads are half as
   * scarce per FMA as `loadsPerFma` says. A property of the machine, not of the ISA: false in
   * ISAS (the ahead-of-time models' plans), set by hostIsa for the JIT.
   */
  readonly halfRateFma: boolean;
  /** g++ flags that enable exactly this ISA (no -march=native: the cache key must say what runs). */
  readonly cxxFlags: readonly string[];
  /** /proc/cpuinfo flags the CPU must report. */
  readonly cpuFlags: readonly string[];
}

export const ISAS: Readonly<Record<IsaName, Isa>> = Object.freeze({
  avx512: Object.freeze({
    name: 'avx512',
    vectorWidth: 16,
    registers: 32,
    directStepCost: 2,
    loadsPerFma: 1,
    halfRateFma: false,
    cxxFlags: ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mavx2', '-mfma', '-mprefer-vector-width=512'],
    cpuFlags: ['avx512f', 'avx512dq', 'avx512bw', 'avx512vl', 'avx2', 'fma'],
  }),
  avx2: Object.freeze({
    name: 'avx2',
    vectorWidth: 8,
    registers: 16,
    // Zen 3, direct 3x3 forward and backward-data at d=0.5: 6 x 2 tiles ran 1.11-1.31x faster than
    // the 14 x 1 (one broadcast per FMA) and 4 x 2 (8 accumulators) ones the AVX-512 scores chose.
    directStepCost: 5,
    loadsPerFma: 0.75,
    halfRateFma: false,
    cxxFlags: ['-mavx2', '-mfma'],
    cpuFlags: ['avx2', 'fma'],
  }),
  scalar: Object.freeze({
    name: 'scalar',
    vectorWidth: 1,
    registers: 16,
    directStepCost: 2,
    loadsPerFma: 1,
    halfRateFma: false,
    cxxFlags: [],
    cpuFlags: [],
  }),
});

/** Best first: 'auto' picks the first one the CPU supports. */
export const ISA_PREFERENCE: readonly IsaName[] = ['avx512', 'avx2', 'scalar'];

let cpuinfoCache: string | undefined;

/** /proc/cpuinfo, read once; empty where unreadable (not Linux). */
function cpuinfo(): string {
  if (cpuinfoCache === undefined) {
    try {
      cpuinfoCache = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      cpuinfoCache = '';
    }
  }
  return cpuinfoCache;
}

/** The first value of a cpuinfo field ("cpu family", "flags", ...), or undefined. */
function cpuinfoField(text: string, name: string): string | undefined {
  return text
    .split('\n')
    .find((l) => l.split(':')[0]?.trim() === name)
    ?.split(':')[1]
    ?.trim();
}

let cpuFlagsCache: Set<string> | undefined;

/** The CPU's feature flags; empty where cpuinfo is unreadable, which leaves only scalar. */
export function cpuFlags(): Set<string> {
  cpuFlagsCache ??= new Set((cpuinfoField(cpuinfo(), 'flags') ?? '').split(/\s+/).filter(Boolean));
  return cpuFlagsCache;
}

/**
 * The CPU's model name with its family and model numbers: a name like "AMD EPYC" alone does not
 * tell a Zen 3 (no AVX-512) from a Zen 4, and figures and tuning caches must say which ran.
 */
export function cpuModel(): string {
  const text = cpuinfo();
  if (!text) return 'unknown';
  const name = cpuinfoField(text, 'model name') ?? 'unknown';
  const family = cpuinfoField(text, 'cpu family');
  const model = cpuinfoField(text, 'model');
  return family && model ? `${name} (family ${family}, model ${model})` : name;
}

/**
 * Whether a /proc/cpuinfo text describes a CPU that runs AVX-512 FMAs at half rate: AMD family
 * 25 (Zen 3 and Zen 4) with AVX-512, i.e. Zen 4. Intel parts with one 512-bit FMA unit cannot be
 * told from cpuinfo and count as full rate.
 */
export function halfRateAvx512(text: string): boolean {
  const flags = new Set((cpuinfoField(text, 'flags') ?? '').split(/\s+/));
  return (
    cpuinfoField(text, 'vendor_id') === 'AuthenticAMD' &&
    cpuinfoField(text, 'cpu family') === '25' &&
    flags.has('avx512f')
  );
}

let hostHalfRate: boolean | undefined; // cpuinfo parsed once, not per compiled layer

/**
 * The ISA as this machine runs it, for the JIT's plans: ISAS[name] with the machine's FMA rate
 * (halfRateFma). Direct tiles of one vector beat the two-vector ones a full-rate score picks on a
 * Zen 4 (see directLoadBound in plan.ts).
 */
export function hostIsa(name: IsaName): Isa {
  hostHalfRate ??= halfRateAvx512(cpuinfo());
  return name === 'avx512' && hostHalfRate ? HALF_RATE_AVX512 : ISAS[name];
}
const HALF_RATE_AVX512: Isa = Object.freeze({ ...ISAS.avx512, halfRateFma: true });

export function isaSupported(isa: Isa, flags = cpuFlags()): boolean {
  return isa.cpuFlags.every((f) => flags.has(f));
}

/** Every ISA this machine can run, best first. */
export function supportedIsas(): IsaName[] {
  return ISA_PREFERENCE.filter((n) => isaSupported(ISAS[n]));
}
