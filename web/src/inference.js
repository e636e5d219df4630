// Model-side logic shared by the browser client and the Node scripts (parity test, quantization
// check). Plain JavaScript with JSDoc types so that Node runs it as is and Vite bundles it.
import * as tf from '@tensorflow/tfjs';

/** The published model's output we read: the signature output holding the class probabilities. */
export const PROBABILITIES = 'probabilities';

/**
 * The graph node behind a signature output of a converted model (model.json "signature").
 * @param {tf.GraphModel} model
 * @param {string} output
 */
export function outputNode(model, output = PROBABILITIES) {
  const spec = model.outputs.find((o) => o.name === output);
  if (spec) return spec.name;
  // tfjs names signature outputs by their graph node; the mapping is in the artifacts' signature.
  const sig = /** @type {any} */ (model).artifacts?.signature?.outputs?.[output];
  if (!sig) throw new Error(`the model has no '${output}' output`);
  return sig.name.replace(/:0$/, '');
}

/**
 * Class probabilities for a batch of decoded RGB images.
 * @param {tf.GraphModel} model
 * @param {tf.Tensor4D} pixels float32 [batch, height, width, 3] in 0-255 (any height and width)
 * @returns {Promise<number[][]>}
 */
export async function predictProbabilities(model, pixels) {
  const out = /** @type {tf.Tensor} */ (model.execute(pixels, outputNode(model)));
  try {
    return /** @type {number[][]} */ (await out.array());
  } finally {
    out.dispose();
  }
}

/** Runs the model once on a blank image so the first real prediction is not slowed by setup. */
export async function warmUp(model, size) {
  const blank = tf.zeros([1, size, size, 3]);
  try {
    await predictProbabilities(model, /** @type {tf.Tensor4D} */ (blank));
  } finally {
    blank.dispose();
  }
}

/**
 * What the user sees for one image: top class, all probabilities, and whether it needs a person's
 * review (top probability under the model's threshold).
 * @param {number[]} probabilities
 * @param {string[]} classNames
 * @param {number} reviewThreshold
 */
export function interpret(probabilities, classNames, reviewThreshold) {
  if (probabilities.length !== classNames.length) {
    throw new Error(`the model gives ${probabilities.length} probabilities for ${classNames.length} classes`);
  }
  let best = 0;
  probabilities.forEach((p, i) => { if (p > probabilities[best]) best = i; });
  return {
    classId: best,
    className: classNames[best],
    confidence: probabilities[best],
    probabilities: classNames.map((name, i) => ({ name, probability: probabilities[i] })),
    needsReview: probabilities[best] < reviewThreshold,
  };
}
