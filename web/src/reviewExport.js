// The review export: one zip of a lab's original images in class folders plus the manifest the pipeline
// checks (components/image_example_gen/lab_sources.py). Plain JavaScript with JSDoc types so that Node
// runs it as is (tests, with fake-indexeddb) and Vite bundles it.
//
// Built one cell at a time from the store: the zip's finished bytes go into Blobs as they come (a
// browser may keep a Blob on disk), so a store of many large images does not have to fit in the tab.
import { Zip, ZipPassThrough, strToU8 } from 'fflate';
import { labNameProblem, memberName, safeName } from './reviewRules.js';
import { eachReview } from './reviewStore.js';

export const EXPORT_FORMAT = 'bloodcell-review-export'; // models/features.py REVIEW_EXPORT_FORMAT
export const EXPORT_VERSION = 1;
export const MANIFEST = 'manifest.json';
const PART_BYTES = 16 * 2 ** 20;
// fflate writes no ZIP64: past these a zip's offsets and counts wrap, and the file is corrupt. The byte
// limit leaves room for the manifest and the headers.
export const ZIP_LIMITS = { bytes: 2 ** 32 - 2 ** 26, files: 65_534 };

/**
 * The export of `lab`'s reviewed cells. Cells reviewed before a lab name the pipeline takes was given
 * are filed under `lab` and exported with it, in the same pass: if the export fails, they stay unnamed.
 * @param {string} lab a name labNameProblem accepts
 * @param {Date} now the export's time
 * @param {number} partBytes how much of the zip is gathered before it goes into a Blob
 * @param {{bytes: number, files: number}} limits what one zip may hold: past them the export fails
 * @returns {Promise<{blob: Blob | null, cells: {sha256: string, reviewedAt: string}[], others: string[]}>}
 *   the zip (null when `lab` has no cells), the verdicts in it, and the lab names of the cells left out
 */
export async function exportLab(lab, now = new Date(), partBytes = PART_BYTES, limits = ZIP_LIMITS) {
  /** @type {Blob[]} */
  const parts = [];
  /** @type {Uint8Array[]} */
  let pending = [];
  let pendingBytes = 0;
  /** @type {Error | null} */
  let failure = null;
  const flush = () => {
    parts.push(new Blob(pending));
    pending = [];
    pendingBytes = 0;
  };
  const zip = new Zip((err, chunk, final) => {
    if (err) {
      failure = err;
      return;
    }
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= partBytes || final) flush();
  });
  /** @type {(name: string, bytes: Uint8Array) => void} */
  const addFile = (name, bytes) => {
    const file = new ZipPassThrough(name);  // images are already compressed: stored, not deflated again
    zip.add(file);
    file.push(bytes, true);
    if (failure) throw failure;
  };
  const manifestCells = [];
  /** @type {{sha256: string, reviewedAt: string}[]} */
  const cells = [];
  /** @type {string[]} */
  const others = [];
  let imageBytes = 0;
  await eachReview((stored) => {
    const cell = labNameProblem(stored.lab) === null ? stored : { ...stored, lab };
    if (cell.lab !== lab) {
      others.push(cell.lab);
      return undefined;
    }
    imageBytes += cell.bytes.byteLength;
    if (imageBytes > limits.bytes || cells.length + 1 > limits.files) {
      throw new Error(`the reviews of ${lab} are more than one zip can hold (${limits.files} images, `
        + `${(limits.bytes / 2 ** 30).toFixed(1)} GiB)`);
    }
    const file = memberName(cell.label, cell.sha256, cell.originalName, cell.bytes);
    addFile(file, new Uint8Array(cell.bytes));
    manifestCells.push({
      file, sha256: cell.sha256, original_name: cell.originalName, lab: cell.lab, model_version: cell.modelVersion,
      answer: cell.answer, probabilities: cell.probabilities, flags: cell.flags, crop_box: cell.cropBox,
      label: cell.label, reviewed_at: cell.reviewedAt,
    });
    cells.push({ sha256: cell.sha256, reviewedAt: cell.reviewedAt });
    return cell === stored ? undefined : cell;
  });
  if (!cells.length) return { blob: null, cells, others };
  const manifest = {
    format: EXPORT_FORMAT, version: EXPORT_VERSION, lab, exported_at: now.toISOString(), cells: manifestCells,
  };
  addFile(MANIFEST, strToU8(JSON.stringify(manifest, null, 1)));
  zip.end();
  if (failure) throw failure;
  return { blob: new Blob(parts, { type: 'application/zip' }), cells, others };
}

/** @param {string} lab @param {Date} now */
export function exportFileName(lab, now = new Date()) {
  return `bloodcell-review-${safeName(lab)}-${now.toISOString().replace(/[:.]/g, '-')}.zip`;
}
