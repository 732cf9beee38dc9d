// maskacc/tfjs: the training stack. TF.js layers on maskacc kernels, the pruning loop and criteria
// built on them, and the Fashion-MNIST loader. A separate entry so `import 'maskacc'` loads none of it.
export { tf, useBackend, type TfBackend } from './tf.js';
export { BatchNormRelu, MaskedConv2d, dense, maxPool2d, type MaskedConv2dOptions } from './layers.js';
export {
  MaskedConv2D,
  maskedConv2d,
  type CompiledConv,
  type InitializerName,
  type MaskedConv2DArgs,
} from './masked-conv2d.js';
export {
  MaskedBatchNormalization,
  maskedBatchNormalization,
  type MaskedBatchNormalizationArgs,
} from './masked-batch-norm.js';
export { MaskaccMaxPooling2D, type MaskaccMaxPooling2DArgs } from './max-pool.js';
export { MaskaccReLU } from './relu.js';
export { MaskaccDense, type MaskaccDenseArgs } from './dense.js';
export { compileLayers, maskedLayers, type CompileLayersOptions } from './compile-layers.js';
export { installCpuKernels } from './cpu-kernels.js';
export { layers } from './layer-factories.js';
export { directory } from './file-io.js';
export { NativeMomentumOptimizer, momentumOptimizer } from './optimizer.js';
export { MaskedCnn, type CnnSpec, type MaskedCnnOptions } from './masked-cnn.js';
export { compileTrainOps, type TrainOpsAddon } from '../codegen/compile-train-ops.js';
export { pruneAtEpoch, selectMasks, type PruningOptions } from '../prune/pruner.js';
export { exportCompact } from '../prune/export.js';
export { applyPruning, maskGroups, prune, type PruneOptions, type PruningStep } from '../prune/prune-model.js';
export { PruningCallback } from '../prune/callback.js';
export { stripPruning } from '../prune/strip.js';
export { traceMaskGroups, type ChannelSlice, type FeatureMap, type MaskGroup } from '../prune/graph.js';
export { evaluate, shuffled, trainEpoch, type EpochResult } from '../prune/train.js';
export { renderPruneSvg, renderPruneTable, type PruneEpochRow, type RunEpoch } from '../prune/report.js';
export {
  FILTER_CRITERIA,
  filterScores,
  prunedCount,
  selectFilters,
  selectFiltersGlobal,
  type FilterCriterion,
} from '../prune/criteria.js';
export {
  isSoft,
  pruningSchedule,
  rateAt,
  selectsAt,
  type PruningSchedule,
  type ScheduleKind,
} from '../prune/schedule.js';
export { parseIdx, readIdxFile, type IdxArray } from '../data/idx.js';
export { FASHION_MNIST_DIR, loadFashionMnist, type FashionMnist, type Split } from '../data/fashion-mnist.js';
