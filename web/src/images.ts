// Turning a user's file into the model's input: decoded RGB pixels, float32 0-255, [1, h, w, 3].
import * as tf from '@tensorflow/tfjs';
import { imageSize } from 'image-size';

export const MAX_FILE_BYTES = 50 * 1024 * 1024;
export const MAX_PIXELS = 25_000_000; // the same limit as the pipeline's ingest
// Where the width and height are read from; past it (a JPEG with very large metadata) the decoded
// size is checked instead.
const HEADER_BYTES = 1024 * 1024;

export class ImageError extends Error {}

function tooManyPixels(width: number, height: number): ImageError {
  return new ImageError(`the image is ${width} x ${height} pixels, more than ${MAX_PIXELS / 1e6} million`);
}

/** Width and height as the file's header states them; null when the header cannot be read here. */
async function headerSize(file: File): Promise<{ width: number; height: number } | null> {
  try {
    const { width, height } = imageSize(new Uint8Array(await file.slice(0, HEADER_BYTES).arrayBuffer()));
    return width && height ? { width, height } : null;
  } catch {
    return null;
  }
}

export async function decodeImage(file: File): Promise<tf.Tensor4D> {
  if (file.size === 0) throw new ImageError('the file is empty');
  if (file.size > MAX_FILE_BYTES) throw new ImageError(`the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MB`);
  // Checked before decoding: a small file can hold a huge image (a PNG of one colour compresses about
  // 1000:1), which the browser would decode into gigabytes, or refuse as if it were no image at all.
  const stated = await headerSize(file);
  if (stated && stated.width * stated.height > MAX_PIXELS) throw tooManyPixels(stated.width, stated.height);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new ImageError('not a readable image (use JPEG, PNG, BMP, GIF or WebP)');
  }
  try {
    if (bitmap.width * bitmap.height > MAX_PIXELS) throw tooManyPixels(bitmap.width, bitmap.height);
    return tf.tidy(() => tf.browser.fromPixels(bitmap, 3).toFloat().expandDims(0) as tf.Tensor4D);
  } finally {
    bitmap.close();
  }
}
