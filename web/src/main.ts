// The page: loads the published model (CDN, else this browser's cache), then classifies the images
// the user picks or drops, one result per file. A bad file gives a message and never stops the others.
import * as tf from '@tensorflow/tfjs';
import { chooseBackend } from './backend';
import { readConfig } from './config';
import { decodeImage, ImageError } from './images';
import { answerRecord, interpret, predict, predictProbabilities, warmUp } from './inference.js';
import { loadModel, type LoadedModel } from './modelSource';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('model-status');
const fileInput = $<HTMLInputElement>('file-input');
const dropZone = $<HTMLDivElement>('drop-zone');
const results = $<HTMLOListElement>('results');

let loaded: LoadedModel | null = null;
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
  item.dataset.file = file.name;
  item.dataset.state = 'pending';
  item.textContent = `${file.name}: classifying…`;
  results.append(item);
  return item;
}

function showPrediction(item: HTMLLIElement, fileName: string, probabilities: number[], atypicality: number | null) {
  const m = loaded!.metadata;
  const r = interpret(probabilities, m.class_names, m.review_threshold, atypicality);
  item.dataset.state = 'done';
  item.dataset.class = r.className;
  item.dataset.review = String(r.needsReview);
  item.classList.toggle('review', r.needsReview);
  item.replaceChildren();
  const title = document.createElement('p');
  title.innerHTML = `<strong></strong>: <span class="class"></span> (${percent(r.confidence)})`;
  title.querySelector('strong')!.textContent = fileName;
  title.querySelector('.class')!.textContent = r.className;
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
  const record = recordText(r.className, answerRecord(m.eval?.confusion_matrix, m.class_names, r.classId));
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
  let pixels: tf.Tensor4D | null = null;
  try {
    pixels = await decodeImage(file);
    const out = await predict(loaded!.model, pixels);
    showPrediction(item, file.name, out.probabilities[0], out.atypicality ? out.atypicality[0] : null);
  } catch (err) {
    const message = err instanceof ImageError ? err.message : `could not be classified (${(err as Error).message})`;
    showError(item, file.name, message);
  } finally {
    pixels?.dispose();
  }
}

function classifyAll(files: FileList | File[]) {
  if (!loaded) return;
  for (const file of Array.from(files)) {
    const item = addResult(file);
    // One at a time: keeps memory flat with many large files.
    queue = queue.then(() => classify(file, item));
  }
}

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

async function start() {
  try {
    const config = readConfig();
    const backend = await chooseBackend(config.backends);
    const model = await loadModel(config.modelUrl);
    await warmUp(model.model, model.metadata.image_size);
    loaded = model;
    showModel(model, backend);
    exposeDiagnostics(model, backend);
  } catch (err) {
    setStatus(`The model could not be loaded: ${(err as Error).message}`, 'error');
  }
}

if ('serviceWorker' in navigator && import.meta.env.PROD) {
  // Keeps the page itself available offline; failure only means no offline page.
  navigator.serviceWorker.register(`${import.meta.env.BASE_URL}sw.js`).catch(() => undefined);
}
start();
