// Model-side logic shared by the browser client and the Node scripts (parity test, quantization
// check). Plain JavaScript with JSDoc types so that Node runs it as is and Vite bundles it.
import * as tf from '@tensorflow/tfjs';

/** The published model's outputs we read: class probabilities, and how unlike the training images
 * the input is (> 1: review it; models before this output give none). */
export const PROBABILITIES = 'probabilities';
export const ATYPICALITY = 'atypicality';
/** The window each answer came from (top, left, height, width in input pixels), for the reviewer. */
export const CROP_BOX = 'crop_box';

/**
 * The graph node behind a signature output of a converted model (model.json "signature").
 * @param {tf.GraphModel} model
 * @param {string} output
 */
export function outputNode(model, output = PROBABILITIES) {
  // tfjs names signature outputs by their graph node; the mapping is in the artifacts' signature.
  const sig = /** @type {any} */ (model).artifacts?.signature?.outputs?.[output];
  if (!sig) throw new Error(`the model has no '${output}' output`);
  return sig.name;
}

function hasOutput(model, output) {
  return Boolean(/** @type {any} */ (model).artifacts?.signature?.outputs?.[output]);
}

/**
 * Probabilities and atypicality for a batch of decoded RGB images.
 * @param {tf.GraphModel} model
 * @param {tf.Tensor4D} pixels float32 [batch, height, width, 3] in 0-255 (any height and width)
 * @returns {Promise<{probabilities: number[][], atypicality: number[] | null, cropBox: number[][] | null}>}
 */
export async function predict(model, pixels) {
  const names = [outputNode(model, PROBABILITIES)];
  const optional = [ATYPICALITY, CROP_BOX].filter((o) => hasOutput(model, o));
  names.push(...optional.map((o) => outputNode(model, o)));
  const outs = /** @type {tf.Tensor[]} */ (model.execute(pixels, names));
  const get = async (/** @type {string} */ o) => {
    const i = optional.indexOf(o);
    return i < 0 ? null : await outs[i + 1].array();
  };
  try {
    return {
      probabilities: /** @type {number[][]} */ (await outs[0].array()),
      atypicality: /** @type {number[] | null} */ (await get(ATYPICALITY)),
      cropBox: /** @type {number[][] | null} */ (await get(CROP_BOX)),
    };
  } finally {
    outs.forEach((t) => t.dispose());
  }
}

/**
 * Class probabilities for a batch of decoded RGB images.
 * @param {tf.GraphModel} model
 * @param {tf.Tensor4D} pixels float32 [batch, height, width, 3] in 0-255 (any height and width)
 * @returns {Promise<number[][]>}
 */
export async function predictProbabilities(model, pixels) {
  return (await predict(model, pixels)).probabilities;
}

/** Runs the model once on a blank image, so the first real prediction is not slowed by setup, and
 * checks that it runs here and answers one probability per class its metadata names: a model that
 * loads but cannot answer is never shown as ready, nor kept in place of a cached one that can.
 * @param {tf.GraphModel} model
 * @param {number} size
 * @param {string[]} classNames
 */
export async function warmUp(model, size, classNames) {
  const blank = tf.zeros([1, size, size, 3]);
  try {
    const [probabilities] = await predictProbabilities(model, /** @type {tf.Tensor4D} */ (blank));
    if (probabilities.length !== classNames.length) {
      throw new Error(`the model gives ${probabilities.length} probabilities for ${classNames.length} classes`);
    }
  } finally {
    blank.dispose();
  }
}

/**
 * What the user sees for one image: top class, all probabilities, and whether it needs a person's
 * review: top probability under the model's threshold, or an input unlike the training images.
 * @param {number[]} probabilities
 * @param {string[]} classNames
 * @param {number} reviewThreshold
 * @param {number | null} [atypicality]
 */
export function interpret(probabilities, classNames, reviewThreshold, atypicality = null) {
  if (probabilities.length !== classNames.length) {
    throw new Error(`the model gives ${probabilities.length} probabilities for ${classNames.length} classes`);
  }
  let best = 0;
  probabilities.forEach((p, i) => { if (p > probabilities[best]) best = i; });
  // Probabilities that are not all numbers name no class (the page, the Enter key and the export must not
  // take one from them); an atypicality that is not a number flags the answer but leaves its class.
  const answered = probabilities.every(Number.isFinite);
  const invalid = !answered || (atypicality !== null && !Number.isFinite(atypicality));
  const lowConfidence = !invalid && probabilities[best] < reviewThreshold;
  const unlikeTraining = !invalid && atypicality !== null && atypicality > 1;
  return {
    classId: answered ? best : null,
    className: answered ? classNames[best] : null,
    confidence: answered ? probabilities[best] : null,
    probabilities: classNames.map((name, i) => ({ name, probability: probabilities[i] })),
    invalid,
    lowConfidence,
    unlikeTraining,
    needsReview: invalid || lowConfidence || unlikeTraining,
    atypicality,
  };
}

/**
 * How the model fared with this answer on the evaluation images, from the Evaluator's confusion matrix
 * (counts[actual][predicted], shipped in the model's metadata): the share of each actual class it gave
 * this answer to. Shares of each actual class, not of the answers, so the figures hold whatever the
 * mix of cells on a slide (TEST is balanced by class; a blood smear is not). null without a matrix, or
 * with one that does not fit the classes.
 * @param {number[][] | null | undefined} confusionMatrix
 * @param {string[]} classNames
 * @param {number} classId
 */
export function answerRecord(confusionMatrix, classNames, classId) {
  const n = classNames.length;
  if (!Array.isArray(confusionMatrix) || confusionMatrix.length !== n
      || !confusionMatrix.every((row) => Array.isArray(row) && row.length === n)) return null;
  const shareGiven = (/** @type {number} */ actual) => {
    const row = confusionMatrix[actual];
    const total = row.reduce((a, b) => a + b, 0);
    return total ? row[classId] / total : null;
  };
  const alsoGivenTo = classNames
    .map((name, i) => ({ name, share: i === classId ? null : shareGiven(i) }))
    .filter((o) => o.share !== null && o.share > 0)
    .sort((a, b) => /** @type {number} */ (b.share) - /** @type {number} */ (a.share));
  return {
    images: confusionMatrix.flat().reduce((a, b) => a + b, 0),
    recall: shareGiven(classId),
    alsoGivenTo: /** @type {{ name: string; share: number }[]} */ (alsoGivenTo),
  };
}
