// What a review export must satisfy for the pipeline to take it, in plain JavaScript so that the tests
// run it in Node as the page runs it (tests/unit/test_web_review_rules.py). The pipeline's side:
// models/features.py (LAB_NAME_PATTERN, BASE_SOURCE) and lab_sources.py (IMAGE_EXTENSIONS).

export const LAB_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const BASE_SOURCE = 'base';

/** null when the pipeline takes `name` as a lab's name; otherwise one line saying why not. */
export function labNameProblem(name) {
  if (!name) return 'Name your lab first: the export carries it.';
  if (name === BASE_SOURCE) return `"${BASE_SOURCE}" is the base dataset's name: choose another lab name.`;
  if (!LAB_NAME_PATTERN.test(name)) {
    return 'A lab name is 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit (its folder under labs/).';
  }
  return null;
}

const SIGNATURES = [
  { ext: '.jpg', also: ['.jpeg'], at: 0, bytes: [0xff, 0xd8, 0xff] },
  { ext: '.png', also: [], at: 0, bytes: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] },
  { ext: '.gif', also: [], at: 0, bytes: [0x47, 0x49, 0x46, 0x38] },
  { ext: '.bmp', also: [], at: 0, bytes: [0x42, 0x4d] },
  { ext: '.webp', also: [], at: 8, bytes: [0x57, 0x45, 0x42, 0x50], riff: true },
];

/** The image format by its first bytes, not its name: { ext, also } or null (not one the pipeline reads). */
export function imageFormat(bytes) {
  const b = new Uint8Array(bytes, 0, Math.min(bytes.byteLength, 16));
  const has = (at, expected) => expected.every((v, i) => b[at + i] === v);
  for (const s of SIGNATURES) {
    if (s.riff && !has(0, [0x52, 0x49, 0x46, 0x46])) continue;
    if (has(s.at, s.bytes)) return { ext: s.ext, also: s.also };
  }
  return null;
}

/** A name safe as one zip path segment: the original's letters, digits, dot, dash and underscore. */
export function safeName(name) {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').slice(-80) || 'image';
}

/** The image's path in the export: <label>/<sha256 prefix>-<name>, the name ending as its format does
 * (a JPEG saved as .jfif, or with no extension, would otherwise be refused by the pipeline). */
export function memberName(label, sha256, originalName, bytes) {
  let name = safeName(originalName);
  const format = imageFormat(bytes);
  if (format && ![format.ext, ...format.also].some((e) => name.toLowerCase().endsWith(e))) name += format.ext;
  return `${label}/${sha256.slice(0, 12)}-${name}`;
}

/** The verdict a key gives on an answer: { label } or { problem } (one line), or null for another key.
 * Enter confirms the model's class only when its probabilities are numbers (an atypicality score that is
 * not a number flags the answer, but its class still stands). On a cell that already has a verdict (given
 * here, or kept from before), Enter keeps it ({ keep }): moving on must not replace a correction with the
 * model's answer. */
export function verdictForKey(key, answer, classNames, notTrainedLabels, kept = null) {
  if (key === 'Enter') {
    if (kept) return { keep: kept };
    return answer.className !== null && answer.probabilities.every((p) => Number.isFinite(p.probability))
      ? { label: answer.className }
      // The focus has moved on (keys typed quickly stay on their own images): say how to come back.
      : { problem: 'The model gave no answer to confirm: come back to this image (Up arrow) and pick the class (1-4).' };
  }
  if (!isVerdictKey(key, classNames.length + notTrainedLabels.length)) return null;
  const n = Number(key);
  return { label: n <= classNames.length ? classNames[n - 1] : notTrainedLabels[n - classNames.length - 1] };
}

/** Whether `key` gives a verdict where there are `choices` verdicts: Enter, or 1 to `choices`. */
export function isVerdictKey(key, choices) {
  return key === 'Enter' || (/^[0-9]$/.test(key) && Number(key) >= 1 && Number(key) <= choices);
}

/** What a verdict does to its image, however it was given (key or pointer): { label } saves it, { keep }
 * saves nothing, { problem } shows one line and saves nothing; `moveOn` says whether the focus goes to the
 * next image at once (so that verdicts given quickly each land on their own image, and keys work after a
 * click). Only a lab name the pipeline would refuse holds the focus: then no verdict can be saved. */
export function verdictAction(verdict, labProblem) {
  if (labProblem && !verdict.keep) return { problem: labProblem, moveOn: false };
  return { ...verdict, moveOn: true };
}

/** What a key does to the focused image: verdictAction of its verdict, or null for a key that is not one. */
export function keyAction(key, answer, classNames, notTrainedLabels, labProblem, kept = null) {
  const verdict = verdictForKey(key, answer, classNames, notTrainedLabels, kept);
  return verdict && verdictAction(verdict, labProblem);
}

/** How far ahead of its own clock the pipeline takes a review time (lab_sources.FUTURE_SLACK). */
export const FUTURE_SLACK_MS = 24 * 3600_000;

/** The time a new verdict is stamped with: now, or just after the verdict it replaces when that one is
 * stamped later (a clock that ran ahead, since set right): the pipeline keeps a cell's latest stamp, and
 * a correction stamped before the verdict it corrects would lose to it. Not when the earlier stamp is
 * more than the pipeline's slack ahead: the pipeline refuses that one, and would refuse its successor.
 * ISO 8601, UTC. @param {number} nowMs @param {string | undefined} earlier ISO 8601 */
export function reviewTime(nowMs, earlier) {
  const before = earlier ? Date.parse(earlier) : NaN;
  const after = Number.isFinite(before) && before >= nowMs && before < nowMs + FUTURE_SLACK_MS;
  return new Date(after ? before + 1 : nowMs).toISOString();
}

/** How many reviewed cells each lab name holds, commonest first ("mylab 50, mylba 7"): a reviewer sees
 * a mistyped name before deleting or exporting. @param {string[]} labs one per cell ('' unnamed) */
export function labTally(labs) {
  const counts = new Map();
  for (const lab of labs) counts.set(lab, (counts.get(lab) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([lab, n]) => `${lab || '(no lab name)'} ${n}`).join(', ');
}
