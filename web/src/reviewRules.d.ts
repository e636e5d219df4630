export const LAB_NAME_PATTERN: RegExp;
export const BASE_SOURCE: string;
export function labNameProblem(name: string): string | null;
export function imageFormat(bytes: ArrayBuffer): { ext: string; also: string[] } | null;
export function safeName(name: string): string;
export function memberName(label: string, sha256: string, originalName: string, bytes: ArrayBuffer): string;
export function verdictForKey(key: string, answer: { className: string | null; probabilities: { probability: number }[] },
  classNames: string[],
  notTrainedLabels: readonly string[]): { label: string; problem?: undefined } | { problem: string; label?: undefined } | null;
export function verdictAction(verdict: { label?: string; problem?: string }, labProblem: string | null):
  { label?: string; problem?: string; moveOn: boolean };
export function keyAction(key: string, answer: { className: string | null; probabilities: { probability: number }[] },
  classNames: string[], notTrainedLabels: readonly string[], labProblem: string | null):
  { label?: string; problem?: string; moveOn: boolean } | null;
export function labTally(labs: string[]): string;
