// Export after pruning: the compact network, with pruned filters, their batch-norm channels, the
// next layer's matching input channels and the classifier's dead features physically removed.
import type { MaskedCnn, MaskedCnnOptions } from '../tfjs/masked-cnn.js';
import { MaskedCnn as Cnn } from '../tfjs/masked-cnn.js';
import { tf } from '../tfjs/tf.js';

const kept = (mask: Uint8Array) => Int32Array.from([...mask.keys()].filter((i) => mask[i]));

/** A dense network of the kept channels only, computing what `net` computes (inference). */
export async function exportCompact(
  net: MaskedCnn,
  opts: Pick<MaskedCnnOptions, 'cacheDir' | 'threads'> = {},
): Promise<MaskedCnn> {
  const masks = net.filterMasks.map(kept);
  const spec = { ...net.spec, stages: net.spec.stages.map((s, i) => ({ ...s, out: masks[i].length })) };
  const compact = await Cnn.create(spec, { mode: 'dense', soft: false, ...opts });
  tf.tidy(() => {
    net.convs.forEach((c, i) => {
      const rows = tf.gather(c.kernel, Array.from(masks[i]), 0);
      compact.convs[i].kernel.assign(i === 0 ? rows : tf.gather(rows, Array.from(masks[i - 1]), 1));
      if (c.bias) compact.convs[i].bias!.assign(tf.gather(c.bias, Array.from(masks[i]), 0));
      const n = net.norms[i],
        m = compact.norms[i];
      m.gamma.assign(tf.gather(n.gamma, Array.from(masks[i]), 0));
      m.beta.assign(tf.gather(n.beta, Array.from(masks[i]), 0));
      masks[i].forEach((k, j) => {
        m.runningMean[j] = n.runningMean[k];
        m.runningVar[j] = n.runningVar[k];
      });
    });
    // Classifier rows: the features are the last stage's channels x the final plane, channel-major.
    const last = masks[masks.length - 1];
    const plane = net.classifier.w.shape[0] / net.convs[net.convs.length - 1].conv.spec.outChannels;
    const rows = Array.from(last).flatMap((c) => Array.from({ length: plane }, (_, p) => c * plane + p));
    compact.classifier.w.assign(tf.gather(net.classifier.w, rows, 0));
    compact.classifier.b.assign(net.classifier.b);
  });
  return compact;
}
