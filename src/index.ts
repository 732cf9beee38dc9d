// maskacc public API: the conv DSL, the compiler entry points, the kernel object and the errors.
export { conv2d, isConvLayer, passFlops, type ConvLayer, type ConvSpec, type Pair } from './ir/conv.js';
export { compileMaskedConv, compileMaskedConvs, type CompileOptions } from './compile-masked-conv.js';
export { MaskedConv, type Masks } from './runtime/masked-conv.js';
export type { Plan, GemmPlan, DotPlan } from './schedule/plan.js';
export { supportedIsas, type IsaName } from './schedule/isa.js';
export { ArgumentError, CompileError, DisposedError, IsaError, MaskaccError, SpecError } from './errors.js';
