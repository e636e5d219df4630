// The reviewer's verdicts: kept in this browser (IndexedDB, with the original image bytes, so a reload,
// going offline or closing the tab loses nothing) until exported as one zip that the pipeline ingests as
// the lab's cells (components/image_example_gen/lab_sources.py reads it). Nothing leaves the machine
// unless the user exports it: these are patient images.
export { clearReviews, countReviews, getReview, markExported, reviewSummary, saveReview } from './reviewStore.js';
export { exportFileName, exportLab } from './reviewExport.js';

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
