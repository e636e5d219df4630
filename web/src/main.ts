// The page: loads the published model (CDN, else this browser's cache), then classifies the images
// the user picks or drops, one result per file. A bad file gives a message and never stops the others.
import * as tf from '@tensorflow/tfjs';
import { chooseBackend } from './backend';
import { type ClientConfig, readConfig } from './config';
import { decodeImage, ImageError } from './images';
import { answerRecord, interpret, predict, predictProbabilities } from './inference.js';
import { channelNews } from './channel.js';
import { forgetCachedModel, loadModel, readPointer, serverClockOffsetMs, type LoadedModel } from './modelSource';
import { clockNote, stampCorrectionMs } from './clock.js';
import { clearReviews, countReviews, exportFileName, exportLab, getReview, markExported, NOT_TRAINED, reviewSummary, saveReview,
  sha256Hex, type ReviewedCell } from './review';
import { HeldBytes } from './heldBytes.js';
import { isVerdictKey, keyAction, labNameProblem, labTally, reviewTime, verdictAction } from './reviewRules.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('model-status');
const fileInput = $<HTMLInputElement>('file-input');
const dropZone = $<HTMLDivElement>('drop-zone');
const results = $<HTMLOListElement>('results');
const labInput = $<HTMLInputElement>('lab-name');
const reviewCount = $<HTMLParagraphElement>('review-count');
const exportButton = $<HTMLButtonElement>('export-reviews');
const clearButton = $<HTMLButtonElement>('clear-reviews');
const storageNote = $<HTMLParagraphElement>('storage-note');
const clockLine = $<HTMLParagraphElement>('clock-note');
const LAB_KEY = 'bloodcell.lab';

/** What the reviewer needs of each classified image: its file, hash and the model's answer, and its bytes
 * until a verdict on it is saved (then the store holds them), as far as heldBytes.js allows. */
type Answer = ReturnType<typeof interpret>;
interface Classified { file: File; bytes: ArrayBuffer | null; sha256: string; answer: Answer; cropBox: number[] | null }
const classified = new WeakMap<HTMLLIElement, Classified>();

const heldBytes = new HeldBytes();
let loaded: LoadedModel | null = null;
let withdrawnText: string | null = null;  // a rollback withdrew the loaded version: it answers no more
let queue: Promise<void> = Promise.resolve();

function setStatus(text: string, state: string) {
  status.textContent = text;
  status.dataset.state = state;
}

function percent(x: number) {
  return `${(100 * x).toFixed(1)} %`;
}

function showModel(model: LoadedModel, backend: string) {
  const m = model.metadata;
  const accuracy = m.eval?.metrics?.sparse_categorical_accuracy;
  $('model-version').textContent = `${m.model_name} ${m.version} (${m.quantization} weights)`;
  $('model-accuracy').textContent = accuracy === undefined ? 'not recorded' : percent(accuracy);
  $('model-threshold').textContent = `${percent(m.review_threshold)} confidence`;
  $('model-backend').textContent = backend;
  showLabFigure();
  $('model-facts').hidden = false;
  setStatus(`Ready. ${model.note}`, model.source === 'offline-cache' ? 'offline' : 'ready');
  status.dataset.note = model.note;
  status.dataset.source = model.source;
  status.dataset.version = m.version;
  fileInput.disabled = false;
  dropZone.setAttribute('aria-disabled', 'false');
}

function addResult(file: File): HTMLLIElement {
  const item = document.createElement('li');
  item.tabIndex = -1;  // takes the focus when a verdict moves on to it before it can be reviewed
  item.dataset.file = file.name;
  item.dataset.state = 'pending';
  item.textContent = `${file.name}: classifying…`;
  results.append(item);
  return item;
}

