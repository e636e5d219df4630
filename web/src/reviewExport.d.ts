export const EXPORT_FORMAT: string;
export const EXPORT_VERSION: number;
export const MANIFEST: string;
export function exportLab(lab: string, now?: Date, partBytes?: number):
  Promise<{ blob: Blob | null; cells: { sha256: string; reviewedAt: string }[]; others: string[] }>;
export function exportFileName(lab: string, now?: Date): string;
