// The three passes of a masked conv, defined once: name, the arguments of the native call (in
// order) and the gather strategies a caller may force. Strategy (schedule/plan.ts), the native
// binding's argument tuples (codegen/compile.ts), strategy validation and MaskedConv's methods
// come from this table.

export const PASSES = {
  forward: { args: ['x', 'w', 'bias', 'y', 'ko', 'ci'], strategies: ['planes', 'im2col', 'pointwise', 'direct'] },
  backwardData: { args: ['dy', 'w', 'dx', 'ko', 'ci'], strategies: ['planes', 'im2col', 'pointwise', 'direct'] },
  backwardWeights: {
    args: ['dy', 'x', 'dw', 'dbias', 'rows', 'ci'],
    strategies: ['planes', 'im2row', 'direct', 'pointwise'],
  },
} as const;

export type PassName = keyof typeof PASSES;
export const PASS_NAMES = Object.keys(PASSES) as PassName[];

/** The gather strategies of one pass. */
export type PassStrategy<P extends PassName> = (typeof PASSES)[P]['strategies'][number];

/** What each argument name of the native calls holds (kept indices are sorted Int32 lists). */
interface PassArgTypes {
  x: Float32Array;
  w: Float32Array;
  bias: Float32Array | null;
  y: Float32Array;
  dy: Float32Array;
  dx: Float32Array;
  dw: Float32Array;
  dbias: Float32Array | null;
  ko: Int32Array;
  ci: Int32Array;
  rows: Int32Array;
}
type ArgTuple<T extends readonly (keyof PassArgTypes)[]> = { -readonly [I in keyof T]: PassArgTypes[T[I]] };

/** The argument tuple of one pass's native call, in the table's order. */
export type PassArgs<P extends PassName> = ArgTuple<(typeof PASSES)[P]['args']>;

/** A method per pass and its `<pass>Async` twin: what MaskedConv implements (a new pass must add both). */
export type PassMethods = Record<PassName | `${PassName}Async`, (...args: never[]) => unknown>;
