// The reviewer's verdicts: kept in this browser (IndexedDB, with the original image bytes, so a reload,
// going offline or closing the tab loses nothing) until exported as one zip that the pipeline ingests as
// the lab's cells (components/image_example_gen/lab_sources.py reads it). Nothing leaves the machine
// unless the user exports it: these are patient images.
import { zipSync, strToU8 } from 'fflate';
import { memberName, safeName } from './reviewRules.js';

export { allReviews, clearReviews, countReviews, getReview, markExported, reviewSummary, saveReview } from './reviewStore.js';

export const EXPORT_FORMAT = 'bloodcell-review-export'; // models/features.py REVIEW_EXPORT_FORMAT
export const EXPORT_VERSION = 1;
export const MANIFEST = 'manifest.json';
/** Kept in the export, never trained as a class (models/features.py NOT_TRAINED_LABELS). */
export const NOT_TRAINED = [
  { label: 'OTHER', text: 'Not one of these four' },
  { label: 'NOT_A_WHITE_CELL', text: 'Not a white cell' },
  { label: 'UNSURE', text: 'Unsure' },
] as const;

export interface ReviewedCell {
  sha256: string;
  originalName: string;
  mime: string;
  bytes: ArrayBuffer;
  lab: string;
  modelVersion: string;
  answer: string | null;      // null: the model's probabilities were not numbers
  probabilities: number[];
  flags: { lowConfidence: boolean; unlikeTraining: boolean; invalid: boolean };
  cropBox: number[] | null;   // top, left, height, width in image pixels
  label: string;              // the reviewer's: a class name or one of NOT_TRAINED
  reviewedAt: string;         // ISO 8601
}

export async function sha256Hex(bytes: ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The zip: each image under <label>/<sha256 prefix>-<name>, plus the manifest the pipeline checks. */
export function buildExport(cells: ReviewedCell[], lab: string, now = new Date()): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  const manifestCells = cells.map((c) => {
    const file = memberName(c.label, c.sha256, c.originalName, c.bytes);
    files[file] = new Uint8Array(c.bytes);
    return {
      file, sha256: c.sha256, original_name: c.originalName, lab: c.lab, model_version: c.modelVersion,
      answer: c.answer, probabilities: c.probabilities, flags: c.flags, crop_box: c.cropBox,
      label: c.label, reviewed_at: c.reviewedAt,
    };
  });
  const manifest = {
    format: EXPORT_FORMAT, version: EXPORT_VERSION, lab, exported_at: now.toISOString(), cells: manifestCells,
  };
  // Images are already compressed: stored, not deflated again.
  return zipSync({ [MANIFEST]: strToU8(JSON.stringify(manifest, null, 1)), ...files }, { level: 0 });
}

export function exportFileName(lab: string, now = new Date()): string {
  return `bloodcell-review-${safeName(lab)}-${now.toISOString().replace(/[:.]/g, '-')}.zip`;
}