function showPrediction(item: HTMLLIElement, fileName: string, r: Answer) {
  const m = loaded!.metadata;
  item.dataset.state = 'done';
  if (r.className !== null) item.dataset.class = r.className;
  item.dataset.review = String(r.needsReview);
  item.classList.toggle('review', r.needsReview);
  item.replaceChildren();
  const title = document.createElement('p');
  title.innerHTML = `<strong></strong>: <span class="class"></span>${r.confidence === null ? '' : ` (${percent(r.confidence)})`}`;
  title.querySelector('strong')!.textContent = fileName;
  title.querySelector('.class')!.textContent = r.className ?? 'no answer';
  item.append(title);
  item.dataset.unlikeTraining = String(r.unlikeTraining);
  const reasons = [];
  if (r.invalid) reasons.push('the model gave no valid answer (not a number)');
  if (r.unlikeTraining) reasons.push('the image is unlike the training images (another microscope or stain, or not a white cell?)');
  if (r.lowConfidence) reasons.push(`low confidence (below ${percent(m.review_threshold)})`);
  if (reasons.length) {
    const flag = document.createElement('p');
    flag.className = 'review-flag';
    flag.textContent = `Have a person review this image: ${reasons.join('; ')}.`;
    item.append(flag);
  }
  const record = r.className === null || r.classId === null ? null
    : recordText(r.className, answerRecord(m.eval?.confusion_matrix, m.class_names, r.classId));
  if (record) {
    const line = document.createElement('p');
    line.className = 'hint answer-record';
    line.textContent = record;
    item.append(line);
  }
  const table = document.createElement('table');
  table.innerHTML = '<caption class="hint">Probability of each class</caption>';
  for (const p of r.probabilities) {
    const row = table.insertRow();
    row.insertCell().textContent = p.name;
    const meter = document.createElement('meter');
    meter.min = 0; meter.max = 1; meter.value = p.probability;
    meter.setAttribute('aria-label', `${p.name} probability`);
    row.insertCell().append(meter);
    row.insertCell().textContent = percent(p.probability);
  }
  item.append(table);
}

/** The answer's track record on the evaluation images, in words; null when the model shipped none. */
function recordText(answer: string, record: ReturnType<typeof answerRecord>): string | null {
  if (!record) return null;
  const parts = [record.recall === null ? `none was a ${answer} image`
    : `${answer} was the answer for ${percent(record.recall)} of ${answer} images`];
  const also = record.recall === null ? '' : 'also ';
  parts.push(record.alsoGivenTo.length
    ? `it was ${also}the answer for ${record.alsoGivenTo.map((o) => `${percent(o.share)} of ${o.name}`).join(', ')} images`
    : 'it was the answer for no image of another class');
  return `On the ${record.images} evaluation images: ${parts.join('; ')}.`;
}

function showError(item: HTMLLIElement, fileName: string, message: string) {
  item.dataset.state = 'error';
  item.className = 'error';
  item.setAttribute('role', 'alert');
  item.textContent = `${fileName}: ${message}`;
}

async function classify(file: File, item: HTMLLIElement) {
  if (withdrawnText) {  // queued before the rollback was seen
    showError(item, file.name, `not classified: ${withdrawnText}`);
    return;
  }
  let pixels: tf.Tensor4D | null = null;
  try {
    pixels = await decodeImage(file);
    const out = await predict(loaded!.model, pixels);
    const m = loaded!.metadata;
    const answer = interpret(out.probabilities[0], m.class_names, m.review_threshold, out.atypicality ? out.atypicality[0] : null);
    const cropBox = out.cropBox ? out.cropBox[0] : null;
    // Off the queue: the next image is classified meanwhile.
    void showReviewable(item, file, answer, cropBox);
  } catch (err) {
    const message = err instanceof ImageError ? err.message : `could not be classified (${errorText(err)})`;
    showError(item, file.name, message);
  } finally {
    pixels?.dispose();
  }
}

/** Shows the answer together with its review controls, not before: a verdict typed as soon as an answer
 * shows must land on that image (a key on an image that cannot be reviewed yet gives no verdict, and the
 * next key would have gone to it instead of to its own image). The answer stands even if it cannot be
 * reviewed (hashing needs crypto.subtle; the file may have gone). */
async function showReviewable(item: HTMLLIElement, file: File, answer: Answer, cropBox: number[] | null) {
  const parts = await reviewParts(file, answer, cropBox).catch((err: unknown) => errorText(err));
  let entry: Classified | null = null;
  try {
    showPrediction(item, file.name, answer);
    if (typeof parts === 'string') {
      const note = document.createElement('p');
      note.className = 'hint';
      note.textContent = `This answer cannot be reviewed here: ${parts}`;
      item.append(note);
      return;
    }
    if (parts.view) item.querySelector('p')!.after(parts.view);
    entry = parts.entry;
    entry.bytes = heldBytes.take(parts.bytes);
    addReviewControls(item, entry, parts.earlier);
  } catch (err) {  // off the queue: nothing else would report it, and the row would say "classifying" for good
    heldBytes.release(entry?.bytes ?? null);
    classified.delete(item);
    showError(item, file.name, `could not be shown (${errorText(err)})`);
  }
}

