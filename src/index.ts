// maskacc public API: the conv DSL, the compiler entry points, the kernel object and the errors.
export { conv2d, isConvLayer, passFlops, type ConvLayer, type ConvSpec, type Pair } from './ir/conv.js';
export { compileMaskedConv, compileMaskedConvs, type CompileOptions } from './api/compile.js';
export { MaskedConv, type BackwardWeightsOptions, type Masks } from './runtime/masked-conv.js';
export { configurePool, poolStats, trimPool, type PoolStats } from './runtime/pool.js';
export { loadGeneratedModel, type GeneratedLoadOptions } from './runtime/generated.js';
export type { Plan, GemmPlan, DotPlan } from './schedule/plan.js';
export { supportedIsas, type IsaName } from './schedule/isa.js';
export { ArgumentError, CompileError, DisposedError, IsaError, MaskaccError, SpecError } from './errors.js';
export { model, type Model, type ModelLayer, type ModelLayerDef } from './model/model.js';
export { CompiledModel, compileModel } from './model/compiled-model.js';
export {
  MODEL_ZOO,
  resnet18ImageNet,
  resnet20Cifar,
  resnet50ImageNet,
  resnet56Cifar,
  vgg16Cifar,
  type ZooOptions,
} from './model/zoo.js';
