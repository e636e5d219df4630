import type { ReviewedCell } from './review';

export function saveReview(cell: ReviewedCell): Promise<IDBValidKey>;
export function getReview(sha256: string): Promise<ReviewedCell | undefined>;
export function countReviews(): Promise<number>;
export interface Verdict { sha256: string; reviewedAt: string; label: string; lab: string }
export function clearReviews(only?: Verdict[]): Promise<number>;
export function reviewSummary(): Promise<{ labs: string[]; unexported: number; verdicts: Verdict[] }>;
export function markExported(cells: { sha256: string; reviewedAt: string }[]): Promise<undefined>;
export function eachReview(visit: (cell: ReviewedCell) => ReviewedCell | null | undefined,
  mode?: IDBTransactionMode): Promise<void>;