/** What reviewing an image needs: its hash, its view, and the verdict the store already holds on it. */
async function reviewParts(file: File, answer: Answer, cropBox: number[] | null) {
  const bytes = await file.arrayBuffer();
  const entry: Classified = { file, bytes: null, sha256: await sha256Hex(bytes), answer, cropBox };
  const view = await drawCell(entry).catch(() => null);  // a view the browser cannot draw loses no review
  // A cell already in the store (a batch added again after a reload or a crash) says so, from the moment
  // it can be reviewed: Enter keeps that verdict.
  return { entry, bytes, view, earlier: await storedReview(entry.sha256) };
}

/** The verdict the store holds on an image (undefined: none, or unreadable), read again if a verdict was
 * saved or the reviews deleted meanwhile, here or in another tab: the caller would miss that news. */
async function storedReview(sha256: string) {
  let kept: Awaited<ReturnType<typeof getReview>> | undefined;
  let seen;
  do {
    seen = storeChanges;
    kept = await getReview(sha256).catch(() => undefined);
  } while (seen !== storeChanges);
  return kept;
}

function classifyAll(files: FileList | File[]) {
  if (!loaded || withdrawnText) return;
  for (const file of Array.from(files)) {
    const item = addResult(file);
    // One at a time: keeps memory flat with many large files.
    // An error classify() does not catch must not stop the queue: every later image would wait forever.
    queue = queue.then(() => classify(file, item)).catch((err) => showError(item, file.name, `could not be classified (${errorText(err)})`));
  }
}

