// Turning a user's file into the model's input: decoded RGB pixels, float32 0-255, [1, h, w, 3].
import * as tf from '@tensorflow/tfjs';

export const MAX_FILE_BYTES = 50 * 1024 * 1024;
export const MAX_PIXELS = 25_000_000; // the same limit as the pipeline's ingest

export class ImageError extends Error {}

export async function decodeImage(file: File): Promise<tf.Tensor4D> {
  if (file.size === 0) throw new ImageError('the file is empty');
  if (file.size > MAX_FILE_BYTES) throw new ImageError(`the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MB`);
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new ImageError('not a readable image (use JPEG, PNG, BMP, GIF or WebP)');
  }
  try {
    if (bitmap.width * bitmap.height > MAX_PIXELS) {
      throw new ImageError(`the image has more than ${MAX_PIXELS / 1e6} million pixels`);
    }
    return tf.tidy(() => tf.browser.fromPixels(bitmap, 3).toFloat().expandDims(0) as tf.Tensor4D);
  } finally {
    bitmap.close();
  }
}
