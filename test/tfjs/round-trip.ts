// Shared by the TF.js layer tests: a model saved in memory and loaded back, as model.save ->
// tf.loadLayersModel would (custom layers must be registered for the load to find them).
import type { LayersModel, io } from '@tensorflow/tfjs';
import { tf } from '../../src/tfjs/tf.js';

export async function roundTrip(model: LayersModel): Promise<LayersModel> {
  let saved: io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return tf.loadLayersModel(tf.io.fromMemory(saved!));
}
