export const LAB_NAME_PATTERN: RegExp;
export const BASE_SOURCE: string;
export function labNameProblem(name: string): string | null;
export function imageFormat(bytes: ArrayBuffer): { ext: string; also: string[] } | null;
export function safeName(name: string): string;
export function memberName(label: string, sha256: string, originalName: string, bytes: ArrayBuffer): string;
type Answer = { className: string | null; probabilities: { probability: number }[] };
type Verdict = { label?: string; keep?: string; problem?: string };
export function verdictForKey(key: string, answer: Answer, classNames: string[], notTrainedLabels: readonly string[],
  kept?: string | null): Verdict | null;
export function isVerdictKey(key: string, choices: number): boolean;
export function verdictAction(verdict: Verdict, labProblem: string | null): Verdict & { moveOn: boolean };
export function keyAction(key: string, answer: Answer, classNames: string[], notTrainedLabels: readonly string[],
  labProblem: string | null, kept?: string | null): (Verdict & { moveOn: boolean }) | null;
export const FUTURE_SLACK_MS: number;
export function reviewTime(nowMs: number, earlier: string | undefined): string;
export function labTally(labs: string[]): string;
