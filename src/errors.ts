// Typed errors of maskacc: every user mistake and every build failure surfaces as one of these.
// Each names the culprit (field or argument), the value seen and what was expected.

export class MaskaccError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** An invalid conv spec: `field` is the ConvSpec field at fault. */
export class SpecError extends MaskaccError {
  constructor(
    readonly field: string,
    readonly value: unknown,
    expected: string,
  ) {
    super(`conv spec: ${field} = ${show(value)}; expected ${expected}`);
  }
}

/** A bad argument to a kernel call or option: `argument` names it. */
export class ArgumentError extends MaskaccError {
  constructor(
    readonly argument: string,
    readonly value: unknown,
    expected: string,
  ) {
    super(`${argument}: got ${show(value)}; expected ${expected}`);
  }
}

/** The requested instruction set cannot run on this CPU (or is unknown). */
export class IsaError extends MaskaccError {
  constructor(
    readonly isa: string,
    reason: string,
  ) {
    super(`isa '${isa}': ${reason}`);
  }
}

/** The C++ compiler or cmake failed; carries the full output and the generated source. */
export class CompileError extends MaskaccError {
  constructor(
    message: string,
    readonly output: string,
    readonly sourcePath: string,
  ) {
    super(`${message}\n  generated source: ${sourcePath}\n${output.split('\n').slice(-40).join('\n')}`);
  }
}

/** A kernel object was used after dispose(). */
export class DisposedError extends MaskaccError {
  constructor(what: string) {
    super(`${what}: this MaskedConv was disposed`);
  }
}

export function show(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean' || v === undefined || v === null) return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as unknown as ArrayLike<number>).length})`;
  if (Array.isArray(v)) return `Array(${v.length})`;
  try {
    return JSON.stringify(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}
