// maskacc/tfjs: TF.js layers on maskacc kernels and the pruning loop built on them. A separate
// entry so `import 'maskacc'` does not load TF.js.
export { tf, useBackend, type TfBackend } from './tf.js';
export { BatchNormRelu, MaskedConv2d, dense, maxPool2d, type MaskedConv2dOptions } from './layers.js';
export { NativeMomentumOptimizer } from './optimizer.js';
export { MaskedCnn, type CnnSpec, type MaskedCnnOptions } from './masked-cnn.js';
export { compileTrainOps, type TrainOpsAddon } from '../codegen/compile-train-ops.js';
export { pruneAtEpoch, selectMasks, type PruningOptions } from '../prune/pruner.js';
export { exportCompact } from '../prune/export.js';
export { evaluate, shuffled, trainEpoch, type EpochResult } from '../prune/train.js';
export { renderPruneSvg, renderPruneTable, type PruneEpochRow, type RunEpoch } from '../prune/report.js';
