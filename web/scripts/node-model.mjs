// Loads a tfjs graph model from a folder in Node, without tfjs-node (whose install downloads a native
// library): model.json and its weight shards are read from disk and handed to tfjs as memory.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

export async function loadGraphModelFromDir(dir) {
  const modelJson = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  const weightSpecs = [];
  const buffers = [];
  for (const group of modelJson.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const shard of group.paths) buffers.push(await readFile(path.join(dir, shard)));
  }
  const weightData = Buffer.concat(buffers);
  const handler = {
    load: async () => ({
      modelTopology: modelJson.modelTopology,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy,
      signature: modelJson.signature,
      userDefinedMetadata: modelJson.userDefinedMetadata,
      weightSpecs,
      weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
    }),
  };
  return tf.loadGraphModel(handler);
}

export async function useBackend(name) {
  if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend '${name}' is not available`);
  await tf.ready();
}
