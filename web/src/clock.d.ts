export const CLOCK_TOLERANCE_MS: number;
export function serverOffsetMs(date: string | null, age: string | null, sentMs: number, receivedMs: number): number | null;
export function stampCorrectionMs(offsetMs: number | null): number;
export function clockNote(correctionMs: number): string | null;
