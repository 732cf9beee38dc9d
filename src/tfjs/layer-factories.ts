// `layers.maskedConv2d(...)` / `layers.maskedBatchNormalization(...)`, spelled as tf.layers.* are.
import { maskedBatchNormalization } from './masked-batch-norm.js';
import { maskedConv2d } from './masked-conv2d.js';

export const layers = Object.freeze({ maskedConv2d, maskedBatchNormalization });
