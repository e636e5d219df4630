export const EXPORT_FORMAT: string;
export const EXPORT_VERSION: number;
export const MANIFEST: string;
export const ZIP_LIMITS: { bytes: number; files: number; manifestBytes: number };
export const MAX_PARTS: number;
export function exportLab(lab: string, now?: Date, partBytes?: number, limits?: { bytes: number; files: number; manifestBytes: number }):
  Promise<{ blobs: Blob[]; cells: { sha256: string; reviewedAt: string }[]; others: string[] }>;
export function exportFileName(lab: string, now?: Date, part?: number, parts?: number): string;