/** The image with the window the model classified drawn on it: a wrong crop is not a wrong class. */
async function drawCell(entry: Classified): Promise<HTMLCanvasElement> {
  const bitmap = await createImageBitmap(entry.file);
  const scale = Math.min(1, 320 / bitmap.width);
  const canvas = document.createElement('canvas');
  canvas.className = 'cell-view';
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const context = canvas.getContext('2d')!;
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  if (entry.cropBox) {
    const [top, left, height, width] = entry.cropBox.map((v) => v * scale);
    context.strokeStyle = '#f59e0b';
    context.lineWidth = 2;
    context.strokeRect(left, top, width, height);
    canvas.dataset.cropBox = entry.cropBox.map((v) => v.toFixed(1)).join(',');
  }
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${entry.file.name}, with the window the model classified outlined`);
  return canvas;
}

function addReviewControls(item: HTMLLIElement, entry: Classified, earlier: Awaited<ReturnType<typeof getReview>> | undefined) {
  item.tabIndex = 0;
  item.setAttribute('aria-describedby', 'review-help');  // the keys, read out with the focused image
  item.setAttribute('aria-keyshortcuts', 'Enter 1 2 3 4 5 6 7 ArrowUp ArrowDown');
  const names = loaded!.metadata.class_names;
  const group = document.createElement('div');
  group.className = 'review-buttons';
  group.setAttribute('role', 'group');
  group.setAttribute('aria-label', `Review of ${entry.file.name}`);
  const choices = [...names.map((n, i) => ({ label: n, text: `${i + 1} ${n}` })),
    ...NOT_TRAINED.map((o, i) => ({ label: o.label, text: `${names.length + i + 1} ${o.text}` }))];
  for (const choice of choices) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.text = choice.text;
    button.dataset.label = choice.label;
    button.addEventListener('click', () => applyVerdict(item, verdictAction({ label: choice.label }, verdictProblem())));
    group.append(button);
  }
  const verdict = document.createElement('p');
  verdict.className = 'verdict';
  verdict.setAttribute('aria-live', 'polite');
  item.append(group, verdict);
  classified.set(item, entry);  // reviewable only now that its verdict line exists
  pressed(item, earlier?.label ?? null);
  if (earlier) {
    item.dataset.reviewedEarlier = earlier.label;
    const lab = labInput.value.trim();
    verdict.textContent = `Reviewed earlier${earlier.lab && earlier.lab !== lab ? ` under lab ${earlier.lab}` : ''}: `
      + `${earlier.label}; Enter keeps it, a new verdict replaces it.`;
  }
}

/** Shows `label` as the cell's verdict, which Enter keeps (reviewRules.verdictForKey); with none, Enter
 * confirms the model's answer. */
function pressed(item: HTMLLIElement, label: string | null) {
  const answer = classified.get(item)?.answer.className;
  for (const b of item.querySelectorAll<HTMLButtonElement>('.review-buttons button')) {
    b.setAttribute('aria-pressed', String(label !== null && b.dataset.label === label));
    const hint = label !== null ? (b.dataset.label === label ? ' (Enter: keep)' : '')
      : (b.dataset.label === answer ? ' (Enter: confirm)' : '');
    b.textContent = b.dataset.text + hint;
  }
}

/** The verdict Enter keeps on this item: the one given here (saved or being saved), else the one kept
 * from before; null if none. */
function keptVerdict(item: HTMLLIElement): string | null {
  return item.dataset.pending ?? item.dataset.reviewed ?? item.dataset.reviewedEarlier ?? null;
}

/** This machine's clock, set to the model server's when the two differ by more than a little (clock.js). */
function stampNow(): number {
  return Date.now() + stampCorrectionMs(serverClockOffsetMs());
}

function showClockNote() {
  const note = clockNote(stampCorrectionMs(serverClockOffsetMs()));
  clockLine.hidden = note === null;
  clockLine.textContent = note ?? '';
}

/** Why a verdict cannot be taken now (one line), or null. */
function verdictProblem(): string | null {
  return labNameProblem(labInput.value.trim());
}

class FileChanged extends Error {
  constructor() {
    super('the file changed or went since it was classified: add it again');
  }
}

/** The file's bytes read again, if they are still the ones classified (the verdict is on what was shown). */
async function fileBytes(entry: Classified): Promise<ArrayBuffer> {
  let bytes: ArrayBuffer;
  try {
    bytes = await entry.file.arrayBuffer();
  } catch {
    throw new FileChanged();
  }
  if (await sha256Hex(bytes) !== entry.sha256) throw new FileChanged();
  return bytes;
}

/** Saves the verdict on this item, whichever item has the focus by the time the write ends; false when
 * it could not be kept (the item says why and shows no verdict). */
async function review(item: HTMLLIElement, label: string): Promise<boolean> {
  const entry = classified.get(item);
  if (!entry || !loaded) return false;
  const verdict = item.querySelector<HTMLParagraphElement>('.verdict')!;
  const problem = verdictProblem();
  if (problem) {
    verdict.textContent = problem;
    return false;
  }
  writing += 1;  // from here: the stamp reads the store before the write
  const r = entry.answer;
  const lab = labInput.value.trim();
  const earlier = await getReview(entry.sha256).catch(() => undefined);
  const reviewedAt = reviewTime(stampNow(), earlier?.reviewedAt);
  try {
    const bytes = entry.bytes ?? earlier?.bytes ?? await fileBytes(entry);
    const cell: ReviewedCell = {
      sha256: entry.sha256, originalName: entry.file.name, mime: entry.file.type, bytes, lab,
      modelVersion: loaded.metadata.version, answer: r.className, probabilities: r.probabilities.map((p) => p.probability),
      flags: { lowConfidence: r.lowConfidence, unlikeTraining: r.unlikeTraining, invalid: r.invalid },
      cropBox: entry.cropBox, label, reviewedAt,
    };
    await saveReview(cell);
    heldBytes.release(entry.bytes);  // the store holds them now
    entry.bytes = null;
  } catch (err) {
    verdict.textContent = err instanceof FileChanged
      ? `Not saved: ${err.message}.` : `Not saved (${errorText(err)}): give the verdict again.`;
    verdict.dataset.saved = 'false';
    unsaved.add(item);
    await showReviewCount();
    return false;
  } finally {
    writing -= 1;
  }
  showVerdict(entry.sha256, label);
  otherTabs?.postMessage({ saved: { sha256: entry.sha256 } });
  await showReviewCount();
  return true;
}

let storeChanges = 0;  // verdicts saved and deletions so far, here or in another tab

/** The same image shown twice (added twice, or open in another tab) is one record: every row of it
 * shows the verdict kept. */
function showVerdict(sha256: string, label: string) {
  storeChanges += 1;
  for (const row of results.querySelectorAll<HTMLLIElement>(':scope > li')) {
    const answer = classified.get(row)?.answer.className;
    if (answer === undefined || classified.get(row)!.sha256 !== sha256) continue;
    const line = row.querySelector<HTMLParagraphElement>('.verdict')!;
    unsaved.delete(row);
    delete line.dataset.saved;
    row.dataset.reviewed = label;
    pressed(row, label);
    line.textContent = label === answer ? `Confirmed: ${label}` : `Reviewed: ${label} (the model said ${answer ?? 'no answer'})`;
  }
}

/** After the reviews were deleted: the rows on screen show only the verdicts the store still holds
 * (one saved while the deletion was asked about), and Enter confirms again instead of keeping a deleted
 * one. A verdict that could not be saved was in no store: deleted in another tab,
 * it stays marked (here, deleting everything gives it up too). */
function forgetVerdicts(unsavedToo: boolean) {
  storeChanges += 1;
  if (unsavedToo) unsaved.clear();
  for (const row of results.querySelectorAll<HTMLLIElement>(':scope > li')) {
    const entry = classified.get(row);
    if (!entry || unsaved.has(row)) continue;
    delete row.dataset.reviewed;
    delete row.dataset.reviewedEarlier;
    pressed(row, null);
    const line = row.querySelector<HTMLParagraphElement>('.verdict')!;
    delete line.dataset.saved;
    line.textContent = '';
    void showStoredVerdict(entry.sha256);
  }
}

// The page open in several tabs shares one store: each shows what another saved or deleted. A tab that
// missed a deletion had let Enter "keep" a verdict that was saved nowhere.
const otherTabs = typeof BroadcastChannel === 'function' ? new BroadcastChannel('bloodcell.reviews') : null;
otherTabs?.addEventListener('message', (event: MessageEvent<{ saved?: { sha256: string }; deleted?: true }>) => {
  if (event.data?.saved) void showStoredVerdict(event.data.saved.sha256);
  if (event.data?.deleted) forgetVerdicts(false);
  void showReviewCount();
});

/** Another tab saved a verdict on this image: shows the one the store kept. Two tabs saving one image at
 * nearly the same moment each hear of the other's save, possibly after their own later one. */
async function showStoredVerdict(sha256: string) {
  const kept = await storedReview(sha256);
  if (kept) showVerdict(sha256, kept.label);
}

/** Focus on the image `by` places from `item` (the first or last when past either end), whether or not
 * it can be reviewed yet: a verdict given before the next image is ready must not fall back on this one
 * (a key on an image still being classified gives no verdict, and says so). */
function moveFocus(item: HTMLLIElement, by: number) {
  const items = Array.from(results.querySelectorAll<HTMLLIElement>(':scope > li'));
  items[Math.max(0, Math.min(items.length - 1, items.indexOf(item) + by))]?.focus();
}

/** A verdict given by key or pointer. The focus always ends on an image, never on a button, so the
 * keys go on working after a click; it moves on at once, not when the write ends: a verdict given
 * meanwhile is for the next image. */
function applyVerdict(item: HTMLLIElement, action: ReturnType<typeof verdictAction>) {
  const line = item.querySelector<HTMLParagraphElement>('.verdict')!;
  if (action.problem) line.textContent = action.problem;
  if (action.keep && action.keep !== item.dataset.pending) {  // a verdict being saved reports itself
    line.textContent = `Kept: ${action.keep}.`;
    item.dataset.reviewed ??= action.keep;
    if (unsaved.delete(item)) {  // the verdict that could not be saved is given up for the one kept
      delete line.dataset.saved;
      void showReviewCount();
    }
  }
  moveFocus(item, action.moveOn ? 1 : 0);
  if (action.label) {
    item.dataset.pending = action.label;  // Enter, pressed before the write ends, keeps this one
    void review(item, action.label).finally(() => {
      if (item.dataset.pending === action.label) delete item.dataset.pending;
    });
  }
}

results.addEventListener('keydown', (event) => {
  const item = (event.target as HTMLElement).closest('li') as HTMLLIElement | null;
  if (!item || event.target !== item) return;
  if (event.ctrlKey || event.altKey || event.metaKey) return;  // the browser's own shortcuts
  if (event.key === 'ArrowDown' || event.key === 'ArrowRight') moveFocus(item, 1);
  else if (event.key === 'ArrowUp' || event.key === 'ArrowLeft') moveFocus(item, -1);
  else if (!classified.has(item)) {
    if (!isVerdictKey(event.key, (loaded?.metadata.class_names.length ?? 0) + NOT_TRAINED.length)) return;
    event.preventDefault();
    // Nothing to judge yet, so the key saves nothing: say so, or the reviewer takes it as given.
    if (item.dataset.state === 'pending') {
      item.setAttribute('aria-live', 'polite');  // read out, and so is its answer when it comes
      item.textContent = `${item.dataset.file}: still being classified; give its verdict once its answer shows.`;
    } else if (!event.repeat) {  // a held key moves on once, as it gives one verdict
      moveFocus(item, 1);  // an image that cannot be reviewed (it says why): the next key is for the next one
    }
    return;
  } else {
    const action = keyAction(event.key, classified.get(item)!.answer, loaded!.metadata.class_names,
      NOT_TRAINED.map((o) => o.label), verdictProblem(), keptVerdict(item));
    if (!action) return;
    event.preventDefault();
    if (event.repeat) return;  // a held key gives one verdict, not one per image
    applyVerdict(item, action);
    return;
  }
  event.preventDefault();
});

let countAsked = 0;
/** Images whose last verdict could not be saved: named under the count until given again and saved. */
const unsaved = new Set<HTMLLIElement>();

let writing = 0;  // verdicts being saved
// Closing or reloading the tab loses a verdict not saved yet, or one the store refused: ask first.
window.addEventListener('beforeunload', (event) => {
  if (!writing && !unsaved.size) return;
  event.preventDefault();
  event.returnValue = 'unsaved verdicts';  // what Chrome and Edge before 119 ask for instead (any non-empty value)
});

function errorText(err: unknown): string {
  return err instanceof Error ? err.message || err.name : String(err);
}

async function showReviewCount() {
  // Verdicts typed quickly save side by side, and their counts can come back out of order: only the
  // count asked last (after every write so far) is shown.
  const asked = ++countAsked;
  const count = await countReviews().catch(() => 0);
  if (asked !== countAsked) return;
  reviewCount.textContent = (count
    ? `${count} reviewed cell${count === 1 ? '' : 's'} in this browser.`
    : 'No reviewed cells in this browser.')
    + (unsaved.size ? ` Not saved: the verdict on ${unsaved.size} image${unsaved.size === 1 ? '' : 's'} (marked in red).` : '');
  reviewCount.dataset.unsaved = String(unsaved.size);
  reviewCount.dataset.count = String(count);
  exportButton.disabled = clearButton.disabled = !count;
  showStorageNote();
  if (count) void keepStorage();
}

let storageAsked: Promise<void> | null = null;
let storageKept: boolean | null = null;  // null: not asked yet

/** The note to export often, while there are reviews and the browser has not agreed to keep them. */
function showStorageNote() {
  storageNote.hidden = storageKept !== false || !Number(reviewCount.dataset.count);
}

/** Asks the browser, once, to keep this page's storage when space runs short: it holds the offline
 * copy of the model and reviews not yet exported, which a browser may otherwise delete. Where it will
 * not, the page says so while there are reviews. */
function keepStorage(): Promise<void> {
  storageAsked ??= (async () => {
    storageKept = await (navigator.storage?.persist?.() ?? Promise.resolve(false)).catch(() => false);
    storageNote.dataset.persisted = String(storageKept);
    showStorageNote();
  })();
  return storageAsked;
}

exportButton.addEventListener('click', async () => {
  const lab = labInput.value.trim();
  const problem = labNameProblem(lab);
  if (problem) {
    reviewCount.textContent = problem;
    labInput.focus();
    return;
  }
  // One lab per export: the pipeline files an export under the lab folder it is put in. Cells reviewed
  // before a lab name the pipeline takes was given go with the lab named at their first export, and stay.
  const now = new Date(stampNow());
  let exported: Awaited<ReturnType<typeof exportLab>>;
  try {
    exported = await exportLab(lab, now);
  } catch (err) {
    reviewCount.textContent = `Not exported: the zip could not be built (${errorText(err)}); the reviews stay here.`;
    return;
  }
  const { blobs, cells, others } = exported;
  const stay = others.length ? ` ${others.length} reviewed under other lab names stay here (${labTally(others)}).` : '';
  if (!blobs.length) {
    reviewCount.textContent = `No reviewed cells of ${lab} to export.${stay}`;
    return;
  }
  const names = blobs.map((_, i) => exportFileName(lab, now, i + 1, blobs.length));
  reviewCount.textContent = blobs.length === 1
    ? `Exported the ${cells.length} cells of ${lab} as ${names[0]}: give that file to the pipeline.${stay}`
    : `Exported the ${cells.length} cells of ${lab} as ${blobs.length} files (more than one zip holds), `
      + `${names[0]} to ${names[names.length - 1]}: give all of them to the pipeline (if the browser asks, allow `
      + `this page to download several files).${stay}`;
  blobs.forEach((blob, i) => {
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = names[i];
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  });
  // Only for the count "Delete" shows: the page cannot know that the download landed.
  await markExported(cells).catch(() => undefined);
});

clearButton.addEventListener('click', async () => {
  const summary = await reviewSummary().catch(() => null);
  const which = summary ? `all ${summary.labs.length} reviewed cells from this browser, of every lab name (${labTally(summary.labs)})`
    : 'every reviewed cell from this browser, of every lab name';
  const never = !summary ? 'Export each lab\'s first if they are needed.'
    : summary.unexported ? `${summary.unexported} of them ${summary.unexported === 1 ? 'is' : 'are'} in no export offered for download: export first if they are needed.`
      : 'Each is in an export offered for download: check that the file was saved.';
  if (!window.confirm(`Delete ${which}? ${never}`)) return;
  let stayed;
  try {
    stayed = await clearReviews(summary?.verdicts);  // not one saved while the question was on screen
  } catch (err) {
    reviewCount.textContent = `Not deleted (${errorText(err)}).`;
    return;
  }
  forgetVerdicts(true);
  otherTabs?.postMessage({ deleted: true });
  await showReviewCount();
  if (stayed) {
    reviewCount.textContent += ` ${stayed} reviewed in another tab while you were asked ${stayed === 1 ? 'was' : 'were'} `
      + 'not deleted.';
  }
});

/** The model's figure on this lab's held-out reviewed cells, from the published metadata. */
function showLabFigure() {
  const out = $('lab-accuracy');
  const lab = labInput.value.trim();
  const sources = loaded?.metadata.eval?.sources;
  const problem = labNameProblem(lab);
  const figure = !problem && sources && Object.hasOwn(sources, lab) ? sources[lab] : undefined;
  const few = loaded?.metadata.eval?.min_lab_cells ?? 20;
  if (!lab) out.textContent = 'no lab named';
  else if (problem) out.textContent = problem;
  else if (!figure || figure.accuracy === null) out.textContent = `none yet: this model has no held-out cells of ${lab}`;
  else out.textContent = `${percent(figure.accuracy)} of ${figure.cells} cells`
    + (figure.cells < few ? ` (too few to mean much: under ${few})` : '');
  out.dataset.lab = lab;
}

labInput.value = localStorage.getItem(LAB_KEY) ?? '';
labInput.addEventListener('change', () => {
  localStorage.setItem(LAB_KEY, labInput.value.trim());
  showLabFigure();
});
void showReviewCount();

fileInput.addEventListener('change', () => {
  if (fileInput.files) classifyAll(fileInput.files);
  fileInput.value = '';
});
dropZone.addEventListener('keydown', (event) => {
  if ((event.key === 'Enter' || event.key === ' ') && !fileInput.disabled) {
    event.preventDefault();
    fileInput.click();
  }
});
dropZone.addEventListener('click', () => { if (!fileInput.disabled) fileInput.click(); });
dropZone.addEventListener('dragover', (event) => { event.preventDefault(); dropZone.classList.add('over'); });
dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
dropZone.addEventListener('drop', (event) => {
  event.preventDefault();
  dropZone.classList.remove('over');
  if (event.dataTransfer?.files.length) classifyAll(event.dataTransfer.files);
});

/** For benchmarks and support: the median time of `repeats` predictions on a 240x320 image, in ms. */
function exposeDiagnostics(model: LoadedModel, backend: string) {
  (window as unknown as { bloodcell: object }).bloodcell = {
    backend,
    version: model.metadata.version,
    async medianPredictionMs(repeats = 30): Promise<number> {
      const pixels = tf.randomUniform([1, 240, 320, 3], 0, 255) as tf.Tensor4D;
      const times: number[] = [];
      try {
        for (let i = 0; i < repeats; i++) {
          const start = performance.now();
          await predictProbabilities(model.model, pixels);
          times.push(performance.now() - start);
        }
      } finally {
        pixels.dispose();
      }
      times.sort((a, b) => a - b);
      return times[Math.floor(times.length / 2)];
    },
  };
}

// A page left open for days (a lab's workstation) reads the channel again: when it comes back into view,
// when the network returns, and every half hour.
const CHANNEL_RECHECK_MS = 30 * 60_000;

let channelChecks = 0;
let appliedCheck = 0;  // the latest check whose answer was shown: an older one's answer is older news

async function recheckChannel(modelUrl: string) {
  if (!loaded || withdrawnText) return;
  const check = ++channelChecks;
  let pointer;
  try {
    pointer = await readPointer(modelUrl);
  } catch {
    return;  // offline, or not a pointer: nothing new to tell
  }
  if (check < appliedCheck || withdrawnText) return;
  appliedCheck = check;
  const version = loaded.metadata.version;
  const news = channelNews(version, pointer);
  // The channel still names the version this page could not load: that failure is still the news.
  const stillUnloadable = news !== null && !news.withdrawn && loaded.unloadable === String(pointer.version);
  status.dataset.channel = !news ? 'current' : news.withdrawn ? 'withdrawn' : stillUnloadable ? 'unloadable' : 'newer';
  if (news?.withdrawn) {
    withdrawnText = news.text;
    void forgetCachedModel(modelUrl, version).catch(() => undefined);  // offline, a reload must not bring it back
    fileInput.disabled = true;
    dropZone.setAttribute('aria-disabled', 'true');
    setStatus(news.text, 'error');
  } else {
    // Read just now: an "Offline" note from the page's start is no longer true.
    showClockNote();
    const at = new Date().toLocaleTimeString();
    setStatus(stillUnloadable ? `Ready. ${loaded.note}`
      : `Ready. Version ${version}${news ? ` answers; ${news.text}` : ` is current (checked ${at}).`}`, 'ready');
  }
}

/** Calls `act` when the page comes back into view, when the network returns, and every `everyMs`;
 * returns what stops it. */
function onWake(act: () => void, everyMs: number): () => void {
  const whenShown = () => {
    if (document.visibilityState === 'visible') act();
  };
  const timer = setInterval(act, everyMs);
  document.addEventListener('visibilitychange', whenShown);
  window.addEventListener('online', act);
  return () => {
    clearInterval(timer);
    document.removeEventListener('visibilitychange', whenShown);
    window.removeEventListener('online', act);
  };
}

function watchChannel(modelUrl: string) {
  onWake(() => void recheckChannel(modelUrl), CHANNEL_RECHECK_MS);
}

async function start() {
  if (!window.isSecureContext) {  // no crypto.subtle (the model's hashes, the reviews'), no offline copy
    setStatus('This page needs HTTPS (or localhost): the browser checks the model\'s files and keeps reviews '
      + 'only on a secure page. Ask for the page to be served over HTTPS.', 'error');
    return;
  }
  let config: ClientConfig;
  let backend: string;
  try {
    config = readConfig();
    backend = await chooseBackend(config.backends);
  } catch (err) {
    setStatus(`The model could not be loaded: ${(err as Error).message}`, 'error');
    return;
  }
  const load = async (): Promise<boolean> => {
    try {
      const model = await loadModel(config.modelUrl);  // warmed up, and checked to answer per class
      loaded = model;
      showModel(model, backend);
      showClockNote();
      exposeDiagnostics(model, backend);
      watchChannel(config.modelUrl);
      void keepStorage();  // the offline copy of the model is only as safe as this page's storage
      return true;
    } catch (err) {
      setStatus(`The model could not be loaded: ${(err as Error).message}. The page tries again when the `
        + 'network returns, when it is shown again, and every few minutes.', 'error');
      return false;
    }
  };
  if (!await load()) retryLoad(load);
}

// A page opened while the CDN was down (a lab's workstation after a power cut) must not wait for a reload.
const LOAD_RETRY_MS = 5 * 60_000;

function retryLoad(load: () => Promise<boolean>) {
  let busy = false;
  const stop = onWake(async () => {
    if (busy || loaded) return;
    busy = true;
    try {
      if (await load()) stop();
    } finally {
      busy = false;
    }
  }, LOAD_RETRY_MS);
}

if ('serviceWorker' in navigator && import.meta.env.PROD) {
  // Keeps the page itself available offline; failure only means no offline page.
  navigator.serviceWorker.register(`${import.meta.env.BASE_URL}sw.js`).catch(() => undefined);
}
start();
