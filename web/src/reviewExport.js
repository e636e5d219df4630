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
export const MANIFEST_MAX_BYTES = 20 * 2 ** 20; // models/features.py REVIEW_MANIFEST_MAX_BYTES: the pipeline reads no larger
// fflate writes no ZIP64: past `bytes` or `files` a zip's offsets and counts wrap, and the file is corrupt;
// the byte limit leaves room for the manifest and the headers. A lab with more goes out as several zips.
export const ZIP_LIMITS = { bytes: 2 ** 32 - 2 ** 26, files: 65_534, manifestBytes: MANIFEST_MAX_BYTES };
// Each manifest numbers its zip, `part` of `parts`, so that the pipeline can tell one not copied over.
// The count is known only at the end: each manifest's size keeps room for this many.
export const MAX_PARTS = 999_999;

// A zip entry's time is a DOS date, 1980 to 2099: fflate refuses others (a machine whose clock battery
// died reads 1970). The day inside the range, whatever the time zone.
const ZIP_TIMES = [Date.parse('1980-01-02T00:00:00Z'), Date.parse('2099-12-30T00:00:00Z')];

/** One zip being written: its finished bytes go into Blobs of about partBytes as they come. */
class ExportZip {
  /** @param {number} partBytes @param {Date} now the export's time, stamped on every entry
   * @param {number} part which zip of the export, from 1 */
  constructor(partBytes, now, part) {
    this.part = part;
    this.mtime = Math.min(Math.max(now.getTime(), ZIP_TIMES[0]), ZIP_TIMES[1]);
    /** @type {Blob[]} */
    this.parts = [];
    /** @type {Uint8Array[]} */
    this.pending = [];
    this.pendingBytes = 0;
    /** @type {Error | null} */
    this.failure = null;
    this.imageBytes = 0;
    /** @type {object[]} */
    this.cells = [];
    this.manifestBytes = 0;  // of the manifest as finish() writes it, set by the first manifestGrowth()
    this.zip = new Zip((err, chunk, final) => {
      if (err) {
        this.failure = err;
        return;
      }
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes >= partBytes || final) {
        this.parts.push(new Blob(this.pending));
        this.pending = [];
        this.pendingBytes = 0;
      }
    });
  }

  /** @param {string} name @param {Uint8Array} bytes */
  add(name, bytes) {
    const file = new ZipPassThrough(name);  // images are already compressed: stored, not deflated again
    file.mtime = this.mtime;
    this.zip.add(file);
    file.push(bytes, true);
    if (this.failure) throw this.failure;
  }

  /** How much the manifest grows with this cell's entry (with its header, for the first).
   * @param {object} manifest everything but its cells @param {object} entry */
  manifestGrowth(manifest, entry) {
    // finish()'s layout: each entry's lines indented two deeper, entries joined by ",\n"; the first
    // turns the header's "[]" into "[\n" ... "\n ]".
    const text = JSON.stringify(entry, null, 1);
    const grows = strToU8(text).length + 2 * text.split('\n').length;
    const header = JSON.stringify({ ...manifest, part: this.part, parts: MAX_PARTS, cells: [] }, null, 1);
    return this.cells.length ? grows + 2 : grows + 3 + strToU8(header).length;
  }

  /** @param {object} manifest everything but its cells and numbering @param {number} parts the export's zips
   * @returns {Blob} */
  finish(manifest, parts) {
    const whole = { ...manifest, part: this.part, parts, cells: this.cells };
    this.add(MANIFEST, strToU8(JSON.stringify(whole, null, 1)));
    this.zip.end();
    if (this.failure) throw this.failure;
    return new Blob(this.parts, { type: 'application/zip' });
  }
}

/**
 * The export of `lab`'s reviewed cells: one zip, or several when one cannot hold them all (each a whole
 * export with its own manifest, numbered part of parts; the pipeline reads any number, and names the
 * zips of one it does not find). Cells reviewed before a lab name the
 * pipeline takes was given are filed under `lab` and exported with it, in the same pass: if the export
 * fails, they stay unnamed.
 * @param {string} lab a name labNameProblem accepts
 * @param {Date} now the export's time
 * @param {number} partBytes how much of a zip is gathered before it goes into a Blob
 * @param {{bytes: number, files: number, manifestBytes: number}} limits what one zip may hold
 * @returns {Promise<{blobs: Blob[], cells: {sha256: string, reviewedAt: string}[], others: string[]}>}
 *   the zips (none when `lab` has no cells), the verdicts in them, and the lab names of the cells left out
 */
export async function exportLab(lab, now = new Date(), partBytes = PART_BYTES, limits = ZIP_LIMITS) {
  const manifest = { format: EXPORT_FORMAT, version: EXPORT_VERSION, lab, exported_at: now.toISOString() };
  /** @type {ExportZip[]} all finished at the end, when their number is known */
  const zips = [];
  /** @type {ExportZip | null} */
  let current = null;
  /** @type {{sha256: string, reviewedAt: string}[]} */
  const cells = [];
  /** @type {string[]} */
  const others = [];
  await eachReview((stored) => {
    const cell = labNameProblem(stored.lab) === null ? stored : { ...stored, lab };
    if (cell.lab !== lab) {
      others.push(cell.lab);
      return undefined;
    }
    const size = cell.bytes.byteLength;
    if (size > limits.bytes) {
      throw new Error(`an image of ${lab} (${cell.originalName || cell.sha256}) is larger than a zip can hold `
        + `(${(limits.bytes / 2 ** 30).toFixed(1)} GiB)`);
    }
    const file = memberName(cell.label, cell.sha256, cell.originalName, cell.bytes);
    const entry = {
      file, sha256: cell.sha256, original_name: cell.originalName, lab: cell.lab, model_version: cell.modelVersion,
      answer: cell.answer, probabilities: cell.probabilities, flags: cell.flags, crop_box: cell.cropBox,
      label: cell.label, reviewed_at: cell.reviewedAt,
    };
    if (current && (current.imageBytes + size > limits.bytes || current.cells.length + 1 > limits.files
        || current.manifestBytes + current.manifestGrowth(manifest, entry) > limits.manifestBytes)) {
      current = null;
    }
    if (!current) {
      if (zips.length === MAX_PARTS) throw new Error(`${lab} has more cells than ${MAX_PARTS} zips hold`);
      current = new ExportZip(partBytes, now, zips.length + 1);
      zips.push(current);
    }
    current.add(file, new Uint8Array(cell.bytes));
    current.imageBytes += size;
    current.manifestBytes += current.manifestGrowth(manifest, entry);
    current.cells.push(entry);
    cells.push({ sha256: cell.sha256, reviewedAt: cell.reviewedAt });
    return cell === stored ? undefined : cell;
  });
  const blobs = zips.map((zip) => zip.finish(manifest, zips.length));
  return { blobs, cells, others };
}

/** The file name of part `part` (1-based) of `parts`: no part number for a lone zip.
 * @param {string} lab @param {Date} now @param {number} part @param {number} parts */
export function exportFileName(lab, now = new Date(), part = 1, parts = 1) {
  const numbered = parts > 1 ? `-part${part}-of-${parts}` : '';
  return `bloodcell-review-${safeName(lab)}-${now.toISOString().replace(/[:.]/g, '-')}${numbered}.zip`;
}
