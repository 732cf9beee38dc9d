// ReLU on the native training ops, and MaskaccReLU, the layer prune() swaps in for
// Activation('relu') (stripPruning swaps it back). TF.js's cpu ReLU gradient is dy * step(x)
// through the generic broadcasting multiply: with batch norm, the largest part of a step of the
// demo CNN outside the convolutions.
import type { Shape } from '@tensorflow/tfjs';
import { adopt, takeArray } from './buffers.js';
import { data } from './conv-op.js';
import { nativeOps } from './native-ops.js';
import { tf, type Tensor } from './tf.js';

/** y = max(x, 0), its gradient dy where y > 0; `layer` names the caller in errors. */
export function reluOp(x: Tensor, layer: string): Tensor {
  const { ops, threads } = nativeOps(layer);
  const f = tf.customGrad((xt, save) => {
    const y = takeArray((xt as Tensor).size);
    ops.reluForward(threads, data(xt as Tensor), y);
    const value = adopt(y, (xt as Tensor).shape);
    (save as (t: Tensor[]) => void)([value]);
    return {
      value,
      gradFunc: (dyt: Tensor) => {
        const dx = takeArray(y.length);
        ops.reluBackward(threads, y, data(dyt), dx);
        return adopt(dx, dyt.shape);
      },
    };
  });
  return f(x) as Tensor;
}

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/** tf.layers.activation({ activation: 'relu' }) on the native op. */
export class MaskaccReLU extends tf.layers.Layer {
  static readonly className = 'MaskaccReLU';

  constructor(args: LayerArgs = {}) {
    super(args);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return reluOp(Array.isArray(inputs) ? inputs[0] : inputs, `layer '${this.name}' (MaskaccReLU)`);
  }
}
tf.serialization.registerClass(MaskaccReLU);
