// The two Fashion-MNIST models the pruning run trains (examples/prune-demo.ts) and the step
// profile times (bench/prune-step.ts), written as ordinary TF.js Layers code.
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs';
import { tf } from '../src/tfjs/tf.js';

export type DataFormat = 'channelsLast' | 'channelsFirst';

/** One 28 x 28 grey image: the NCHW and NHWC shapes. */
export const imageShape = (dataFormat: DataFormat): [number, number, number] =>
  dataFormat === 'channelsLast' ? [28, 28, 1] : [1, 28, 28];

/** VGG-style: 3x3 conv -> batch norm -> ReLU stages (32-32-64-64-128), 2x2 max pooling, a dense classifier. */
export function vggCnn(dataFormat: DataFormat, seed: number): LayersModel {
  const init = { kernelInitializer: tf.initializers.heNormal({ seed }), dataFormat };
  const stage = (filters: number, pool: boolean, first = false) => [
    tf.layers.conv2d({
      filters,
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      ...init,
      ...(first ? { inputShape: imageShape(dataFormat) } : {}),
    }),
    tf.layers.batchNormalization({ axis: dataFormat === 'channelsLast' ? -1 : 1 }),
    tf.layers.activation({ activation: 'relu' }),
    ...(pool ? [tf.layers.maxPooling2d({ poolSize: 2, dataFormat })] : []),
  ];
  return tf.sequential({
    layers: [
      ...stage(32, false, true),
      ...stage(32, true),
      ...stage(64, false),
      ...stage(64, true),
      ...stage(128, true),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
}

/** conv -> conv -> conv with the first and third added (one shared filter mask), pooling, dense. */
export function residualCnn(dataFormat: DataFormat, seed: number): LayersModel {
  const init = { kernelInitializer: tf.initializers.heNormal({ seed }), dataFormat };
  const input = tf.input({ shape: imageShape(dataFormat) });
  const conv = (filters: number, activation?: 'relu') =>
    tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', activation, ...init });
  const a1 = conv(32, 'relu').apply(input) as SymbolicTensor;
  const a2 = conv(32).apply(conv(32, 'relu').apply(a1)) as SymbolicTensor;
  const sum = tf.layers.activation({ activation: 'relu' }).apply(tf.layers.add().apply([a1, a2]));
  const pooled = tf.layers.maxPooling2d({ poolSize: 4, dataFormat }).apply(sum);
  const out = tf.layers.dense({ units: 10, activation: 'softmax' }).apply(tf.layers.flatten().apply(pooled));
  return tf.model({ inputs: input, outputs: out as SymbolicTensor });
}
