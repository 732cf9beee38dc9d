// Saving and loading a LayersModel in a directory under Node without @tensorflow/tfjs-node (whose
// file:// handler plain TF.js lacks): model.json + weights.bin, the layout tfjs-node writes, so
// either can read the other's files.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { tf } from './tf.js';

/** An IOHandler for `model.save(directory(dir))` and `tf.loadLayersModel(directory(dir))`. */
export function directory(dir: string): io.IOHandler {
  return {
    async save(artifacts) {
      mkdirSync(dir, { recursive: true });
      const weights = artifacts.weightData ? tf.io.CompositeArrayBuffer.join(artifacts.weightData) : new ArrayBuffer(0);
      writeFileSync(join(dir, 'weights.bin'), new Uint8Array(weights));
      const json: Record<string, unknown> = { ...artifacts };
      delete json.weightData;
      delete json.weightSpecs;
      json.weightsManifest = [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs ?? [] }];
      writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    async load() {
      const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
      const manifest = json.weightsManifest as io.WeightsManifestConfig;
      const buffers = manifest.flatMap((g) => g.paths.map((p) => readFileSync(join(dir, p))));
      const bytes = Buffer.concat(buffers);
      return tf.io.getModelArtifactsForJSON(json, async () => [
        manifest.flatMap((g) => g.weights),
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
      ]);
    },
  };
}
