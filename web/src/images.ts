// Turning a user's file into the model's input: decoded RGB pixels, float32 0-255, [1, h, w, 3].
import * as tf from '@tensorflow/tfjs';
import { imageSize } from 'image-size';

export const MAX_FILE_BYTES = 50 * 1024 * 1024;
export const MAX_PIXELS = 25_000_000; // the same limit as the pipeline's ingest
// Far below any cell image. Under 4 px a side the nucleus search has nothing to pool, and tfjs's wasm
// backend then fails or never returns.
export const MIN_SIDE = 16;
// Where the width and height are read from; past it (a JPEG with very large metadata) the decoded
// size is checked instead.
const HEADER_BYTES = 1024 * 1024;

export class ImageError extends Error {}

/** Why an image of this size is not classified, or null. */
function sizeProblem(width: number, height: number): ImageError | null {
  if (width * height > MAX_PIXELS) {
    return new ImageError(`the image is ${width} x ${height} pixels, more than ${MAX_PIXELS / 1e6} million`);
  }
  if (Math.min(width, height) < MIN_SIDE) {
    return new ImageError(`the image is ${width} x ${height} pixels: too small to show a cell (at least ${MIN_SIDE} a side)`);
  }
  return null;
}

interface Header { width: number; height: number; type?: string }

/** Width, height and format as the file's header states them; null when it cannot be read here. */
async function readHeader(file: File): Promise<Header | null> {
  try {
    const header = imageSize(new Uint8Array(await file.slice(0, HEADER_BYTES).arrayBuffer()));
    return header.width && header.height ? header : null;
  } catch {
    return null;
  }
}

/** The pixels with white where the image is transparent, as the pipeline's ingest and TF Serving give
 * them: read straight from a bitmap, a transparent pixel's colour is lost (black). JPEGs have no
 * transparency, and a BMP's fourth channel is not read as such by the pipeline either. */
function overWhite(bitmap: ImageBitmap, type: string | undefined): ImageBitmap | HTMLCanvasElement {
  if (type === 'jpg' || type === 'bmp') return bitmap;
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext('2d')!;
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(bitmap, 0, 0);
  return canvas;
}

export async function decodeImage(file: File): Promise<tf.Tensor4D> {
  if (file.size === 0) throw new ImageError('the file is empty');
  if (file.size > MAX_FILE_BYTES) throw new ImageError(`the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MB`);
  // Checked before decoding: a small file can hold a huge image (a PNG of one colour compresses about
  // 1000:1), which the browser would decode into gigabytes, or refuse as if it were no image at all.
  const stated = await readHeader(file);
  const statedProblem = stated && sizeProblem(stated.width, stated.height);
  if (statedProblem) throw statedProblem;
  let bitmap: ImageBitmap;
  try {
    // The stored values, as TF and the ingest decode them: no colour profile or gamma applied.
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none' });
  } catch {
    throw new ImageError('not a readable image (use JPEG, PNG, BMP, GIF or WebP)');
  }
  try {
    const problem = sizeProblem(bitmap.width, bitmap.height);
    if (problem) throw problem;
    const pixels = overWhite(bitmap, stated?.type);
    return tf.tidy(() => tf.browser.fromPixels(pixels, 3).toFloat().expandDims(0) as tf.Tensor4D);
  } finally {
    bitmap.close();
  }
}
