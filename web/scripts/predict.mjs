// Class probabilities from a tfjs graph model in Node, for images already decoded to pixels.
//   node scripts/predict.mjs --model DIR --pixels FILE.f32 --backend cpu|wasm
// FILE.f32 holds little-endian float32 RGB pixels, 0-255; FILE.f32.json holds {"shape": [n, h, w, 3]}.
// Prints {"backend": ..., "probabilities": [[...], ...], "atypicality": [...] | null} on stdout; any
// failure is one line on stderr.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { predict } from '../src/inference.js';
import { loadGraphModelFromDir, useBackend } from './node-model.mjs';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    pixels: { type: 'string' },
    backend: { type: 'string', default: 'cpu' },
    'batch-size': { type: 'string', default: '16' },
  },
});

try {
  if (!values.model || !values.pixels) throw new Error('usage: predict.mjs --model DIR --pixels FILE.f32 [--backend cpu|wasm]');
  await useBackend(values.backend);
  const { shape } = JSON.parse(await readFile(`${values.pixels}.json`, 'utf8'));
  const raw = await readFile(values.pixels);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const [n, h, w, c] = shape;
  if (data.length !== n * h * w * c) throw new Error(`${values.pixels} holds ${data.length} values, not ${n}x${h}x${w}x${c}`);
  const model = await loadGraphModelFromDir(values.model);
  const batch = Number(values['batch-size']);
  const probabilities = [];
  let atypicality = [];
  for (let start = 0; start < n; start += batch) {
    const count = Math.min(batch, n - start);
    const x = tf.tensor4d(data.subarray(start * h * w * c, (start + count) * h * w * c), [count, h, w, c]);
    const out = await predict(model, x);
    probabilities.push(...out.probabilities);
    atypicality = out.atypicality && atypicality ? atypicality.concat(out.atypicality) : null;
    x.dispose();
  }
  process.stdout.write(JSON.stringify({ backend: tf.getBackend(), probabilities, atypicality }));
} catch (err) {
  process.stderr.write(`error: ${String(err?.message ?? err).split('\n')[0]}\n`);
  process.exit(1);
}
